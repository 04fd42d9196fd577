"""The engine's audio-only endpointing range: calls without an STT may use their own min/max."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.config.schema import TurnHandlingConfig
from gateway.turns.events import EndOfTurn
from tests.test_engine import alone, opts


def model_opts(**kw: object) -> object:
    return replace(opts(), turn_detection="model", min_endpointing_delay=0.5, max_endpointing_delay=1.5, **kw)


def wait_of(run: object, probability: float, end: float = 1.0) -> float:
    run.speak(onset=0.5, voiced_until=end, end=end)  # type: ignore[attr-defined]
    run("eot_probability", end + 0.3, probability)  # type: ignore[operator]
    run.ticks(end + 0.32, end + 4.0)  # type: ignore[attr-defined]
    (eot,) = run.of(EndOfTurn)  # type: ignore[attr-defined]
    assert isinstance(eot, EndOfTurn)
    return float(eot.wait_s)


@pytest.mark.parametrize(("probability", "expected"), [(0.0, 2.5), (1.0, 0.2), (0.5, 1.35)])
def test_a_call_without_stt_uses_the_audio_only_range(probability: float, expected: float) -> None:
    run = alone(model_opts(audio_only_min_endpointing_delay=0.2, audio_only_max_endpointing_delay=2.5))
    assert run.engine.min_endpointing_delay == 0.2 and run.engine.max_endpointing_delay == 2.5
    assert wait_of(run, probability) == pytest.approx(expected)


def test_a_call_with_stt_keeps_the_common_range() -> None:
    run = alone(
        model_opts(audio_only_min_endpointing_delay=0.2, audio_only_max_endpointing_delay=2.5), has_stt=True
    )
    assert run.engine.min_endpointing_delay == 0.5 and run.engine.max_endpointing_delay == 1.5


def test_unset_audio_only_range_changes_nothing() -> None:
    run = alone(model_opts())
    assert run.engine.min_endpointing_delay == 0.5 and run.engine.max_endpointing_delay == 1.5
    assert wait_of(run, 0.0) == pytest.approx(1.5)


def test_config_passes_the_audio_only_range_and_checks_it() -> None:
    cfg = TurnHandlingConfig(
        turn_detection="model", audio_only_min_endpointing_delay=0.2, audio_only_max_endpointing_delay=2.0
    )
    o = cfg.to_options()
    assert (o.audio_only_min_endpointing_delay, o.audio_only_max_endpointing_delay) == (0.2, 2.0)
    with pytest.raises(ValueError, match="audio-only range"):
        TurnHandlingConfig(audio_only_min_endpointing_delay=2.0, audio_only_max_endpointing_delay=1.0)
    with pytest.raises(ValueError, match="audio-only range"):
        TurnHandlingConfig(min_endpointing_delay=0.5, audio_only_max_endpointing_delay=0.3)
