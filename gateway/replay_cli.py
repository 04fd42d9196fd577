"""`gateway replay FILE.wav [...]`: JSON lines of turn events for stereo call recordings."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from gateway.config.cli_args import add_set_option

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "replay",
        help="run stereo recordings (ch0 caller, ch1 agent) through the turn engine; JSON lines out",
        description=(
            "Replay stereo WAVs (16-bit PCM or mu-law; 8 or 16 kHz; channel 0 = caller, channel 1 = "
            "agent playout) through the same turn pipeline as live calls and print one JSON event "
            "per line on stdout."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE.wav")
    parser.add_argument("--config", help="agent YAML (default: built-in defaults)")
    add_set_option(parser)
    parser.add_argument(
        "--all-events",
        action="store_true",
        help="also print the engine's playout decisions and detector fallbacks",
    )
    parser.add_argument("--db", help="also write calls and events to this database URL")
    parser.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.config.errors import ConfigError
    from gateway.config.loader import load_agent_config
    from gateway.replay import Replayer, ReplayError
    from gateway.turns.registry import DetectorNotFound

    try:
        loaded = load_agent_config(args.config, args.overrides)
        for warning in loaded.warnings:
            print(warning, file=sys.stderr)
        options = loaded.config.turn_handling.to_options()
        replayer = Replayer(options)
    except (ConfigError, DetectorNotFound) as exc:
        print(f"gateway replay: {exc}", file=sys.stderr)
        return 2
    sink = None
    if args.db:
        from gateway.metrics.replay_sink import ReplaySink
        from gateway.metrics.schema import SchemaOutOfDate

        try:
            sink = ReplaySink(args.db, loaded.config.agent)
        except SchemaOutOfDate as exc:
            print(f"gateway replay: {exc}", file=sys.stderr)
            return 2
    failures = 0
    files = args.files
    if args.progress:
        from tqdm import tqdm

        files = tqdm(files, unit="file", file=sys.stderr)
    for path in files:
        try:
            result = replayer.replay_file(path, label=path)
        except (ReplayError, OSError, ValueError) as exc:
            failures += 1
            print(f"gateway replay: {exc}", file=sys.stderr)
            continue
        for row in result.contract_events() if not args.all_events else _all(result):
            sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()
        if sink is not None:
            sink.record(result)
    if sink is not None:
        sink.close()
    return 1 if failures else 0


def _all(result: Any) -> list[dict[str, object]]:
    return [{"file": result.file, **e.to_dict()} for e in sorted(result.events, key=lambda e: e.t)]
