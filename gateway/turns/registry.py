"""Detectors chosen by name in the agent YAML ("auto", "onnx", "heuristic" or "module:factory")."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.turns.detectors import BargeInDetector, DetectorError, EndOfTurnDetector
from gateway.turns.heuristics import HeuristicBargeInDetector, HeuristicEndOfTurnDetector

log = logging.getLogger(__name__)

# Trained models, loaded lazily: (module, class). Absent modules or model files fall back.
_ONNX_BARGEIN = ("gateway.turns.bargein_onnx", "OnnxBargeInDetector")
_ONNX_EOT = ("gateway.turns.eot_onnx", "OnnxEndOfTurnDetector")

D = TypeVar("D", BargeInDetector, EndOfTurnDetector)


class DetectorNotFound(ValueError):
    pass


def _import(path: str) -> Callable[[], Any]:
    module, _, attr = path.partition(":")
    if not attr:
        raise DetectorNotFound(f"detector {path!r}: expected 'auto', 'onnx', 'heuristic' or 'module:factory'")
    try:
        factory: Callable[[], Any] = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise DetectorNotFound(f"detector {path!r}: {exc}") from exc
    return factory


def _onnx(spec: tuple[str, str], required: bool) -> Any | None:
    try:
        return _import(":".join(spec))()
    except (DetectorNotFound, DetectorError, FileNotFoundError, OSError) as exc:
        if required:
            raise DetectorNotFound(f"the ONNX detector is not available: {exc}") from exc
        log.info("ONNX detector %s not available (%s); using the heuristic one", spec[1], exc)
        return None


def _detector(name: str, onnx: tuple[str, str], heuristic: Callable[[], D]) -> D:
    """The detector `name` names: the ONNX one ("onnx"; "auto" falls back to `heuristic` when it is
    not available), `heuristic`, or what a "module:factory" builds."""
    if name in ("auto", "onnx"):
        found = _onnx(onnx, required=name == "onnx")
        return heuristic() if found is None else found
    if name == "heuristic":
        return heuristic()
    built: D = _import(name)()
    return built


def bargein_detector(name: str) -> BargeInDetector:
    return _detector(name, _ONNX_BARGEIN, HeuristicBargeInDetector)


def end_of_turn_detector(name: str) -> EndOfTurnDetector:
    return _detector(name, _ONNX_EOT, HeuristicEndOfTurnDetector)
