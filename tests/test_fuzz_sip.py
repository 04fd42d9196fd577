"""Fuzzing the SIP edge live: SIP over UDP and TCP (fragmented, oversized), SDP offers inside
INVITEs, RTP/RTCP at the call's media ports, all while a call is in progress.

One `gateway serve` (Kamailio front, one pjsua2 worker) and one good call (`gateway call` playing
a 600 Hz tone; the agent plays a 1000 Hz tone back the whole time). Each target sends its seeded
cases (fuzz_fixtures.budget) and checks each reply; afterwards the gateway still answers a fresh
call, the good call's caller audio reached its session without a gap, the agent's audio reached the
caller throughout, the call ends normally, and no log holds a traceback.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from fuzz_fixtures import CASES, assert_no_unhandled, count, fuzz_settings, report
from fuzz_sip import SDP_TEMPLATE, end_call, exchange, rtp_packets, sdp_offers, sip_datagrams
from hypothesis import given
from hypothesis import strategies as st
from sip_fixtures import (
    REPO,
    SPEECH_RMS,
    RawSip,
    gateway_serve,
    invite,
    kill_group,
    needs_sipp_and_kamailio,
    run_sipp,
    status,
    tone,
    wav_activity,
)

from gateway.audio.wav import write_wav

pytestmark = needs_sipp_and_kamailio()

ECHO = ["-s", "dental", "-m", "1", "-key", "pt", "0", "-key", "codec", "PCMU", "-d", "500"]
TARGETS = ("sip-udp", "sip-tcp", "sdp", "rtp-rtcp")


def rtp_range() -> tuple[int, int]:
    """8 consecutive free UDP ports starting even: the one worker's RTP/RTCP ports."""
    for _ in range(50):
        base = 30000 + 2 * secrets.randbelow(15000)
        socks = []
        try:
            for p in range(base, base + 8):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base, base + 7
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError("no free range of 8 UDP ports")


def well_formed(reply: str | None) -> bool:
    """A reply (if any) is a SIP status line with a code, never something half-written."""
    if reply is None:
        return True
    code = reply.split(" ", 2)[1] if reply.startswith("SIP/2.0 ") else ""
    return code.isdigit() and 100 <= int(code) < 700


