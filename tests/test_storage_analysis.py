"""Analysts' commands on both databases: `gateway calls` (filters, --json, --csv), `calls show`, `report`,
and the BI views."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from gateway.calls import CallInfo
from gateway.metrics import cli
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.writer import MetricsWriter
from gateway.turns.events import (
    AgentSpeechEnd,
    AgentSpeechStart,
    Backchannel,
    EndOfTurn,
    FalseInterruption,
    Interruption,
    PausePlayout,
    ResumePlayout,
    StopPlayout,
    UserSpeechEnd,
    UserSpeechStart,
)

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="gateway")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    with redirect_stdout(out):
        code = args.func(args)
    return code, out.getvalue()


def record_call(
    writer: MetricsWriter, call_id: str, agent: str, edge: str, start: datetime, *, barge: bool
) -> None:
    rec = CallRecorder(CallInfo(call_id, edge, agent, caller="+15550001", codec="PCMU"), writer.emit)  # type: ignore[arg-type]
    rec.started(start)
    rec.answered(start + timedelta(seconds=1))
    rec.on_events([AgentSpeechStart(t=0.2)])
    rec.on_events([UserSpeechStart(t=1.0)])
    rec.on_events(
        [UserSpeechEnd(t=1.3, duration=0.3), Backchannel(t=1.3, onset=1.0, duration=0.3, probability=0.1)]
    )
    if barge:
        rec.on_events([UserSpeechStart(t=2.0)])
        rec.on_events(
            [
                Interruption(t=2.25, onset=2.0, latency_ms=250, mode="adaptive", probability=0.93),
                PausePlayout(t=2.25),
            ],
            agent_text_heard="Thank you for calling",
        )
        rec.on_events([UserSpeechEnd(t=2.5, duration=0.5)])
        rec.on_events([FalseInterruption(t=3.1, resumed=True), ResumePlayout(t=3.1)])
        rec.on_events([UserSpeechStart(t=4.0)])
        rec.on_events(
            [Interruption(t=4.4, onset=4.0, latency_ms=400, mode="vad", fallback=True), StopPlayout(t=4.4)],
            agent_text_heard="Thank you for calling Bright Smile",
        )
        rec.on_events([AgentSpeechEnd(t=4.4), UserSpeechEnd(t=5.0, duration=1.0)])
    else:
        rec.on_events([AgentSpeechEnd(t=3.0), UserSpeechStart(t=3.5), UserSpeechEnd(t=5.0, duration=1.5)])
    rec.on_events(
        [EndOfTurn(t=5.5, delay_ms=500, transcript="I need an appointment", interrupted_agent=barge)]
    )
    rec.turn_latencies(
        stt_final_latency_ms=150, llm_ttft_ms=420, tts_first_audio_ms=180, response_latency_ms=1100
    )
    rec.on_events([AgentSpeechStart(t=6.1), AgentSpeechEnd(t=8.0)])
    rec.usage("llm", "openai-compatible", "small", requests=1, input_tokens=300, output_tokens=40)
    rec.usage("tts", "espeak-ng", requests=2, characters=80)
    rec.ended("caller_hangup", start + timedelta(seconds=10))


@pytest.fixture
async def calls_db(migrated_url: str, engine: Engine, spool_path: Path) -> str:
    writer = MetricsWriter(engine, spool_path, instance="t")
    record_call(writer, "sip-aaa", "dental", "sip", T0, barge=True)
    record_call(writer, "web-bbb", "dental", "webrtc", T0 + timedelta(hours=2), barge=False)
    record_call(writer, "sip-ccc", "pizza", "sip", T0 + timedelta(days=1), barge=True)
    await writer.flush()
    await writer.stop()
    assert writer.stats.rejected == 0
    return migrated_url


def test_calls_list_filters_and_formats(calls_db: str) -> None:
    code, out = run("calls", "--db", calls_db, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["call_id"] for r in rows] == ["sip-ccc", "web-bbb", "sip-aaa"]  # newest first
    first = rows[2]
    assert (first["interruptions"], first["backchannels"], first["false_interruptions"], first["turns"]) == (
        2,
        1,
        1,
        1,
    )
    assert first["duration_s"] == 10.0 and first["avg_response_latency_ms"] == 1100.0

    _, out = run("calls", "--db", calls_db, "--json", "--agent", "dental", "--edge", "sip")
    assert [r["call_id"] for r in json.loads(out)] == ["sip-aaa"]
    _, out = run("calls", "--db", calls_db, "--json", "--since", "2026-03-04T11:00", "--until", "2026-03-05")
    assert [r["call_id"] for r in json.loads(out)] == ["web-bbb"]
    _, out = run("calls", "--db", calls_db, "--json", "--end-reason", "gateway_restart")
    assert json.loads(out) == []

    _, out = run("calls", "--db", calls_db, "--csv", "--agent", "pizza")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert len(parsed) == 1 and parsed[0]["call_id"] == "sip-ccc" and parsed[0]["interruptions"] == "2"

    _, out = run("calls", "--db", calls_db)
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["id", "started", "(UTC)", "edge"]
    assert len(lines) == 4 and "pizza" in lines[1]


def test_calls_show_timeline(calls_db: str) -> None:
    code, out = run("calls", "show", "sip-aaa", "--db", calls_db)
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    body = [line for line in lines if re.match(r"^\d\d:\d\d\.\d{3} ", line)]
    assert [line.split()[1] for line in body] == [
        "AGENT",  # 0.2, until the pause at 2.25
        "CALLER",  # 1.0
        "overlap",  # 1.3 backchannel
        "CALLER",  # 2.0
        "overlap",  # 2.25 interruption
        "AGENT",  # 3.1, resumed until it stops at 4.4
        "false",  # 3.1 resumed
        "CALLER",  # 4.0
        "overlap",  # 4.4 interruption (fallback)
        "END",  # 5.5
        "AGENT",  # 6.1
    ]
    assert "AGENT  speaks until 00:02.250" in out and "AGENT  speaks until 00:04.400" in out
    assert "BACKCHANNEL (vad, p=0.10, decided in 300 ms, overlap 0.30 s); agent continued" in out
    assert (
        "INTERRUPTION (adaptive, p=0.93, decided in 250 ms, overlap 0.25 s); agent resumed; "
        'caller heard: "Thank you for calling"' in out
    )
    assert "INTERRUPTION (fallback, decided in 400 ms" in out and "agent stopped" in out
    assert "llm ttft 420 ms" in out and "response 1100 ms" in out
    assert "openai-compatible/small: 1 requests" in out

    code, _ = run("calls", "show", "no-such-call", "--db", calls_db)
    assert code == 1


def test_report_html(calls_db: str, tmp_path: Path) -> None:
    out_file = tmp_path / "report.html"
    code, _ = run(
        "report", "--db", calls_db, "--since", "2026-03-04", "--until", "2026-03-06", "--out", str(out_file)
    )
    assert code == 0
    html = out_file.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 4
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "FROM interruption_events e" in html  # the SQL it ran
    # 4 interruptions, 2 of them false (resumed): dental 1/2 and pizza 1/2 -> 50 %.
    assert "<td>dental</td><td>2</td><td>1</td><td>50.0%</td>" in html
    assert "<td>pizza</td><td>2</td><td>1</td><td>50.0%</td>" in html
    assert "<tr><td>response_latency_ms</td><td>1100</td>" in html
    assert "<tr><td>caller_hangup</td><td>3</td></tr>" in html


def test_report_percentiles_and_empty_range(calls_db: str, tmp_path: Path) -> None:
    from gateway.metrics.report import percentile

    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0], 99) == 10.0
    out_file = tmp_path / "empty.html"
    code, _ = run(
        "report", "--db", calls_db, "--since", "2020-01-01", "--until", "2020-01-02", "--out", str(out_file)
    )
    assert code == 0 and "0 calls" in out_file.read_text()


def test_bi_views(calls_db: str, engine: Engine) -> None:
    with engine.connect() as conn:
        summary = conn.execute(
            text(
                "SELECT edge_call_id, agent, duration_s, interruptions, backchannels, false_interruptions, "
                "resumed, turns, avg_response_latency_ms FROM v_call_summary ORDER BY edge_call_id"
            )
        ).all()
        kinds = conn.execute(
            text(
                "SELECT agent, kind, mode, agent_action FROM v_interruptions "
                "WHERE edge_call_id = 'sip-aaa' ORDER BY offset_s"
            )
        ).all()
        turns = conn.execute(text("SELECT agent, llm_ttft_ms FROM v_turn_latencies ORDER BY call_id")).all()
    assert [tuple(r) for r in summary] == [
        ("sip-aaa", "dental", pytest.approx(10.0, abs=0.001), 2, 1, 1, 1, 1, 1100.0),
        ("sip-ccc", "pizza", pytest.approx(10.0, abs=0.001), 2, 1, 1, 1, 1, 1100.0),
        ("web-bbb", "dental", pytest.approx(10.0, abs=0.001), 0, 1, 0, 0, 1, 1100.0),
    ]
    assert [tuple(r) for r in kinds] == [
        ("dental", "backchannel", "vad", "continued"),
        ("dental", "interruption", "adaptive", "resumed"),
        ("dental", "resumed", "adaptive", "resumed"),
        ("dental", "interruption", "fallback", "stopped"),
    ]
    assert [tuple(r) for r in turns] == [("dental", 420.0), ("dental", 420.0), ("pizza", 420.0)]


def test_db_commands(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from gateway.metrics.schema import alembic_config

    (head,) = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    below = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(head).down_revision
    code, out = run("db", "current", "--db", db_url)
    assert code == 1 and "empty - out of date" in out
    assert run("db", "upgrade", "--db", db_url)[0] == 0
    code, out = run("db", "current", "--db", db_url)
    assert code == 0 and f"{head} - up to date" in out
    assert run("db", "downgrade", "--db", db_url)[0] == 0
    code, out = run("db", "current", "--db", db_url)
    assert code == 1 and f"{below} - out of date" in out


def test_db_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.metrics.database import resolve_db_url

    monkeypatch.delenv("GATEWAY_DB_URL", raising=False)
    assert resolve_db_url(None) == "sqlite:///gateway.db"
    monkeypatch.setenv("GATEWAY_DB_URL", "postgresql://u@h/db")
    assert resolve_db_url(None) == "postgresql+psycopg://u@h/db"
    assert resolve_db_url("sqlite:///x.db") == "sqlite:///x.db"
