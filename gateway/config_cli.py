"""`gateway check-config FILE [FILE ...] [--set key.path=value ...] [--kind agent|gateway]`.

Prints `FILE: ok (agent NAME)` (or `FILE: ok (gateway, N routes)`) on stdout for each valid file,
and every error and warning on stderr as `FILE:LINE: key.path: message`. A gateway file's routes
are checked too: each agent file they name must exist and be valid. Exit code 0 when every file
is valid (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.config.cli_args import add_set_option


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate agent or gateway YAML files",
        description="Validate agent and gateway YAML files; errors name the file, line and key.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="agent or gateway YAML file")
    add_set_option(parser)
    parser.add_argument(
        "--kind",
        choices=("agent", "gateway"),
        default=None,
        help="file kind (default: gateway if the file has sip/http/routes/database keys and no agent key)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.backends.registry import validate_agent
    from gateway.config.errors import ConfigError
    from gateway.config.loader import detect_kind, load_agent_config, load_gateway_config, route_agent_paths

    failed = False
    for file in args.files:
        try:
            kind = args.kind or detect_kind(file)
            if kind == "agent":
                agent = load_agent_config(file, args.overrides)
                validate_agent(agent)
                _print_warnings(agent.warnings)
                print(f"{file}: ok (agent {agent.config.agent})")
                continue
            gateway = load_gateway_config(file, args.overrides)
            _print_warnings(gateway.warnings)
            from gateway.http.exposure import exposure_problems  # what `gateway serve` would refuse

            refusals = exposure_problems(gateway.config)
            _print_warnings(
                [gateway.origins.warning(p, f"gateway serve refuses this: {why}") for p, why in refusals]
            )
            errors: list[ConfigError] = []
            checked: set[str] = set()
            for key_path, agent_file in route_agent_paths(gateway.config):
                if agent_file in checked:
                    continue
                checked.add(agent_file)
                try:
                    agent = load_agent_config(agent_file)
                    validate_agent(agent)
                except ConfigError as exc:
                    if exc.file == agent_file and exc.line is None and exc.message == "file not found":
                        exc = gateway.error(
                            key_path,
                            f"agent file {agent_file!r} not found "
                            "(relative paths are resolved from the working directory)",
                        )
                    errors.append(exc)
                    continue
                _print_warnings(agent.warnings)
            if errors:
                raise ConfigError.group(errors)
            n = len(gateway.config.routes)
            print(f"{file}: ok (gateway, {n} route{'s' if n != 1 else ''})")
        except ConfigError as exc:
            failed = True
            print(str(exc), file=sys.stderr)
    return 1 if failed else 0


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(warning, file=sys.stderr)