def tcp_exchange(port: int, chunks: list[bytes], timeout: float = 0.4) -> bytes:
    """Send `chunks` as separate TCP segments on one connection; what came back before `timeout`
    of silence or the server's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:  # the front may close a connection that sent garbage: allowed
            return b""
        got = b""
        try:
            while data := sock.recv(65536):
                got += data
        except OSError:
            pass
        return got


def test_fuzz_sip_sdp_rtp_with_a_call_in_progress(tmp_path: Path) -> None:
    low, high = rtp_range()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "routes:\n  - match: dental\n    agent: dental.yaml\n"
        f"sip:\n  transports: [udp, tcp]\n  rtp_ports: [{low}, {high}]\n"
    )
    tone_wav = tmp_path / "tone.wav"
    write_wav(tone_wav, tone(8000, 200.0, 600.0, level=0.35), 8000)
    env = {"SIP_TEST_GREETING": "1000:200"}  # the agent's tone, all call long
    with gateway_serve(tmp_path, "--config", str(config), env=env) as gw:
        good = subprocess.Popen(
            [
                sys.executable, "-m", "gateway", "call", "--to", f"sip:dental@127.0.0.1:{gw.port}",
                "--codec", "PCMU", "--play", str(tone_wav), "--record", str(tmp_path / "agent.wav"),
                "--duration", "300",
            ],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            assert gw.wait_started(1, timeout=20), "the good call did not start"
            started = time.monotonic()
            raw = RawSip()
            try:
                _fuzz(gw.port, raw, low, high)
            finally:
                raw.close()
            assert good.poll() is None, "the good call ended during the fuzzing"
            fuzz_seconds = time.monotonic() - started
            # A fresh call is still answered and carried to its end.
            res = run_sipp(tmp_path, gw.port, "uac_echo.xml", *ECHO)
            assert res.returncode == 0, res.stdout[-2000:]
            good.send_signal(signal.SIGTERM)  # the caller hangs up (BYE)
            out, err = good.communicate(timeout=20)
        finally:
            kill_group(good)
        summary = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
        started_calls = len(list(gw.out_dir.glob("*.started")))
        calls = gw.results(started_calls, timeout=20)  # every session's report, the good call's too
        logs = {name: gw.log(name) for name in ("worker0.log",)}
        logs["serve.err"] = (tmp_path / "serve.err").read_text(errors="replace")
    report(TARGETS)
    assert summary["answered"] and summary["ended_by"] == "caller", (summary, err[-2000:])
    call = max(calls, key=lambda c: len(c["frames"]))

    assert call["reason"] == "caller_hangup"
    assert call["frames_dropped"] == 0 and call["worker_frames_dropped"] == 0
    # The caller's tone reached the session in every frame (after the first 0.5 s of set-up).
    frames = [f for f in call["frames"] if f[0] >= 0.5]
    assert len(frames) >= 50 * (fuzz_seconds - 1)
    times = np.array([f[0] for f in frames])
    assert np.max(np.diff(times)) < 0.03, "a gap in the caller's frames"
    bad = [f for f in frames[:-10] if not (f[1] > SPEECH_RMS and abs(f[2] - 600) < 60)]
    assert not bad, f"{len(bad)} of {len(frames)} caller frames were not the caller's tone: {bad[:10]}"
    # The agent's tone reached the caller the whole time (nobody took the media stream over).
    heard = wav_activity(tmp_path / "agent.wav")[25:-10]
    off = [(t, rms, f) for t, rms, f in heard if not (rms > SPEECH_RMS and abs(f - 1000) < 60)]
    assert len(heard) >= 50 * (fuzz_seconds - 1)
    assert not off, f"{len(off)} of {len(heard)} frames the caller heard were not the agent: {off[:10]}"
    for name, text in logs.items():
        assert_no_unhandled(name, text)


def _fuzz(port: int, raw: RawSip, low: int, high: int) -> None:
    def serving() -> None:
        """The front and a worker still answer (a worker's 404 for an unknown user, fresh socket)."""
        probe = RawSip()
        try:
            msg = invite(port, probe.port, user="nobody", body=SDP_TEMPLATE.format(port=40000))
            assert status(probe.request(msg, port, timeout=5.0)) == 404
        finally:
            probe.close()

    @fuzz_settings(40)
    @given(sip_datagrams(port, raw.port))
    def sip_udp(data: bytes) -> None:
        count("sip-udp")
        reply = raw.request(data, port, timeout=0.25)
        assert well_formed(reply), reply
        if reply is not None and status(reply) == 200 and data.startswith(b"INVITE"):
            end_call(raw, reply, port)

    sip_udp()
    serving()

    @fuzz_settings(20)
    @given(sip_datagrams(port, raw.port), st.data())
    def sip_tcp(message: bytes, data: st.DataObject) -> None:
        count("sip-tcp")
        kind = data.draw(st.sampled_from(["fragments", "oversized", "pipelined"]))
        if kind == "oversized":
            message = message + b"X" * data.draw(st.integers(70_000, 300_000))
        elif kind == "pipelined":
            message = message * data.draw(st.integers(2, 5))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(message)), max_size=6)))
        chunks = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)], strict=True)]
        got = tcp_exchange(port, [c for c in chunks if c])
        for reply in got.split(b"SIP/2.0 ")[1:]:
            assert well_formed("SIP/2.0 " + reply.decode(errors="replace")), got[:300]

    sip_tcp()
    serving()

    @fuzz_settings(40)
    @given(sdp_offers())
    def sdp(offer: str) -> None:
        count("sdp")
        reply = exchange(raw, invite(port, raw.port, body=offer), port, timeout=2.0)
        assert well_formed(reply), reply
        code = status(reply)
        if code is not None and 200 <= code < 300:
            assert reply is not None
            bye = end_call(raw, reply, port)
            assert status(bye) == 200, bye
        else:
            # Refused offers get a final answer (a 4xx/5xx/6xx), never silence.
            assert code is not None and code >= 400, f"no final answer to an SDP offer:\n{offer!r}"

    sdp()
    serving()
    # The valid offer itself is still answered (the worker took no harm).
    reply = raw.request(invite(port, raw.port, body=SDP_TEMPLATE.format(port=40000)), port)
    assert status(reply) == 200 and reply is not None
    assert status(end_call(raw, reply, port)) == 200

    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    try:

        @fuzz_settings(300)
        @given(rtp_packets())
        def rtp_rtcp(packet: bytes) -> None:
            count("rtp-rtcp")
            for p in range(low, high + 1):
                rtp.sendto(packet, ("127.0.0.1", p))

        rtp_rtcp()
    finally:
        rtp.close()
    serving()
    assert CASES["sip-udp"] and CASES["sdp"] and CASES["rtp-rtcp"]
