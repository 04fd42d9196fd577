"""Command-line options shared by the commands that read a configuration (argparse only: cheap to import)."""

from __future__ import annotations

import argparse


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """`--set KEY.PATH=VALUE`, repeatable, collected in `args.overrides`."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a configuration value, e.g. --set interruption.mode=vad (repeatable)",
    )
