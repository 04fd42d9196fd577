"""Command line: `gateway serve`, the whole gateway in one process tree (`gateway.runtime`).

`--session package.module:function` runs only the SIP edge, with that coroutine as every call's
session (no metrics database, no HTTP edges): for load tests and SIP smoke tests.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
    serve.add_argument(
        "--role",
        choices=("standalone", "node"),
        default="standalone",
        help="node: one of several gateways behind `gateway front`, sharing one PostgreSQL; it holds "
        "its instance's lock there and closes the calls of nodes that died (gateway.metrics.nodes)",
    )
    serve.add_argument("--instance", default=None, help="this gateway's name in calls.instance")
    serve.set_defaults(func=_serve)
    host = sub.add_parser(
        "session-host", help="(internal) one session-host process, started by gateway serve"
    )
    host.add_argument("--control-fd", type=int, required=True, help="control socket from gateway serve")
    host.add_argument("--socket", required=True, help="Unix socket the workers connect to")
    host.add_argument("--index", type=int, default=0)
    host.set_defaults(func=_session_host)


def _session_host(args: argparse.Namespace) -> int:
    from gateway.runtime import run_session_host

    return asyncio.run(run_session_host(args.control_fd, args.socket, args.index))


def _serve(args: argparse.Namespace) -> int:
    from gateway.config.errors import ConfigError
    from gateway.config.loader import load_gateway_config
    from gateway.edges.sip.service import SipService, check_tls_files, load_session_factory, plan_from_config
    from gateway.http.exposure import exposure_problems
    from gateway.metrics.schema import SchemaOutOfDate
    from gateway.services import Service, run_services

    overrides = list(args.set)
    if args.sip_host is not None:
        overrides.append(f"sip.host={args.sip_host}")
    if args.sip_port is not None:
        overrides.append(f"sip.port={args.sip_port}")
    if args.http_port is not None:
        overrides.append(f"http.port={args.http_port}")
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
        exposed = exposure_problems(cfg, http=not args.session)  # unauthenticated beyond loopback
        if exposed:
            raise ConfigError.group(loaded.error(path, why) for path, why in exposed)
    except ConfigError as exc:
        print(f"gateway serve: {exc}", file=sys.stderr)
        return 2
    if args.ring_delay is not None:
        plan.ring_delay = args.ring_delay
    if args.drain_timeout is not None:
        plan.drain_timeout = args.drain_timeout
    plan.run_dir = args.run_dir
    if args.session and args.role == "node":
        print("gateway serve: --role node needs the metrics database (no --session)", file=sys.stderr)
        return 2
    if args.session:
        from gateway.edges.sip.host_pool import HostProcesses
        from gateway.runtime import session_host_command

        processes = HostProcesses(session_host_command(), {"session": args.session, "limits": plan.admission})
        services: list[Service] = [SipService(plan, load_session_factory(args.session), processes=processes)]
    else:
        from gateway.runtime import EdgeUnavailable, GatewayRuntime

        runtime = GatewayRuntime(cfg, args.db)
        if args.instance:
            runtime.instance = args.instance
        try:
            services = runtime.services(plan)
        except EdgeUnavailable as exc:
            print(f"gateway serve: {exc}", file=sys.stderr)
            return 2
        if args.role == "node":
            from gateway.metrics.nodes import NodeSweeper

            if not runtime.db_url.startswith("postgresql"):
                print("gateway serve: --role node needs a PostgreSQL database (--db)", file=sys.stderr)
                return 2
            services.insert(1, NodeSweeper(runtime.db_url, runtime.instance))  # after metrics
        runtime.configure_local_stt()
        if plan.session_hosts == 0 or cfg.webrtc.enabled or cfg.mediastream.enabled:
            # calls whose sessions run in this process: load their models before the first rings
            runtime.runner.warm_up(runtime.agent_names())
        # Models and configs loaded above live for the whole process: keep them out of the garbage
        # collector's generations, so its pauses stay short on the audio loop.
        gc.collect()
        gc.freeze()
    from gateway.metrics.nodes import NodeLockHeld

    try:
        return asyncio.run(run_services(services, plan.drain_timeout))
    except (SchemaOutOfDate, NodeLockHeld) as exc:
        print(f"gateway serve: {exc}", file=sys.stderr)
        return 2
