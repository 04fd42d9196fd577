"""The held-out real-speaker end-of-turn calls: utterances end on a sentence, a cut call keeps the words
of each part and puts a silent pause between them (`models.eot.make_real_eot`, no Whisper needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` is a folder of the repository

from models.eot.make_real_eot import build_call, utterances
from models.eot.render import SR


def words_at(*spec: tuple[str, float, float]) -> list[tuple[str, float, float]]:
    return list(spec)


def test_utterances_split_at_long_gaps_and_keep_finished_sentences_only() -> None:
    words = words_at(
        ("please", 0.0, 0.3), ("enter", 0.35, 0.6), ("your", 0.65, 0.8), ("number.", 0.85, 1.2),
        ("followed", 2.0, 2.4), ("by", 2.45, 2.6), ("the", 2.65, 2.7), ("pound", 2.75, 3.0),
        ("thank", 4.0, 4.2), ("you.", 4.25, 4.5),
    )  # fmt: skip
    got = utterances(words, min_words=2)
    assert [[w for w, _, _ in u] for u in got] == [["please", "enter", "your", "number."], ["thank", "you."]]


def tone_words(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """`n` 0.3 s bursts of noise (words) 0.08 s apart, after 0.2 s of silence."""
    x = np.zeros(int(SR * (0.2 + n * 0.38 + 0.3)), dtype=np.float32)
    words = []
    for k in range(n):
        a = 0.2 + k * 0.38
        x[int(a * SR) : int((a + 0.3) * SR)] = rng.normal(0, 0.2, int(0.3 * SR))
        words.append((f"w{k}" + ("." if k == n - 1 else ""), a, a + 0.3))
    return x, words


def test_a_cut_call_has_a_silent_pause_between_its_parts_and_the_words_of_each() -> None:
    for seed in range(12):
        rng = np.random.default_rng(seed)
        x, words = tone_words(6, rng)
        made = build_call(rng, x, words, "someone")
        assert made is not None
        family, rendered = made
        segs = rendered.segments
        assert segs[-1].final and all(not s.final for s in segs[:-1])
        assert " ".join(s.text for s in segs) == " ".join(w for w, _, _ in words)
        if family == "cut":
            head, tail = segs
            assert 0.5 <= head.pause_after <= 1.8
            assert tail.start - head.end >= 0.5
            gap = rendered.line[int((head.end + 0.05) * SR) : int((tail.start - 0.05) * SR)].astype(float)
            lead = rendered.line[: int((segs[0].start - 0.05) * SR)].astype(float)
            speech = rendered.line[int(head.start * SR) : int(head.end * SR)].astype(float)
            rms = [float(np.sqrt(np.mean(a**2))) for a in (gap, lead, speech)]
            assert rms[0] < 1.5 * rms[1] and rms[0] < 0.5 * rms[2]  # the line's noise, as before the call
        else:
            assert len(segs) == 1
