"""The barge-in lexical check: the verdict rule, the PocketSphinx decoder on held-out fixture clips
(flite voices: never trained or selected on), the runners, and the pipeline that schedules decodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway.audio.wav import read_wav
from gateway.turns.lexical import (
    InlineLexicalRunner,
    LexicalJob,
    PocketSphinxLexicon,
    ThreadedLexicalRunner,
    classify,
    lexicon_phrases,
    normalise_word,
)
from gateway.turns.options import DEFAULT_BACKCHANNEL_LEXICON, LexicalCheckOptions

FIXTURES = Path(__file__).parent / "fixtures" / "bargein"
COMMANDS = LexicalCheckOptions().commands


@pytest.fixture(scope="module")
def lexicon() -> PocketSphinxLexicon:
    checker = PocketSphinxLexicon(DEFAULT_BACKCHANNEL_LEXICON, COMMANDS)
    checker.load()
    return checker


def clip(name: str) -> tuple[np.ndarray, int]:
    """The caller channel of a fixture from 0.2 s before its onset to 0.1 s after its end."""
    label = json.loads((FIXTURES / "labels.json").read_text())[name]
    audio = read_wav(FIXTURES / name)
    rate = audio.rate
    return audio.pcm[int((label["onset"] - 0.2) * rate) : int((label["end"] + 0.1) * rate), 0], rate


@pytest.mark.parametrize(
    ("words", "verdict"),
    [
        ((), "none"),
        (("okay", "okay"), "cue"),
        (("uh", "huh", "right"), "cue"),  # "uh-huh" as the decoder writes it
        (("I", "see"), "cue"),
        (("Sí,",), "cue"),  # accents and punctuation do not matter
        (("i", "want"), "other"),
        (("okay", "wait"), "command"),
        (("no", "hold", "on"), "command"),
    ],
)
def test_verdict_rule(words: tuple[str, ...], verdict: str) -> None:
    assert classify(words, DEFAULT_BACKCHANNEL_LEXICON, COMMANDS) == verdict


def test_language_model_corpus_keeps_cues_commands_and_fillers_apart() -> None:
    phrases = lexicon_phrases(DEFAULT_BACKCHANNEL_LEXICON, COMMANDS)
    assert "okay okay" in phrases and "no wait" in phrases and "hold on" in phrases
    assert normalise_word("D'accord!") == "d'accord"


def test_held_out_backchannel_is_only_cue_words(lexicon: PocketSphinxLexicon) -> None:
    pcm, rate = clip("flite_backchannel_1.wav")  # flite rms: "right right"
    verdict, words = lexicon.check(pcm, rate)
    assert verdict == "cue", words


@pytest.mark.parametrize("name", ["flite_interruption_1.wav", "festival_interruption_2.wav"])
def test_held_out_command_interruptions_are_kept(lexicon: PocketSphinxLexicon, name: str) -> None:
    pcm, rate = clip(name)  # "wait a minute" (flite rms), "no, hold on, that's not right" (festival ked)
    verdict, words = lexicon.check(pcm, rate)
    assert verdict == "command", words


def test_held_out_sentence_is_not_vetoed(lexicon: PocketSphinxLexicon) -> None:
    pcm, rate = clip("festival_interruption_0.wav")  # "I think you misunderstood me"
    verdict, words = lexicon.check(pcm, rate)
    assert verdict != "cue", words


class _Fixed:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def check(self, pcm: np.ndarray, rate: int) -> tuple[str, tuple[str, ...]]:
        self.seen.append(len(pcm))
        return "cue", ("okay",)


def test_inline_runner_releases_a_verdict_after_the_decodes_cpu_time() -> None:
    ticks = iter([10.0, 10.08])  # the decode took 80 ms of CPU
    runner = InlineLexicalRunner(_Fixed(), clock=lambda: next(ticks))
    runner.submit(LexicalJob(onset=2.0, asked=2.3, pcm=np.zeros(800, np.int16), rate=8000))
    assert runner.ready(2.36) == []
    (result,) = runner.ready(2.38)
    assert (result.verdict, result.asked, result.cpu_seconds) == ("cue", 2.3, pytest.approx(0.08))
    assert runner.ready(2.5) == []


def test_threaded_runner_hands_back_finished_decodes() -> None:
    runner = ThreadedLexicalRunner(_Fixed())
    runner.submit(LexicalJob(onset=2.0, asked=2.3, pcm=np.zeros(800, np.int16), rate=8000))
    runner._futures[0].result(timeout=10)  # wait for the worker, not for time
    (result,) = runner.ready(2.4)
    assert result.verdict == "cue" and result.words == ("okay",)
