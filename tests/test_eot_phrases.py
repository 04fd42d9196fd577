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


def test_the_correction_family_leaves_every_earlier_draw_unchanged() -> None:
    """Appended with weight 0, the self-correction family changes no draw of the existing recipes."""
    from models.eot.phrases import FAMILIES

    names = [n for n in FAMILIES if n != "correction"]
    assert list(FAMILIES)[-1] == "correction" and FAMILIES["correction"][0] == 0.0
    for split in ("train", "extra", "val", "test"):
        for seed in range(200):
            family, turn = draw_turn(np.random.default_rng(seed), TEMPLATES[split], FAMILY_WEIGHTS.get(split))
            # the same draw without the correction family
            rng = np.random.default_rng(seed)
            w = np.array([(FAMILY_WEIGHTS.get(split) or {}).get(n, FAMILIES[n][0]) for n in names])
            name = names[int(rng.choice(len(names), p=w / w.sum()))]
            assert (family, turn) == (name, FAMILIES[name][1](rng, TEMPLATES[split]))


def test_self_corrections_change_the_value_and_keep_their_frames_apart() -> None:
    from models.eot.phrases import CORRECTION_FRAMES, correction_turn

    assert not {f for f, _ in CORRECTION_FRAMES["train"]} & {f for f, _ in CORRECTION_FRAMES["heldout"]}
    for seed in range(50):
        first, second = correction_turn(np.random.default_rng(seed), HELDOUT_TEMPLATES)
        assert not first.final and second.final
        assert any(first.text.startswith(f.split("{x}")[0]) for f, _ in CORRECTION_FRAMES["heldout"])
        assert second.text.rstrip(".").split(", ")[-1] not in first.text
