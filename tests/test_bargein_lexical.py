"""The barge-in lexical check: the verdict rule, the PocketSphinx decoder on held-out fixture clips
(flite voices: never trained or selected on), the runners, and the pipeline that schedules decodes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import espeak, place
from test_pipeline import RATE, ScriptedDetector, run

from gateway.audio.frames import Pcm
from gateway.audio.wav import read_wav
from gateway.turns.events import Interruption
from gateway.turns.lexical import (
    InlineLexicalRunner,
    LexicalCheck,
    LexicalJob,
    LexicalVerdict,
    PocketSphinxLexicon,
    ThreadedLexicalRunner,
    classify,
    lexicon_phrases,
    normalise_word,
)
from gateway.turns.options import (
    DEFAULT_BACKCHANNEL_LEXICON,
    InterruptionOptions,
    LexicalCheckOptions,
    TurnHandlingOptions,
)
from gateway.turns.pipeline import TurnPipeline
from gateway.turns.silero import SileroModel
from gateway.turns.vad import VadStream

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

    def check(self, pcm: Pcm, rate: int) -> tuple[LexicalVerdict, tuple[str, ...]]:
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


class _CueChecker:
    """A lexical decoder that hears only cue words and says how much audio it got."""

    def __init__(self) -> None:
        self.spans: list[int] = []

    def check(self, pcm: Pcm, rate: int) -> tuple[LexicalVerdict, tuple[str, ...]]:
        self.spans.append(len(pcm))
        return "cue", ("okay",)


def test_lexical_check_vetoes_through_the_pipeline_after_the_decodes_cpu_time() -> None:
    agent = place(
        8.0, [(0.2, espeak("Your appointment is confirmed for Tuesday at three in the afternoon."))]
    )
    caller = place(8.0, [(2.5, espeak("no no, wait, that is the wrong day", voice="en-gb"))])
    model = SileroModel()
    options = replace(
        TurnHandlingOptions(),
        interruption=replace(
            InterruptionOptions(), lexical_check=LexicalCheckOptions(enabled=True, preroll=0.2, max_checks=1)
        ),
    )
    checker = _CueChecker()
    cpu = iter([0.0, 0.05] * 10)  # every decode takes 50 ms of CPU
    runner = InlineLexicalRunner(checker, clock=lambda: next(cpu))
    pipeline = TurnPipeline(
        options, VadStream(model, RATE), bargein=ScriptedDetector(0.9), lexical=runner, clock=lambda: 0.0
    )
    events = run(pipeline, caller, agent)
    assert not [e for e in events if isinstance(e, LexicalCheck)]  # the pipeline consumes its requests
    assert pipeline.lexical_checks == 1 and len(checker.spans) == 1
    assert checker.spans[0] >= int(0.2 * RATE)  # the onset's pre-roll and the overlap so far
    # vetoed while fresh, then the caller kept talking ("no no, wait, that is the wrong day": 2 s),
    # and with no decode left the stale veto lets the model decide
    (interruption,) = [e for e in events if isinstance(e, Interruption)]
    assert isinstance(interruption, Interruption) and interruption.mode == "adaptive"
    assert interruption.latency_ms >= 500 and interruption.requests > 1  # held past the veto span


async def test_live_session_decodes_in_the_worker_thread_and_still_barges_in() -> None:
    from session_fixtures import EspeakCliTTS, ScriptLLM, backchannel_then_barge_in, dental_agent_yaml

    from gateway.agents.session import Backends, CallSession, Detectors
    from gateway.calls import CallInfo
    from gateway.config.loader import parse_agent_yaml
    from gateway.edges.wavfile import WavCallerTransport
    from gateway.turns.heuristics import HeuristicBargeInDetector

    yaml = dental_agent_yaml("dental").replace(
        "    false_interruption_timeout: 0.6\n",
        "    false_interruption_timeout: 0.6\n    lexical_check:\n      enabled: true\n      lean: 0.0\n",
    )
    agent = parse_agent_yaml(yaml).config
    assert agent.turn_handling.interruption.lexical_check.enabled
    transport = WavCallerTransport(
        backchannel_then_barge_in(), CallInfo("lexical-1", "replay", "dental"), tail=2.0, speed=4.0
    )
    detectors = Detectors(vad=SileroModel(), bargein=HeuristicBargeInDetector())
    session = CallSession(transport, agent, detectors, Backends(llm=ScriptLLM(["Sure."]), tts=EspeakCliTTS()))
    assert isinstance(session.pipeline._lexical, ThreadedLexicalRunner)
    assert await session.run() == "caller_hangup"
    assert session.pipeline.lexical_checks >= 1  # decodes were asked (and ran in the worker thread)
    interruption = next(e for e in session.log.events if e.type == "interruption")
    assert abs(interruption.onset - 6.0) < 0.2  # type: ignore[attr-defined]
