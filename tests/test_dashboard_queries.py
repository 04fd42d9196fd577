"""Every SQL query of the analysts' Grafana dashboard (docker/grafana/dashboards/) against PostgreSQL.

A fresh database is migrated, a few calls are recorded through the real CallRecorder and MetricsWriter
(its database process included), then each panel's query runs with Grafana's macros expanded the way
its PostgreSQL data source expands them, and the answers are checked against what was recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text

from gateway.calls import CallInfo
from gateway.metrics import schema
from gateway.metrics.database import create_db_engine
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.writer import MetricsWriter
from gateway.turns.events import Backchannel, EndOfTurn, FalseInterruption, Interruption, PausePlayout
from tests.conftest import create_pg_database, drop_pg_database

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "docker" / "grafana" / "dashboards" / "gateway-analytics.json"
)
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
RANGE = (T0 - timedelta(hours=1), T0 + timedelta(hours=3))
INTERVAL_S = 3600

# What is recorded: per call, agent, answered, interruption latencies (ms) and whether each proved false,
# backchannel latencies (ms), reply latencies (ms) of its turns, and how it ended.
CALLS: list[dict[str, Any]] = [
    dict(agent="dental", answered=True, interruptions=[(320.0, False), (410.0, True)], backchannels=[250.0],
         replies=[900.0, 1200.0, 1500.0], end="caller_hangup"),
    dict(agent="dental", answered=True, interruptions=[(280.0, False)], backchannels=[300.0, 350.0],
         replies=[800.0, 2500.0], end="node_lost"),
    dict(agent="support", answered=True, interruptions=[(500.0, False)], backchannels=[],
         replies=[1100.0], end="agent_hangup"),
    dict(agent="support", answered=False, interruptions=[], backchannels=[], replies=[], end="caller_hangup"),
]  # fmt: skip


@pytest.fixture
def pg_engine(postgres_admin_url: str) -> Iterator[Engine]:
    url = create_pg_database(postgres_admin_url)
    try:
        schema.upgrade(url)
        engine = create_db_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
    finally:
        drop_pg_database(postgres_admin_url, url)


async def _record_calls(engine: Engine, spool: Path) -> None:
    writer = MetricsWriter(engine, spool, batch_interval_s=0.05, instance="dashboard-test")
    await writer.start()
    for n, spec in enumerate(CALLS):
        start = T0 + timedelta(minutes=40 * n)  # 0, 40, 80, 120 minutes: hours 0, 0, 1, 2
        rec = CallRecorder(CallInfo(f"call-{n}", "sip", spec["agent"], "+1", "+2", "PCMU", 8000), writer.emit)
        rec.started(start)
        if spec["answered"]:
            rec.answered(start + timedelta(seconds=1))
        t = 2.0
        for latency, false in spec["interruptions"]:
            rec.on_events(
                [
                    Interruption(t=t, onset=t - latency / 1000, latency_ms=latency, mode="adaptive"),
                    PausePlayout(t=t),
                ],
                agent_text_heard="We are open",
            )
            if false:
                rec.on_event(FalseInterruption(t=t + 1.0, resumed=True))
            t += 5.0
        for latency in spec["backchannels"]:
            rec.on_event(Backchannel(t=t, onset=t - latency / 1000, duration=0.4, mode="adaptive"))
            t += 5.0
        for reply in spec["replies"]:
            rec.on_event(EndOfTurn(t=t, delay_ms=500.0, transcript="hello"))
            rec.turn_latencies(response_latency_ms=reply, stt_final_latency_ms=200.0, llm_ttft_ms=300.0)
            t += 5.0
        rec.ended(spec["end"], start + timedelta(seconds=t + 1))
    await writer.flush()
    await writer.stop()
    assert writer.stats.rejected == 0 and writer.stats.spool_depth == 0


def _grafana_sql(sql: str, agents: list[str]) -> str:
    """Expand the macros and variables the dashboard uses, as Grafana's PostgreSQL data source does."""
    frm, to = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in RANGE)
    sql = sql.replace("$__interval", f"{INTERVAL_S}s")
    sql = re.sub(
        r"\$__timeGroupAlias\((\w+),\s*\d+s\)",
        lambda m: f'floor(extract(epoch from {m.group(1)})/{INTERVAL_S})*{INTERVAL_S} AS "time"',
        sql,
    )
    sql = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"{m.group(1)} BETWEEN '{frm}' AND '{to}'", sql)
    sql = sql.replace("$agent", ",".join(f"'{a}'" for a in agents))
    assert "$" not in sql, f"a macro this test does not expand: {sql}"
    return sql


