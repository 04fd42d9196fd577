"""End to end: sipp calls through the Kamailio front into pjsua2 workers and the test session."""

from __future__ import annotations

from pathlib import Path

import pytest

# tests/ is on sys.path under pytest; `gateway serve` imports the session as tests.sip_fixtures
from sip_fixtures import caller_wav, energetic, gateway_serve, needs_sipp_and_kamailio, run_sipp

from gateway.edges.sip.pcap import wav_to_pcap

pytestmark = needs_sipp_and_kamailio()


@pytest.mark.parametrize(("codec", "pt"), [("PCMU", 0), ("PCMA", 8)])
def test_sipp_call_audio_both_ways(tmp_path: Path, codec: str, pt: int) -> None:
    caller_wav(tmp_path / "caller.wav")
    wav_to_pcap(tmp_path / "caller.wav", tmp_path / "caller.pcap", codec)
    sdp = ["-s", "dental", "-m", "1", "-key", "pt", str(pt), "-key", "codec", codec]
    with gateway_serve(tmp_path, "--set", f"sip.codecs=[{codec}]") as gw:
        res = run_sipp(tmp_path, gw.port, "uac_pcap.xml", *sdp, "-d", "3000")
        assert res.returncode == 0, res.stdout[-2000:]
        (spoken,) = gw.results(1)
        res = run_sipp(tmp_path, gw.port, "uac_echo.xml", *sdp, "-d", "1500", "-mp", "0", "-rtp_echo")
        assert res.returncode == 0, res.stdout[-2000:]
        echoed = gw.results(2)[1]
    for call in (spoken, echoed):
        assert call["codec"] == codec
        assert call["agent"] == "dental"
        assert call["reason"] == "caller_hangup"
        assert call["worker_frames_dropped"] == 0
    # Caller audio reaches the session at the right time: the 600 Hz burst is at 1.0-2.0 s of the
    # capture, which sipp starts right after its ACK.
    speech = energetic(spoken["frames"], 600.0)
    assert len(speech) >= 45, spoken["frames"][:120]
    assert 0.95 <= speech[0] <= 1.2 and 1.95 <= speech[-1] <= 2.2
    # Agent audio leaves in RTP: sipp echoes it, so the session's 1 kHz greeting (t = 0 to 0.6 s)
    # comes back as caller audio a few frames later.
    echo = energetic(echoed["frames"], 1000.0)
    assert len(echo) >= 25, echoed["frames"][:60]
    assert echo[0] < 0.2 and echo[-1] < 0.9
