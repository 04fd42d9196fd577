"""The dental receptionist answering a real SIP call, end to end.

`gateway serve` (Kamailio front, pjsua2 workers, the AgentRunner with the dental agent: pocketsphinx,
the scripted policy, espeak-ng), the demo appointment service, and `gateway call` playing the demo
caller (who books, says "uh-huh" while the agent lists slots, and barges in with "actually, wait").
Everything asserted comes from what the gateway wrote to its database and what came back over RTP.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from gateway.audio.wav import read_wav
from gateway.demo import CALLER_SCRIPT, start_process, stop_process, synthesize_caller
from gateway.metrics.database import create_db_engine
from gateway.metrics.schema import upgrade
from gateway.metrics.tables import Call, InterruptionEvent, Turn

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dental_call(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    tmp = tmp_path_factory.mktemp("dental")
    db = f"sqlite:///{tmp / 'gateway.db'}"
    upgrade(db)
    tools_port = free_port(socket.SOCK_STREAM)
    agent = tmp / "dental.yaml"
    agent.write_text(
        (REPO / "config/agents/dental.yaml").read_text().replace("127.0.0.1:8090", f"127.0.0.1:{tools_port}")
    )
    gateway_yaml = tmp / "gateway.yaml"
    gateway_yaml.write_text(
        f"database: {{url: '{db}', spool_dir: '{tmp / 'spool'}'}}\n"
        f"routes: [{{match: dental, agent: '{agent}'}}]\n"
        "sip: {workers: 1}\n"
    )
    caller = tmp / "caller.wav"
    synthesize_caller(caller)
    sip_port = free_port()
    gateway = [sys.executable, "-m", "gateway"]
    procs = [
        start_process(
            [*gateway, "appointments", "--port", str(tools_port)], tmp / "appointments.log", cwd=REPO
        )
    ]
    try:
        procs.append(
            start_process(
                [*gateway, "-v", "serve", "--config", str(gateway_yaml), "--sip-port", str(sip_port),
                 "--http-port", "0", "--run-dir", str(tmp / "run")],
                tmp / "serve.log",
                wait_for=b"SERVING",
                cwd=REPO,
            )
        )  # fmt: skip
        call = subprocess.run(
            [*gateway, "call", "--to", f"sip:dental@127.0.0.1:{sip_port}", "--play", str(caller),
             "--record", str(tmp / "agent.wav")],
            cwd=REPO, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert call.returncode == 0, call.stdout.decode() + call.stderr.decode()[-2000:]
    finally:
        for proc in reversed(procs):
            stop_process(proc)
    yield tmp, db


def test_the_greeting_comes_back_over_rtp(dental_call: tuple[Path, str]) -> None:
    tmp, _ = dental_call
    agent = read_wav(tmp / "agent.wav")
    frame = agent.rate // 50
    pcm = agent.pcm[:, 0].astype(np.float32)
    rms = np.sqrt(np.mean(pcm[: len(pcm) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    greeting = rms[: int(3.0 * 50)]
    assert np.mean(greeting > 300) > 0.5  # espeak-ng's greeting fills most of the first 3 s


def test_the_callers_request_is_transcribed_and_answered(dental_call: tuple[Path, str]) -> None:
    _, db = dental_call
    engine = create_db_engine(db)
    with engine.connect() as conn:
        (call,) = conn.execute(select(Call.id, Call.edge, Call.agent, Call.end_reason)).all()
        turns = conn.execute(
            select(Turn.transcript, Turn.response_latency_ms).where(Turn.call_id == call.id)
        ).all()
    engine.dispose()
    assert (call.edge, call.agent, call.end_reason) == ("sip", "dental", "caller_hangup")
    transcripts = [t.transcript for t in turns]
    assert any("appointment" in t for t in transcripts), transcripts
    assert any("tuesday" in t for t in transcripts), transcripts
    assert all(t.response_latency_ms is None or t.response_latency_ms < 1500 for t in turns)


def test_backchannel_does_not_stop_the_agent_and_the_barge_in_does(dental_call: tuple[Path, str]) -> None:
    _, db = dental_call
    mm_hmm = next(t for t, text in CALLER_SCRIPT if text.startswith("Uh-huh"))
    wait = next(t for t, text in CALLER_SCRIPT if text.startswith("Actually"))
    engine = create_db_engine(db)
    with engine.connect() as conn:
        events = conn.execute(
            select(
                InterruptionEvent.kind,
                InterruptionEvent.onset_s,
                InterruptionEvent.agent_action,
                InterruptionEvent.agent_text_heard,
            ).order_by(InterruptionEvent.offset_s)
        ).all()
    engine.dispose()
    near = [e for e in events if e.onset_s is not None and abs(e.onset_s - mm_hmm) < 0.5]
    assert [e.kind for e in near] == ["backchannel"], events
    assert near[0].agent_action == "continued"
    (barge_in,) = [e for e in events if e.kind == "interruption" and abs((e.onset_s or 0) - wait) < 0.5]
    assert barge_in.agent_action in ("stopped", "paused")
    # the chat context keeps what the caller heard of the slot list: a real prefix of it
    slots = "We have Tuesday at nine, Tuesday at eleven, and Wednesday at two."
    heard = barge_in.agent_text_heard or ""
    assert heard and slots.startswith(heard.rstrip(".")) and len(heard) < len(slots), heard
