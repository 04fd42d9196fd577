"""Command line: `gateway call`, a test caller that plays a WAV into a gateway over SIP."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    call = sub.add_parser("call", help="place a test call: play a WAV, record what the agent says")
    call.add_argument("--to", required=True, help="e.g. sip:dental@127.0.0.1:5060")
    call.add_argument("--play", type=Path, default=None, help="caller audio (WAV)")
    call.add_argument("--record", type=Path, default=None, help="where to write the agent's audio (WAV)")
    call.add_argument("--duration", type=float, default=None, help="seconds before hanging up")
    call.add_argument("--codec", action="append", default=None, help="PCMU | PCMA | G722 (repeatable)")
    call.add_argument(
        "--transport",
        choices=["udp", "tcp", "tls"],
        default="udp",
        help="tls: server certificate not verified",
    )
    call.add_argument("--dtmf", default="", help="digits to send (RFC 4733) after --dtmf-at seconds")
    call.add_argument("--dtmf-at", type=float, default=0.5)
    call.add_argument(
        "--srtp",
        choices=["off", "optional", "required"],
        default="off",
        help="SRTP (SDES keys in the SDP: use with --transport tls); required offers RTP/SAVP",
    )
    call.add_argument("--user", default="", help="SIP digest user name (password: $GATEWAY_SIP_PASSWORD)")
    call.set_defaults(func=_call)


def _call(args: argparse.Namespace) -> int:
    import signal
    import threading

    from gateway.edges.sip.caller import CallOptions, place_call

    opts = CallOptions(
        to=args.to,
        play=args.play,
        record=args.record,
        duration=args.duration,
        codecs=args.codec or ["PCMU", "PCMA", "G722"],
        transport=args.transport,
        dtmf=args.dtmf,
        dtmf_at=args.dtmf_at,
        srtp=args.srtp,
        user=args.user,
        password=os.environ.get("GATEWAY_SIP_PASSWORD", ""),
    )
    # SIGTERM / SIGINT hang the call up (a BYE) and still print the summary.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # PJSIP prints its start-up lines on stdout: keep stdout for the JSON summary alone.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        result = place_call(opts, stop)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    json.dump(dataclasses.asdict(result), sys.stdout)
    sys.stdout.write("\n")
    return 0 if result.answered else 1
