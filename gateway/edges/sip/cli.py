"""Command line: `gateway serve` (SIP front + workers + sessions) and `gateway call` (test caller)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the gateway's edges (SIP front, pjsua2 workers)")
    serve.add_argument("--config", type=Path, default=None, help="gateway YAML (default: built-in)")
    serve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    serve.add_argument("--sip-host", default=None, help="front address (sip.host)")
    serve.add_argument("--sip-port", type=int, default=None, help="front port (sip.port)")
    serve.add_argument("--workers", type=int, default=None, help="pjsua2 worker processes (sip.workers)")
    serve.add_argument("--max-calls", type=int, default=None, help="calls in progress (sip.max_calls)")
    serve.add_argument(
        "--ring-delay", type=float, default=None, help="seconds of ringing before 200 OK (sip.ring_delay)"
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="seconds calls may finish on stop (sip.drain_timeout)",
    )
    serve.add_argument("--run-dir", type=Path, default=None, help="generated configs, sockets and logs")
    serve.add_argument(
        "--session",
        default=None,
        help="session coroutine as package.module:function, instead of the agents of the routes table "
        "(no metrics database, no HTTP edges; for load tests and SIP smoke tests)",
    )
    serve.add_argument("--db", default=None, help="metrics database URL (default: database.url)")
    serve.add_argument("--http-port", type=int, default=None, help="HTTP port (http.port; 0 = any free port)")
    serve.set_defaults(func=_serve)

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
    call.add_argument("--user", default="", help="SIP digest user name (password: $GATEWAY_SIP_PASSWORD)")
    call.set_defaults(func=_call)


def _serve(args: argparse.Namespace) -> int:
    from gateway.config.loader import load_gateway_config
    from gateway.edges.sip.serve import SERVICE_BUILDERS, Service, run_services
    from gateway.edges.sip.service import SipService, check_tls_files, load_session_factory, plan_from_config

    overrides = list(args.set)
    if args.sip_host is not None:
        overrides.append(f"sip.host={args.sip_host}")
    if args.sip_port is not None:
        overrides.append(f"sip.port={args.sip_port}")
    if args.http_port is not None:
        overrides.append(f"http.port={args.http_port}")
    from gateway.config.errors import ConfigError

    try:
        loaded = load_gateway_config(args.config, overrides)
        cfg = loaded.config
        try:
            plan = plan_from_config(cfg, workers=args.workers, max_calls=args.max_calls)
        except ValueError as exc:
            raise loaded.error(("sip", "rtp_ports"), str(exc)) from None
        tls_problems = check_tls_files(plan)
        if tls_problems:
            raise ConfigError.group(loaded.error(("sip", "tls", key), why) for key, why in tls_problems)
    except ConfigError as exc:
        print(f"gateway serve: {exc}", file=sys.stderr)
        return 2
    if args.ring_delay is not None:
        plan.ring_delay = args.ring_delay
    if args.drain_timeout is not None:
        plan.drain_timeout = args.drain_timeout
    plan.run_dir = args.run_dir
    if args.session:
        services: list[Service] = [SipService(plan, load_session_factory(args.session))]
    else:
        from gateway.edges.sip.health import count_frame_drops, sip_health, watch_sip
        from gateway.http.app import HEALTH_CHECKS_KEY
        from gateway.runtime import GatewayRuntime, install_http_edges

        runtime = GatewayRuntime(cfg, args.db)
        install_http_edges()
        agents = [r.agent for r in cfg.routes] + ([cfg.default_agent] if cfg.default_agent else [])
        runtime.runner.warm_up(agents)
        # Models and configs loaded above live for the whole process: keep them out of the garbage
        # collector's generations, so its pauses stay short on the audio loop.
        gc.collect()
        gc.freeze()
        sip = SipService(plan, runtime.runner, on_frames_dropped=count_frame_drops(runtime.metrics))
        http = runtime.http_service()
        http.app[HEALTH_CHECKS_KEY]["sip"] = sip_health(sip.snapshot)
        watch_sip(runtime.metrics, sip.snapshot)
        services = [runtime.metrics_service(), sip, http]
    for build in SERVICE_BUILDERS:
        service = build(args, cfg)
        if service is not None:
            services.append(service)
    from gateway.metrics.schema import SchemaOutOfDate

    try:
        return asyncio.run(run_services(services, plan.drain_timeout))
    except SchemaOutOfDate as exc:
        print(f"gateway serve: {exc}", file=sys.stderr)
        return 2


def _call(args: argparse.Namespace) -> int:
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
        user=args.user,
        password=os.environ.get("GATEWAY_SIP_PASSWORD", ""),
    )
    # PJSIP prints its start-up lines on stdout: keep stdout for the JSON summary alone.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        result = place_call(opts)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    json.dump(dataclasses.asdict(result), sys.stdout)
    sys.stdout.write("\n")
    return 0 if result.answered else 1
