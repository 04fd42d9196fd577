"""Command line: `gateway front`, a Kamailio dispatcher over several gateway nodes.

    gateway front --host 0.0.0.0 --node 10.0.0.11 --node 10.0.0.12:5070
    gateway front --node 10.0.0.11 --node 10.0.0.12 --print-config > kamailio.cfg   (an operator's own)

The configuration comes from `gateway/edges/sip/front.cfg.tmpl` through the renderer of the node's
own front (`gateway.edges.sip.kamailio`): OPTIONS probing of every node, round-robin of new INVITEs
over the nodes that answer, failover of an INVITE a node refuses (408/480/486/5xx) or leaves unanswered
to the next node. Kamailio runs in the foreground; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

FRONT_TEMPLATE = Path(str(files("gateway.edges.sip") / "front.cfg.tmpl"))


def parse_node(value: str) -> tuple[str, int]:
    """`10.0.0.11`, `10.0.0.11:5070`, `node-1.example.org` or `[2001:db8::1]:5060` -> (host, port)."""
    value = value.strip()
    host, port = value, 5060
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise argparse.ArgumentTypeError(f"node {value!r}: expected [ADDRESS]:PORT")
            port = _port(value, rest[1:])
        host = f"[{host}]"
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = _port(value, port_text)
    elif ":" in value:
        ipaddress.IPv6Address(value)  # a bare IPv6 address, without a port
        host = f"[{value}]"
    if not host or any(c in host for c in " \t;,\"'$\\"):
        raise argparse.ArgumentTypeError(f"node {value!r}: expected HOST or HOST:PORT")
    return host, port


def _port(node: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"node {node!r}: port must be 1-65535, got {text!r}")
    return int(text)


def register(sub: Any) -> None:
    front = sub.add_parser("front", help="run a Kamailio dispatcher over several gateway nodes")
    front.add_argument(
        "--node",
        action="append",
        type=parse_node,
        required=True,
        metavar="HOST[:PORT]",
        help="a gateway node's SIP address (repeat for each node; port 5060 by default)",
    )
    front.add_argument("--host", default="127.0.0.1", help="address the dispatcher listens on")
    front.add_argument("--port", type=int, default=5060, help="SIP port (UDP and TCP)")
    front.add_argument("--no-tcp", action="store_true", help="UDP only")
    front.add_argument(
        "--ping-interval", type=int, default=2, help="seconds between OPTIONS probes of every node"
    )
    front.add_argument(
        "--node-timeout",
        type=float,
        default=2.0,
        help="seconds a node may take to answer an INVITE at all before the call goes to another node",
    )
    front.add_argument("--allow", action="append", default=[], metavar="CIDR", help="trunk addresses")
    front.add_argument(
        "--invites-per-second", type=float, default=0.0, help="INVITE flood limit per source (0: none)"
    )
    front.add_argument("--retry-after", type=int, default=5, help="Retry-After of a 503 when no node takes")
    front.add_argument("--children", type=int, default=2, help="Kamailio worker processes per transport")
    front.add_argument("--run-dir", type=Path, default=None, help="generated config, dispatcher list, log")
    front.add_argument("--print-config", action="store_true", help="print the configuration and exit")
    front.set_defaults(func=_front)


def _options(args: argparse.Namespace) -> Any:
    from gateway.edges.sip.kamailio import FrontOptions

    return FrontOptions(
        host=args.host,
        port=args.port,
        tcp=not args.no_tcp,
        retry_after=args.retry_after,
        children=args.children,
        allow=list(args.allow),
        invites_per_second=args.invites_per_second,
        ping_interval=args.ping_interval,
        fr_timer_ms=max(100, round(args.node_timeout * 1000)),
        template=FRONT_TEMPLATE,
    )


def _front(args: argparse.Namespace) -> int:
    from gateway.edges.sip.kamailio import KamailioFront, dispatcher_list, module_dir, render_config

    opts = _options(args)
    if args.print_config:
        run_dir = args.run_dir or Path("/var/lib/gateway/front")
        sys.stdout.write(render_config(opts, run_dir / "dispatcher.list", module_dir()))
        sys.stderr.write(f"# {run_dir / 'dispatcher.list'}:\n{dispatcher_list(args.node)}")
        return 0
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="gateway-front-"))
    front = KamailioFront(opts, run_dir, args.node)
    try:
        return asyncio.run(_run(front))
    except RuntimeError as exc:
        print(f"gateway front: {exc}", file=sys.stderr)
        return 2


async def _run(front: Any) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await front.start()
    nodes = " ".join(f"{h}:{p}" for h, p in front.workers)
    print(f"SERVING front {front.opts.host}:{front.opts.port} -> {nodes}", flush=True)
    exited = asyncio.create_task(front.proc.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if exited.done():
        code = 1
        returncode = front.proc.returncode
        print(f"gateway front: kamailio exited ({returncode}); log {front.run_dir}", file=sys.stderr)
    stopped.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopped
    await front.stop()
    return code


__all__ = ["FRONT_TEMPLATE", "parse_node", "register"]
