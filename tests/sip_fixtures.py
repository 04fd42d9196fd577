"""Helpers for the SIP edge tests: a recording test session, `gateway serve` and sipp processes.

The session runs inside the `gateway serve` process (started with
`--session tests.sip_fixtures:recording_session`), so it reports through files: at the end of each
call it writes `<SIP_TEST_OUT>/<call-id>.json` with per-frame energy and dominant frequency, DTMF
and the end reason. Behaviour is chosen with environment variables:

- SIP_TEST_GREETING=FREQ:SECONDS   tone played on answer (default 1000 Hz for 0.6 s)
- SIP_TEST_HANGUP_AFTER=SECONDS    the agent hangs up at this call time
- SIP_TEST_CLEAR_ON_SPEECH=1       clear() the playout as soon as caller energy appears
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "sip" / "scenarios"
SPEECH_RMS = 1000.0


# -- the session (runs inside `gateway serve`) ----------------------------------------------------
def frame_features(pcm: np.ndarray, rate: int) -> tuple[float, float]:
    x = pcm.astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    if rms < 1.0:
        return rms, 0.0
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=4 * len(x)))
    freq = float(np.argmax(spectrum) * rate / (4 * len(x)))
    return rms, freq


def tone(rate: int, seconds: float, freq: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


async def recording_session(transport: Any) -> None:
    from gateway.calls import CallEnded, Dtmf, InboundFrame

    out_dir = Path(os.environ.get("SIP_TEST_OUT", "."))
    rate = transport.info.sample_rate
    freq, seconds = (float(v) for v in os.environ.get("SIP_TEST_GREETING", "1000:0.6").split(":"))
    hangup_after = float(os.environ.get("SIP_TEST_HANGUP_AFTER", "0") or 0)
    clear_on_speech = os.environ.get("SIP_TEST_CLEAR_ON_SPEECH") == "1"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", transport.info.call_id)
    (out_dir / f"{safe}.started").touch()
    if seconds > 0:
        transport.play(tone(rate, seconds, freq))
    frames: list[list[float]] = []
    dtmf: list[list[Any]] = []
    cleared_at: float | None = None
    reason = ""
    async for event in transport.events():
        if isinstance(event, InboundFrame):
            rms, f = frame_features(event.pcm, rate)
            frames.append([round(event.t, 3), round(rms, 1), round(f, 1)])
            if clear_on_speech and cleared_at is None and rms > SPEECH_RMS:
                transport.clear()
                cleared_at = event.t
            if hangup_after and event.t >= hangup_after:
                hangup_after = 0
                await transport.hangup("agent_hangup")
        elif isinstance(event, Dtmf):
            dtmf.append([round(event.t, 3), event.digit])
        elif isinstance(event, CallEnded):
            reason = event.reason
    info = transport.info
    result = {
        "call_id": info.call_id,
        "agent": info.agent,
        "codec": info.codec,
        "sample_rate": rate,
        "reason": reason,
        "frames": frames,
        "dtmf": dtmf,
        "cleared_at": cleared_at,
        "worker_frames_dropped": getattr(transport, "worker_frames_dropped", 0),
        "frames_dropped": getattr(transport, "frames_dropped", 0),
    }
    tmp = out_dir / f".{safe}.tmp"
    tmp.write_text(json.dumps(result))
    tmp.rename(out_dir / f"{safe}.json")


# -- plans and processes --------------------------------------------------------------------------
def sip_plan(*overrides: str, workers: int = 1, max_calls: int | None = None) -> Any:
    """The SipPlan `gateway serve` would make of the built-in configuration with `overrides`."""
    from gateway.config.loader import load_gateway_config
    from gateway.edges.sip.service import plan_from_config

    cfg = load_gateway_config(None, ["routes=[]", *overrides]).config
    return plan_from_config(cfg, workers=workers, max_calls=max_calls)


def two_workers_of_two_calls(run_dir: Path) -> Any:
    """A SipPlan on port 5999: two workers of two calls each, generated files in `run_dir`."""
    plan = sip_plan("sip.port=5999", workers=2, max_calls=4)
    plan.run_dir = run_dir
    return plan


def bare_worker_command(sip_port: int, *overrides: str) -> list[str]:
    """A worker without a session host (frames discarded) on a loopback port, as the built-in
    configuration with `overrides` would make it."""
    from gateway.edges.sip.service import worker_options

    options = worker_options(sip_plan(*overrides), 0, sip_port, None)
    return [sys.executable, "-m", "gateway.edges.sip.worker", "--options", options.to_json()]


@contextlib.contextmanager
def bare_worker(*overrides: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A worker without a session host (frames discarded), straight on a loopback port: its port
    and its process."""
    from gateway.edges.sip.ports import free_port

    port = free_port()
    proc = subprocess.Popen(
        bare_worker_command(port, *overrides),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"READY")
        yield port, proc
    finally:
        kill_group(proc)


