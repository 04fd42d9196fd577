"""`gateway replay` on stereo WAVs synthesised with espeak-ng: the contract and the verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import espeak, place

from gateway.audio.resample import resample
from gateway.audio.wav import write_wav
from gateway.cli import main
from gateway.replay import Replayer
from gateway.turns.events import REPLAY_TYPES
from gateway.turns.options import TurnHandlingOptions

AGENT_TEXT = (
    "Thank you for calling Bright Smile Dental. We have openings on Tuesday at three, "
    "Wednesday at ten, and Friday at two in the afternoon. Which one works best for you?"
)
CONTRACT_TYPES = REPLAY_TYPES  # the replay contract's list (docs/design.md), which the engine module keeps
BACKCHANNEL_AT, BARGE_IN_AT = 3.0, 6.5


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Agent lists slots; the caller says "mm-hmm", then barges in with a real request."""
    agent = place(12.0, [(0.5, espeak(AGENT_TEXT, voice="en-us", speed=150))])
    caller = place(
        12.0,
        [
            (BACKCHANNEL_AT, espeak("mm-hmm", voice="en-gb", speed=170)),
            (BARGE_IN_AT, espeak("actually wait, I need a morning slot please", voice="en-gb")),
        ],
    )
    path = tmp_path_factory.mktemp("replay") / "call.wav"
    write_wav(path, np.stack([caller, agent], axis=1), 8000)
    return path


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(["replay", *args])
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    return code, rows, captured.err


def verdicts(rows: list[dict[str, object]]) -> list[tuple[str, float]]:
    return [(str(r["type"]), float(r["onset"])) for r in rows if r["type"] in ("interruption", "backchannel")]  # type: ignore[arg-type]


def test_adaptive_ignores_the_backchannel_and_yields_to_the_barge_in(
    capsys: pytest.CaptureFixture[str], scenario: Path
) -> None:
    code, rows, _ = replay(capsys, str(scenario), "--set", "interruption.mode=adaptive")
    assert code == 0
    found = verdicts(rows)
    assert [kind for kind, _ in found] == ["backchannel", "interruption"]
    (bc_onset, int_onset) = (onset for _, onset in found)
    assert abs(bc_onset - BACKCHANNEL_AT) < 0.15 and abs(int_onset - BARGE_IN_AT) < 0.15
    interruption = [r for r in rows if r["type"] == "interruption"][-1]
    assert interruption["mode"] == "adaptive"
    assert 0 < float(interruption["latency_ms"]) < 1500  # type: ignore[arg-type]
    # the caller's request became a turn once they stopped
    eot = [r for r in rows if r["type"] == "end_of_turn"][-1]
    assert float(eot["t"]) > BARGE_IN_AT + 2.0 and eot["interrupted_agent"]  # type: ignore[arg-type]


def test_vad_mode_is_fooled_by_the_backchannel(capsys: pytest.CaptureFixture[str], scenario: Path) -> None:
    """VAD alone stops the agent for a 0.6 s "mm-hmm": the reason adaptive mode exists. The rest of
    that agent utterance then counts as stopped, so the later request is no overlap at all."""
    code, rows, _ = replay(capsys, str(scenario), "--set", "interruption.mode=vad")
    assert code == 0
    ((kind, onset),) = verdicts(rows)
    assert kind == "interruption" and abs(onset - BACKCHANNEL_AT) < 0.15
    interruption = next(r for r in rows if r["type"] == "interruption")
    assert interruption["mode"] == "vad"
    assert 500 <= float(interruption["latency_ms"]) < 700  # type: ignore[arg-type]


def test_output_is_json_lines_in_time_order_with_only_contract_types(
    capsys: pytest.CaptureFixture[str], scenario: Path
) -> None:
    code, rows, _ = replay(capsys, str(scenario))
    assert code == 0 and rows
    assert {r["type"] for r in rows} <= CONTRACT_TYPES
    assert all(r["file"] == str(scenario) for r in rows)
    times = [float(r["t"]) for r in rows]  # type: ignore[arg-type]
    assert times == sorted(times)
    starts = [r for r in rows if r["type"] == "agent_speech_start"]
    assert abs(float(starts[0]["t"]) - 0.5) < 0.05  # type: ignore[arg-type]