def _panels() -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}


def _run_panel(engine: Engine, panel: dict[str, Any], agents: list[str]) -> list[dict[str, Any]]:
    (target,) = panel["targets"]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(_grafana_sql(target["rawSql"], agents)))]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100))  # linear interpolation, as percentile_cont


async def test_every_dashboard_query_answers_what_was_recorded(pg_engine: Engine, tmp_path: Path) -> None:
    await _record_calls(pg_engine, tmp_path / "spool" / "metrics.jsonl")
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = dashboard["templating"]["list"]
    with pg_engine.connect() as conn:
        agents = [r[0] for r in conn.execute(text(variable["query"]))]
    assert agents == ["dental", "support"]

    panels = _panels()
    sql_panels = {t: p for t, p in panels.items() if "rawSql" in p["targets"][0]}
    results = {title: _run_panel(pg_engine, p, agents) for title, p in sql_panels.items()}
    empty = [title for title, rows in results.items() if not rows]
    assert not empty, f"panels with no rows: {empty}"

    assert results["Calls"] == [{"calls": 4}]
    assert results["Answered"][0]["answered"] == pytest.approx(0.75)
    assert results["Calls closed by a failure"] == [{"calls": 1}]
    # 4 interruptions, one of them false (paused, then resumed)
    assert results["False-interruption rate"][0]["false_interruption_rate"] == pytest.approx(1 / 4)

    calls_by_agent = results["Calls by agent"]
    assert sum(r["calls"] for r in calls_by_agent) == 4
    assert {(int(r["time"]), r["metric"]) for r in calls_by_agent} == {
        (int(T0.timestamp()), "dental"),
        (int(T0.timestamp()) + 3600, "support"),
        (int(T0.timestamp()) + 7200, "support"),
    }
    verdicts: dict[str, int] = {}
    for row in results["Overlap verdicts by kind"]:
        verdicts[row["metric"]] = verdicts.get(row["metric"], 0) + row["events"]
    assert verdicts == {"interruption": 4, "backchannel": 3, "resumed": 1}

    per_agent = {r["agent"]: r for r in results["Interruptions per agent"]}
    assert (per_agent["dental"]["calls"], per_agent["dental"]["interruptions"]) == (2, 3)
    assert per_agent["dental"]["false_interruptions"] == 1 and per_agent["dental"]["resumed"] == 1
    assert per_agent["dental"]["false_interruption_rate"] == pytest.approx(1 / 3)
    assert per_agent["support"]["false_interruption_rate"] == pytest.approx(0.0)
    assert per_agent["support"]["backchannels"] == 0

    decision = {(r["kind"], r["mode"]): r for r in results["Decision latency (ms)"]}
    interruption_ms = [lat for c in CALLS for lat, _ in c["interruptions"]]
    backchannel_ms = [lat for c in CALLS for lat in c["backchannels"]]
    for key, values in (
        (("interruption", "adaptive"), interruption_ms),
        (("backchannel", "adaptive"), backchannel_ms),
    ):
        row = decision[key]
        assert row["decisions"] == len(values)
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
            assert row[name] == pytest.approx(_pct(values, q)), (key, name)

    reply = {r["agent"]: r for r in results["Reply latency (ms)"]}
    for agent in ("dental", "support"):
        values = [ms for c in CALLS if c["agent"] == agent for ms in c["replies"]]
        assert reply[agent]["turns"] == len(values)
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95)):
            assert reply[agent][name] == pytest.approx(_pct(values, q))
        assert reply[agent]["eou_p50"] == pytest.approx(500.0)
        assert reply[agent]["llm_ttft_p50"] == pytest.approx(300.0)
        assert reply[agent]["tts_first_audio_p50"] is None  # never recorded

    first_hour = [ms for c in CALLS[:2] for ms in c["replies"]]
    over_time = {int(r["time"]): r for r in results["Reply latency percentiles"]}
    assert over_time[int(T0.timestamp())]["p95"] == pytest.approx(_pct(first_hour, 0.95))

    reasons = {r["end_reason"]: r["calls"] for r in results["Calls by end reason"]}
    assert reasons == {"caller_hangup": 2, "node_lost": 1, "agent_hangup": 1}

    # the agent variable filters: one agent's numbers only
    only_support = _run_panel(pg_engine, panels["Interruptions per agent"], ["support"])
    assert [r["agent"] for r in only_support] == ["support"]


def test_the_macro_expansion_refuses_what_it_does_not_know() -> None:
    with pytest.raises(AssertionError, match="macro"):
        _grafana_sql("SELECT $__timeGroup(started_at, '5m') FROM calls", ["dental"])
