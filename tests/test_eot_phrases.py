"""The end-of-turn recipe's phrase split: no held-out phrase in the training splits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` is a folder of the repository

from models.eot.phrases import (
    EXTRA_TEMPLATES,
    FAMILY_WEIGHTS,
    HELDOUT_TEMPLATES,
    TEMPLATES,
    TRAIN_TEMPLATES,
    Templates,
    draw_turn,
)

# Frames made of slots only ("{day}", "{first} {name}") are shared on purpose, like the slot fillers.
SLOTS_ONLY = {"{day}", "{time}", "{day} at {time}", "{first} {name}", "doctor {name}", "{treatment}"}


def phrases(t: Templates) -> set[str]:
    texts = t.complete + t.short + tuple(part for pair in t.hesitations for part in pair)
    return {x.lower().strip(" .?!,") for x in texts}


def test_no_heldout_phrase_in_training() -> None:
    held = phrases(HELDOUT_TEMPLATES) - SLOTS_ONLY
    for t in (TRAIN_TEMPLATES, EXTRA_TEMPLATES):
        assert not held & phrases(t)
        assert not set(HELDOUT_TEMPLATES.number_intros + HELDOUT_TEMPLATES.date_intros) & set(
            t.number_intros + t.date_intros
        )


def test_the_benchmark_draws_are_unchanged_by_the_extra_split() -> None:
    """The test split draws with the first recipe's family weights (the benchmark's calls)."""
    assert "test" not in FAMILY_WEIGHTS and "val" not in FAMILY_WEIGHTS
    a = draw_turn(np.random.default_rng(3), TEMPLATES["test"])
    b = draw_turn(np.random.default_rng(3), TEMPLATES["test"], None)
    assert a == b
