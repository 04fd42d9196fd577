"""The `gateway` console command.

Each sub-command lives next to the code it drives and exposes `register(subparsers)`; this file
only lists them. Command modules keep heavy imports (onnxruntime, sqlalchemy) inside their
handlers so that `gateway --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gateway import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "gateway.config_cli",  # check-config
    "gateway.replay_cli",  # replay
    "gateway.eval_bargein",  # eval-bargein
    "gateway.serve_cli",  # serve
    "gateway.front_cli",  # front (a dispatcher over several nodes)
    "gateway.edges.sip.cli",  # call
    "gateway.metrics.cli",  # db, calls, report
    "gateway.demo.appointments",  # appointments (demo tool service)
    "gateway.demo",  # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Telephony voice-bot gateway with local adaptive barge-in detection.",
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
