"""`gateway demo`: the dental receptionist answers a real SIP call, then its timeline is printed.

What it runs, all on 127.0.0.1 with the embedded defaults (SQLite `gateway.db`, local models):
1. `gateway db upgrade` on the metrics database;
2. the demo appointment service (`gateway appointments --port 8090`) the agent's tools call;
3. `gateway serve --config config/gateway.yaml` (Kamailio front, pjsua2 workers, sessions, HTTP);
4. a caller WAV synthesised with Piper (the caller books an appointment, says "uh-huh" while the
   agent lists slots, and barges in with "actually, wait"), played by `gateway call` over SIP;
5. the call's timeline from the database (`gateway calls show`) and an HTML report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RATE = 8000
# (start second, caller line), laid out around the agent's replies (espeak-ng at rate 165):
# greeting 0-3.4 s; "Which day would suit you?" ~6.7-8.5 s; the slot list ~10.7-15.6 s.
CALLER_SCRIPT: tuple[tuple[float, str], ...] = (
    (4.3, "I would like to book an appointment."),
    (9.3, "Tuesday."),
    # A backchannel while the agent lists the slots: it must keep talking. ("Uh-huh": the barge-in
    # model's verdict on Piper's "mm-hmm" sits at the threshold, see models/bargein/MODEL_CARD.md.)
    (11.9, "Uh-huh."),
    (13.3, "Actually, wait!"),  # a real barge-in: it must stop
    (17.6, "Tuesday at eleven, please."),
    (23.6, "My name is John Smith."),
)
CALL_SECONDS = 33.0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="run the dental receptionist on a demo SIP call and show its timeline"
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="caller/agent WAVs and the report")
    parser.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    parser.add_argument("--db", default=None, help="metrics database (default: database.url of the config)")
    parser.add_argument("--sip-port", type=int, default=5060)
    parser.set_defaults(func=run)


def synthesize_caller(path: Path) -> None:
    """The demo caller's side of the call, as an 8 kHz WAV (Piper's voice; espeak-ng if absent)."""
    from gateway.audio.wav import write_wav
    from gateway.backends.base import TTS
    from gateway.backends.registry import build_tts
    from gateway.config.schema import ProviderConfig

    try:
        tts: TTS = build_tts(ProviderConfig(provider="piper"))
    except Exception:  # piper missing: the espeak-ng voice still makes a working demo
        tts = build_tts(ProviderConfig.model_validate({"provider": "espeak-ng", "voice": "en-gb"}))

    async def render() -> np.ndarray:
        track = np.zeros(int(CALL_SECONDS * RATE), dtype=np.int32)
        for start, text in CALLER_SCRIPT:
            chunks = [c.pcm async for c in tts.synthesize(text, sample_rate=RATE)]
            pcm = np.concatenate(chunks).astype(np.int32)
            i = int(start * RATE)
            track[i : i + len(pcm)] += pcm[: len(track) - i]
        return np.clip(track, -32768, 32767).astype(np.int16)

    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, asyncio.run(render()), RATE)


def _gateway(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", *args]


def run(args: argparse.Namespace) -> int:
    from gateway.config.loader import load_gateway_config
    from gateway.metrics.database import resolve_db_url
    from gateway.metrics.schema import upgrade

    cfg = load_gateway_config(args.config).config
    db_url = resolve_db_url(args.db or cfg.database.url)
    upgrade(db_url)
    out: Path = args.out
    caller = out / "caller.wav"
    if not caller.exists():
        print(f"demo: synthesising the caller into {caller}", file=sys.stderr)
        synthesize_caller(caller)
    env = {**os.environ, "GATEWAY_DB_URL": db_url}
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            start_process(_gateway("appointments", "--port", "8090"), logs / "appointments.log", env)
        )
        serve = start_process(
            _gateway(
                "-v", "serve", "--config", str(args.config), "--db", db_url, "--sip-port", str(args.sip_port)
            ),
            logs / "serve.log",
            env,
            wait_for=b"SERVING",
        )
        procs.append(serve)
        print("demo: placing the call (about 35 s)", file=sys.stderr)
        call = subprocess.run(
            _gateway(
                "call",
                "--to",
                f"sip:dental@127.0.0.1:{args.sip_port}",
                "--play",
                str(caller),
                "--record",
                str(out / "agent.wav"),
            ),
            env=env,
            capture_output=True,
            check=False,
        )
        (logs / "call.log").write_bytes(call.stderr)
        if call.returncode != 0:
            print(
                f"demo: the call failed:\n{call.stdout.decode()}{call.stderr.decode()[-2000:]}",
                file=sys.stderr,
            )
            return 1
    finally:
        for proc in reversed(procs):
            stop_process(proc)
    from gateway.cli import main as gateway_main

    gateway_main(["calls", "show", "last", "--db", db_url])
    gateway_main(["report", "--since", "1h", "--out", str(out / "report.html"), "--db", db_url])
    print(
        f"\ndemo: recordings in {out}/ (caller.wav, agent.wav), report {out / 'report.html'}", file=sys.stderr
    )
    return 0


def start_process(
    cmd: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    wait_for: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own process group, logging to `log`; with `wait_for`, return once its
    stdout prints that (its ready line), else raise SystemExit with the end of the log."""
    err = log.open("wb")
    stdout = subprocess.PIPE if wait_for is not None else err
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=err, env=env, cwd=cwd, start_new_session=True)
    if wait_for is None:
        return proc
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if wait_for in line:
            return proc
        if not line and proc.poll() is not None:
            break
    stop_process(proc)
    raise SystemExit(f"{' '.join(cmd[2:])} did not start:\n{log.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