def test_several_files_and_a_bad_one(
    capsys: pytest.CaptureFixture[str], scenario: Path, tmp_path: Path
) -> None:
    mono = tmp_path / "mono.wav"
    write_wav(mono, np.zeros(8000, dtype=np.int16), 8000)
    code, rows, err = replay(capsys, str(scenario), str(mono), str(scenario))
    assert code == 1
    assert "stereo" in err and str(mono) in err
    per_file = [r for r in rows if r["type"] == "backchannel"]
    assert len(per_file) == 2  # both good files were replayed despite the bad one in between


def test_mulaw_and_16khz_recordings_replay_alike(
    capsys: pytest.CaptureFixture[str], scenario: Path, tmp_path: Path
) -> None:
    from gateway.audio.wav import read_wav

    pcm = read_wav(scenario).pcm
    ulaw = tmp_path / "ulaw.wav"
    write_wav(ulaw, pcm, 8000, subtype="ULAW")
    wide = tmp_path / "wide.wav"
    write_wav(wide, np.stack([resample(pcm[:, 0], 8000, 16000), resample(pcm[:, 1], 8000, 16000)], 1), 16000)
    reference = verdicts(replay(capsys, str(scenario))[1])
    for path in (ulaw, wide):
        found = verdicts(replay(capsys, str(path))[1])
        assert [k for k, _ in found] == [k for k, _ in reference]
        assert all(abs(a - b) < 0.1 for (_, a), (_, b) in zip(found, reference, strict=True))


def test_echo_of_the_agent_alone_does_not_interrupt_in_adaptive_mode() -> None:
    agent = place(10.0, [(0.5, espeak(AGENT_TEXT, voice="en-us", speed=150))])
    echo = np.zeros_like(agent)
    delay = int(0.06 * 8000)
    echo[delay:] = (agent[:-delay].astype(np.float32) * 0.1).astype(np.int16)  # -20 dB ERL, 60 ms late
    result = Replayer(TurnHandlingOptions()).replay_pcm(echo, agent, 8000, "echo")
    assert not [e for e in result.events if e.type == "interruption"]


def test_set_override_errors_are_reported_with_the_key(
    capsys: pytest.CaptureFixture[str], scenario: Path
) -> None:
    code, rows, err = replay(capsys, str(scenario), "--set", "interruption.mode=sometimes")
    assert code == 2 and not rows
    assert "interruption.mode" in err


def test_replay_writes_the_same_rows_as_a_live_call(
    capsys: pytest.CaptureFixture[str], scenario: Path, migrated_url: str
) -> None:
    from sqlalchemy import select

    from gateway.metrics.database import create_db_engine
    from gateway.metrics.tables import Call, InterruptionEvent, Turn

    code, rows, _ = replay(capsys, str(scenario), "--db", migrated_url)
    assert code == 0
    engine = create_db_engine(migrated_url)
    with engine.connect() as conn:
        (call,) = conn.execute(select(Call.id, Call.edge, Call.end_reason)).all()
        kinds = conn.execute(
            select(InterruptionEvent.kind, InterruptionEvent.offset_s, InterruptionEvent.mode)
            .where(InterruptionEvent.call_id == call.id)
            .order_by(InterruptionEvent.offset_s)
        ).all()
        turns = conn.execute(select(Turn.eou_delay_ms).where(Turn.call_id == call.id)).all()
    engine.dispose()
    assert call.edge == "replay" and call.end_reason == "replay_end"
    expected = [(r["type"], r["t"]) for r in rows if r["type"] in ("interruption", "backchannel")]
    assert [(k.kind, pytest.approx(k.offset_s, abs=0.002)) for k in kinds] == expected
    assert len(turns) == len([r for r in rows if r["type"] == "end_of_turn"])


def test_replay_refuses_an_unmigrated_database(
    capsys: pytest.CaptureFixture[str], scenario: Path, tmp_path: Path
) -> None:
    code, rows, err = replay(capsys, str(scenario), "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 2 and not rows and "gateway db upgrade" in err
