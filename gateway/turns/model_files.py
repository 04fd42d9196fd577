"""The committed ONNX models, read as package data: `gateway/turns/models/` in the installed
package (in a checkout those are links to `models/`, where each model has its card and recipe)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def model_file(name: str) -> Path:
    """The path of a packaged model, e.g. `model_file("bargein.onnx")`."""
    return Path(str(files("gateway.turns") / "models" / name))