def gateway_processes(run_dir: Path, module: bytes) -> dict[int, list[bytes]]:
    """pid -> command line of the processes running `module` (e.g. b"gateway.edges.sip.worker")
    whose command line names `run_dir` (other gateways on the machine are left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if module in args and str(run_dir).encode() in b" ".join(args):
            found[int(entry.name)] = args
    return found


def kill_group(proc: subprocess.Popen[Any], timeout: float = 8.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group (workers, kamailio)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@dataclass
class Gateway:
    proc: subprocess.Popen[Any]
    port: int
    out_dir: Path
    run_dir: Path

    def results(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first `n` call reports, waiting for sessions in the other process to write them."""
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(self.out_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
            if len(files) >= n or time.monotonic() > deadline:
                return [json.loads(p.read_text()) for p in files]
            time.sleep(0.05)  # results come from another process: poll with a deadline

    def wait_started(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until `n` sessions have started (they run in the other process: poll)."""
        deadline = time.monotonic() + timeout
        while len(list(self.out_dir.glob("*.started"))) < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def log(self, name: str) -> str:
        path = self.run_dir / name
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def gateway_serve(
    tmp: Path, *args: str, env: dict[str, str] | None = None, workers: int = 1
) -> Iterator[Gateway]:
    from gateway.edges.sip.ports import free_port

    port = free_port()
    out_dir = tmp / "sessions"
    run_dir = tmp / "run"
    out_dir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "SIP_TEST_OUT": str(out_dir), **(env or {})}
    cmd = [
        sys.executable, "-m", "gateway", "-v", "serve",
        "--sip-port", str(port), "--workers", str(workers), "--run-dir", str(run_dir),
        "--session", "tests.sip_fixtures:recording_session", "--drain-timeout", "3",
        "--set", "sip.rate_limit=null", *args,
    ]  # fmt: skip
    stderr = open(tmp / "serve.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
    )
    stderr.close()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # "SERVING sip" once the front answers
        if not line.startswith("SERVING"):
            raise RuntimeError("gateway serve did not start:\n" + (tmp / "serve.err").read_text()[-3000:])
        yield Gateway(proc, port, out_dir, run_dir)
    finally:
        kill_group(proc)


def needs_sipp_and_kamailio() -> list[Any]:
    """The `pytestmark` of tests that call `gateway serve` with sipp (the set-up installs sipp and
    Kamailio, so their absence fails the tests rather than skipping them)."""
    import pytest  # here, not at the top: `gateway serve` imports this module for its session

    return [pytest.mark.slow]


def _sipp_command(port: int, scenario: str, *args: str) -> list[str]:
    return [
        "sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", "0",
        "-nostdin", *args, f"127.0.0.1:{port}",
    ]  # fmt: skip


def run_sipp(
    cwd: Path, port: int, scenario: str, *args: str, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run sipp (one call unless told otherwise) against 127.0.0.1:port; cwd holds caller.pcap."""
    cmd = _sipp_command(port, scenario, "-trace_err", "-error_file", str(cwd / "sipp_errors.log"), *args)
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out = ""
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def sipp_in_background(cwd: Path, port: int, scenario: str, *args: str) -> subprocess.Popen[bytes]:
    """sipp against 127.0.0.1:port, left running (calls held while the test does something else);
    end it with `kill_group`."""
    return subprocess.Popen(
        _sipp_command(port, scenario, *args),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def caller_wav(path: Path, rate: int = 8000) -> np.ndarray:
    """3 s: silence, a 600 Hz 'speech' burst from 1.0 to 2.0 s, silence."""
    from gateway.audio.wav import write_wav

    x = np.zeros(3 * rate, np.int16)
    x[rate : 2 * rate] = tone(rate, 1.0, 600.0, level=0.35)
    write_wav(path, x, rate)
    return x


def energetic(frames: list[list[float]], freq: float, tol: float = 60.0) -> list[float]:
    """Times of frames with speech-level energy at about `freq` Hz."""
    return [t for t, rms, f in frames if rms > SPEECH_RMS and abs(f - freq) <= tol]


def gateway_call(*args: str, timeout: float = 30.0) -> dict[str, Any]:
    """Run `gateway call ...` (pjsua2 in its own process) and return its JSON summary."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "call", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"gateway call printed no summary (rc {proc.returncode}):\n{err[-2000:]}"
    return dict(json.loads(lines[-1]))


def wav_activity(path: Path) -> list[tuple[float, float, float]]:
    """(t, rms, dominant Hz) per 20 ms frame of a mono WAV."""
    from gateway.audio.wav import read_wav

    audio = read_wav(path)
    x, rate = audio.pcm[:, 0], audio.rate
    n = rate // 50
    return [(i * 0.02, *frame_features(x[i * n : (i + 1) * n], rate)) for i in range(len(x) // n)]


def sdp_offer(port: int, payloads: str = "0", rtpmap: str = "a=rtpmap:0 PCMU/8000\r\n") -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {payloads}\r\n{rtpmap}a=sendrecv\r\n"
    )


def invite(
    port: int,
    local_port: int,
    user: str = "dental",
    body: str = "",
    content_type: str = "application/sdp",
    drop: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
) -> bytes:
    """A hand-made INVITE; `drop` removes headers by name (malformed requests), `extra` adds some."""
    import secrets

    headers = {
        "Via": f"SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{secrets.token_hex(6)};rport",
        "Max-Forwards": "70",
        "From": f"<sip:raw@127.0.0.1:{local_port}>;tag={secrets.token_hex(4)}",
        "To": f"<sip:{user}@127.0.0.1:{port}>",
        "Call-ID": f"{secrets.token_hex(8)}@raw",
        "CSeq": "1 INVITE",
        "Contact": f"<sip:raw@127.0.0.1:{local_port}>",
    }
    headers.update(extra or {})
    if body:
        headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body.encode()))
    lines = [f"INVITE sip:{user}@127.0.0.1:{port} SIP/2.0"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k not in drop]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class RawSip:
    """A UDP socket for hand-made requests; collects replies until a final one."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()

    def request(self, data: bytes, port: int, timeout: float = 3.0) -> str | None:
        """Send, and return the first final (>= 200) reply, or None if nothing final arrives."""
        self.sock.sendto(data, ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                reply = self.sock.recv(65535).decode(errors="replace")
            except OSError:
                return None
            code = reply.split(" ", 2)[1] if reply.startswith("SIP/2.0 ") else ""
            if code.isdigit() and int(code) >= 200:
                if code.startswith("2") or code.startswith("3"):
                    return reply  # the caller ACKs or BYEs as it needs
                self.ack(reply, port)
                return reply
        return None

    def ack(self, reply: str, port: int) -> None:
        """ACK a non-2xx final reply (same branch as the INVITE), so the server stops retransmitting."""
        heads: dict[str, str] = {}
        for line in reply.split("\r\n")[1:]:
            if not line:
                break
            name, _, value = line.partition(":")
            heads.setdefault(name.strip().lower(), value.strip())
        if not {"via", "from", "to", "call-id"} <= heads.keys():
            return
        to = heads["to"]
        uri = to[to.find("<") + 1 : to.find(">")] if "<" in to else to.split(";")[0]
        ack = (
            f"ACK {uri} SIP/2.0\r\nVia: {heads['via']}\r\nMax-Forwards: 70\r\nFrom: {heads['from']}\r\n"
            f"To: {to}\r\nCall-ID: {heads['call-id']}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        self.sock.sendto(ack.encode(), ("127.0.0.1", port))

    def ack_and_bye(self, reply: str, port: int, timeout: float = 3.0) -> str | None:
        """End a call answered with `reply` (a 2xx straight from a worker, no Record-Route): ACK it,
        send BYE and return the BYE's final reply."""
        import secrets

        contact = header(reply, "contact") or ""
        uri = contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else contact
        common = "".join(
            f"{name}: {header(reply, name)}\r\n" for name in ("From", "To", "Call-ID") if header(reply, name)
        )
        for method, cseq in (("ACK", 1), ("BYE", 2)):
            via = f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport"
            msg = (
                f"{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n{common}"
                f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
            )
            if method == "ACK":
                self.sock.sendto(msg.encode(), ("127.0.0.1", port))
            else:
                return self.request(msg.encode(), port, timeout)
        return None


def invite_reply(port: int) -> str | None:
    """The final reply to one INVITE with an SDP offer, sent from a fresh `RawSip`."""
    raw = RawSip()
    try:
        return raw.request(invite(port, raw.port, body=sdp_offer(40000)), port)
    finally:
        raw.close()


def sdp_of(reply: str) -> str:
    """The body of a SIP message."""
    return reply.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in reply else ""


def status(reply: str | None) -> int | None:
    if reply is None:
        return None
    return int(reply.split(" ", 2)[1])


def header(reply: str, name: str) -> str | None:
    for line in reply.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None
