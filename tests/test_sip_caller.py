"""End to end with the pjsua2 test caller (`gateway call`) through the front: G.722, barge-in, DTMF."""

from __future__ import annotations

from pathlib import Path

import pytest
from sip_fixtures import SPEECH_RMS, caller_wav, gateway_call, gateway_serve, wav_activity

pytestmark = [pytest.mark.slow]


def test_g722_call_with_bargein_and_dtmf(tmp_path: Path) -> None:
    caller_wav(tmp_path / "caller.wav", 16000)  # 600 Hz "speech" from 1.0 to 2.0 s
    env = {"SIP_TEST_GREETING": "1000:4", "SIP_TEST_CLEAR_ON_SPEECH": "1"}
    with gateway_serve(tmp_path, env=env) as gw:
        summary = gateway_call(
            "--to", f"sip:dental@127.0.0.1:{gw.port}", "--play", str(tmp_path / "caller.wav"),
            "--record", str(tmp_path / "agent.wav"), "--codec", "G722", "--dtmf", "12#", "--dtmf-at", "0.3",
            "--duration", "3",
        )  # fmt: skip
        (call,) = gw.results(1)
    assert summary["answered"] and summary["codec"] == "G722" and summary["sample_rate"] == 16000
    assert summary["ended_by"] == "caller"
    assert call["codec"] == "G722" and call["sample_rate"] == 16000
    assert call["reason"] == "caller_hangup"
    assert [d for _, d in call["dtmf"]] == ["1", "2", "#"]
    assert 0.25 <= call["dtmf"][0][0] <= 0.5
    # The session hears the caller start at 1.0 s and clears its 4 s greeting at once ...
    assert 0.98 <= call["cleared_at"] <= 1.15
    # ... and the caller hears the greeting from the start until just after that, then nothing stale.
    heard = [
        t for t, rms, f in wav_activity(tmp_path / "agent.wav") if rms > SPEECH_RMS and abs(f - 1000) < 60
    ]
    assert heard[0] <= 0.1
    assert call["cleared_at"] <= heard[-1] <= call["cleared_at"] + 0.2
    assert len(heard) >= 45


def test_agent_hangup_over_tcp_with_pcma(tmp_path: Path) -> None:
    caller_wav(tmp_path / "caller.wav")
    with gateway_serve(tmp_path, env={"SIP_TEST_HANGUP_AFTER": "1.0"}) as gw:
        summary = gateway_call(
            "--to", f"sip:dental@127.0.0.1:{gw.port}", "--play", str(tmp_path / "caller.wav"),
            "--codec", "PCMA", "--transport", "tcp", "--duration", "8",
        )  # fmt: skip
        (call,) = gw.results(1)
    assert summary["answered"] and summary["codec"] == "PCMA"
    assert summary["ended_by"] == "remote"
    assert 0.9 <= summary["seconds"] <= 2.0
    assert call["reason"] == "agent_hangup"
