"""The example configuration shipped in the package: `gateway.yaml` and the agents (`dental`,
`default`), the same files as `config/` in a checkout (`gateway/examples` links to it there)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def examples_dir() -> Path:
    return Path(str(files("gateway") / "examples"))


def example_gateway() -> Path:
    return examples_dir() / "gateway.yaml"


def example_agent(name: str) -> Path:
    """`agents/NAME.yaml` of the examples (it may not exist)."""
    return examples_dir() / "agents" / f"{name}.yaml"
