"""The early floor of model endpointing: a confident end-of-turn verdict commits after a short silence,
a doubtful one keeps the min..max wait (pure TurnEngine, timestamped events)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from gateway.config.schema import TurnHandlingConfig
from gateway.turns.events import EndOfTurn, Word
from tests.test_engine import Run, alone, opts


def floor_opts(**kw: object) -> object:
    base = {
        "turn_detection": "model",
        "min_endpointing_delay": 0.5,
        "max_endpointing_delay": 2.0,
        "early_floor_threshold": 0.9,
        "early_floor_delay": 0.25,
    }
    return replace(opts(), **{**base, **kw})


def pause(run: Run, end: float = 1.0, noticed: float = 0.15) -> None:
    """Caller speech from 0.5 s to `end`; VAD reports the end `noticed` seconds later."""
    run.speak(onset=0.5, voiced_until=end)
    run("user_speech_end", end + noticed, end)


def eots(run: Run) -> list[EndOfTurn]:
    return [e for e in run.of(EndOfTurn) if isinstance(e, EndOfTurn)]


def test_a_confident_verdict_commits_at_the_floor_not_at_min() -> None:
    run = alone(floor_opts())  # type: ignore[arg-type]
    pause(run)
    run("eot_probability", 1.2, 0.95)
    run.ticks(1.22, 1.24)
    assert not eots(run)  # 0.24 s of silence: below the floor
    run.ticks(1.26, 1.6)
    (eot,) = eots(run)
    assert eot.t == pytest.approx(1.26)
    assert eot.wait_s == pytest.approx(0.25) and eot.probability == pytest.approx(0.95)


def test_a_confident_verdict_after_the_floor_commits_at_once() -> None:
    run = alone(floor_opts())  # type: ignore[arg-type]
    pause(run, noticed=0.3)
    run.ticks(1.3, 1.38)
    assert not eots(run)  # no answer yet: the wait is max
    out = run("eot_probability", 1.4, 0.97)
    assert [e.type for e in out] == ["end_of_turn"]
    assert eots(run)[0].delay_ms == pytest.approx(400.0)


def test_below_the_threshold_the_min_max_rule_holds() -> None:
    run = alone(floor_opts())  # type: ignore[arg-type]
    pause(run)
    run("eot_probability", 1.2, 0.8)  # wait = 2.0 - 0.8 * 1.5 = 0.8 s
    run.ticks(1.22, 1.78)
    assert not eots(run)
    run.ticks(1.8, 2.0)
    (eot,) = eots(run)
    assert eot.wait_s == pytest.approx(0.8)
    assert eot.t == pytest.approx(1.8)


def test_a_doubted_hesitation_waits_up_to_max_and_resuming_speech_cancels_it() -> None:
    run = alone(floor_opts())  # type: ignore[arg-type]
    pause(run)
    for k in range(12):
        run("eot_probability", 1.2 + 0.1 * k, 0.05)
    assert not eots(run)
    run.speak(onset=2.35, voiced_until=2.9)  # "... on Tuesday"
    run("user_speech_end", 3.05, 2.9)
    run("eot_probability", 3.1, 0.96)
    run.ticks(3.12, 3.3)
    (eot,) = eots(run)
    assert eot.t == pytest.approx(3.16)  # the floor counts from the new speech end


def test_a_confident_answer_of_an_earlier_pause_does_not_carry_over() -> None:
    run = alone(floor_opts())  # type: ignore[arg-type]
    pause(run, end=1.0, noticed=0.1)
    run("eot_probability", 1.15, 0.99)  # before the floor: nothing yet
    run.speak(onset=1.2, voiced_until=1.6)  # the caller goes on
    run("user_speech_end", 1.7, 1.6)
    run.ticks(1.72, 2.5)
    assert not eots(run)  # no answer for this pause: max (2.0 s) applies
    run.ticks(2.52, 3.7)
    (eot,) = eots(run)
    assert eot.t == pytest.approx(3.6) and eot.probability is None


def test_without_a_threshold_there_is_no_floor() -> None:
    run = alone(floor_opts(early_floor_threshold=None))  # type: ignore[arg-type]
    pause(run)
    run("eot_probability", 1.2, 1.0)
    run.ticks(1.22, 1.48)
    assert not eots(run)
    run.ticks(1.5, 1.6)
    assert eots(run)[0].t == pytest.approx(1.5)  # min


def test_calls_without_stt_use_the_audio_only_threshold() -> None:
    o = floor_opts(early_floor_threshold=0.9, audio_only_early_floor_threshold=0.99)
    audio = alone(o)  # type: ignore[arg-type]
    assert audio.engine.early_floor_threshold == 0.99
    pause(audio)
    audio("eot_probability", 1.2, 0.95)  # confident enough with words, not from the audio alone
    audio.ticks(1.22, 1.4)
    assert not eots(audio)
    words = alone(o, has_stt=True)  # type: ignore[arg-type]
    assert words.engine.early_floor_threshold == 0.9


def test_with_an_stt_the_floor_still_needs_a_final_transcript() -> None:
    run = alone(floor_opts(), has_stt=True)  # type: ignore[arg-type]
    pause(run)
    run("eot_probability", 1.2, 0.95)
    run.ticks(1.22, 1.4)
    assert not eots(run)
    run("transcript", 1.42, [Word("Tuesday", 0.6, 0.98)], final=True)
    (eot,) = eots(run)
    assert eot.t == pytest.approx(1.42) and eot.transcript == "Tuesday"


def test_vad_mode_ignores_the_floor() -> None:
    run = alone(floor_opts(turn_detection="vad"))  # type: ignore[arg-type]
    pause(run)
    run("eot_probability", 1.2, 1.0)
    run.ticks(1.22, 1.48)
    assert not eots(run)
    run.ticks(1.5, 1.52)
    assert eots(run)


def test_config_passes_the_floor_and_checks_it() -> None:
    cfg = TurnHandlingConfig(
        turn_detection="model",
        min_endpointing_delay=0.5,
        early_floor_threshold=0.9,
        audio_only_early_floor_threshold=0.97,
        early_floor_delay=0.2,
    )
    o = cfg.to_options()
    assert (o.early_floor_threshold, o.audio_only_early_floor_threshold, o.early_floor_delay) == (
        0.9,
        0.97,
        0.2,
    )
    assert TurnHandlingConfig().to_options().early_floor_threshold is None
    with pytest.raises(ValidationError, match="minimum endpointing delay"):
        TurnHandlingConfig(min_endpointing_delay=0.2, early_floor_threshold=0.9, early_floor_delay=0.3)
    with pytest.raises(ValidationError, match="minimum endpointing delay"):
        TurnHandlingConfig(
            min_endpointing_delay=0.5,
            audio_only_min_endpointing_delay=0.1,
            audio_only_early_floor_threshold=0.9,
            early_floor_delay=0.25,
        )
    with pytest.raises(ValidationError):
        TurnHandlingConfig(early_floor_threshold=1.5)
    # Without a threshold a floor longer than min is harmless (the defaults of any range load).
    TurnHandlingConfig(min_endpointing_delay=0.1)


@pytest.mark.parametrize("threshold", [None, 0.7, 0.95])
def test_the_validation_simulation_fires_when_the_engine_does(threshold: float | None) -> None:
    """`models.eot.select_floor.simulate` (which chooses the floor) against the TurnEngine itself on
    the same answers, asked every 0.1 s from 0.2 s of silence on."""
    import numpy as np

    from models.eot.select_floor import silences, simulate

    lo, hi, floor = 0.5, 2.0, 0.25
    rng = np.random.default_rng(5)
    n = 40
    probs = rng.uniform(0, 1, size=(len(silences(hi)), n)).astype(np.float32)
    probs[:, : n // 2] = np.sort(probs[:, : n // 2], axis=0)  # some rise as the silence grows
    label = np.ones(n, dtype=np.int8)
    for i in range(n):
        # one point at a time: the simulation's median of one finished turn is its firing time
        got = simulate(probs[:, i : i + 1], label[i : i + 1], np.array([np.inf]), lo, hi, threshold, floor)
        run = alone(
            floor_opts(
                min_endpointing_delay=lo,
                max_endpointing_delay=hi,
                early_floor_threshold=threshold,
                early_floor_delay=floor,
            )
        )  # type: ignore[arg-type]
        run.speak(onset=0.2, voiced_until=1.0)
        run("user_speech_end", 1.19, 1.0)
        t = 1.19
        for k, s in enumerate(silences(hi)):
            while t < 1.0 + s - 1e-9 and not eots(run):
                t = round(t + 0.01, 2)
                run("tick", min(t, 1.0 + s))
            if eots(run):
                break
            run("eot_probability", 1.0 + s, float(probs[k, i]))
        while not eots(run):
            t = round(t + 0.01, 2)
            run("tick", t)
        engine_delay = eots(run)[0].delay_ms
        assert engine_delay == pytest.approx(got["median_ms"], abs=10.5)
