"""Lexical evidence for barge-in: which words did the caller say during an overlap?

The acoustic barge-in model hears *how* the caller speaks; what separates "right, right" from "hold
it" is mostly *which words* were said. While an overlap is open and the acoustic model leans towards
"interrupt", the TurnEngine asks for a lexical check (a `LexicalCheck` event naming the audio span).
The driver decodes that span of caller audio with PocketSphinx (its wheel's en-US acoustic model and
a small phrase language model over the backchannel lexicon, command words and a few filler words),
off the frame path, and hands the verdict back with `TurnEngine.lexical_verdict`:

* ``cue``: only backchannel-lexicon words ("okay okay", "uh-huh, right"): vetoes the interruption;
* ``command``: a command word ("wait", "stop", "hold on", "no", "sorry" ...): confirms it, and may
  decide early;
* ``other`` (other words) or ``none`` (no words): the acoustic model decides, as without the check.

This module holds the verdict rule (pure), the decoder (`PocketSphinxLexicon`) and two runners
that take decode jobs from the pipeline: `InlineLexicalRunner` decodes at once and releases the
verdict after the decode's measured CPU time on the call's timeline (replay and evaluation: the
delay is modelled honestly, and no frame of a real call waits for it), `ThreadedLexicalRunner`
decodes in a worker thread (live calls).
"""

from __future__ import annotations

import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from gateway.audio.frames import Pcm
from gateway.audio.resample import resample
from gateway.turns.events import Event
from gateway.turns.options import LexicalCheckOptions
from gateway.turns.phrase_lm import write_phrase_lm

LexicalVerdict = Literal["cue", "command", "other", "none"]

# Words that take the floor whatever the acoustics say. Lower-case; matched per word.
DEFAULT_COMMAND_WORDS: tuple[str, ...] = LexicalCheckOptions().commands

# Common words of other speech: they give the decoder somewhere to put words that are neither cues
# nor commands, so a sentence does not come out as a string of cue words.
FILLER_WORDS: tuple[str, ...] = (
    "the", "a", "i", "you", "it", "is", "that", "to", "and", "my", "can", "need", "want", "have",
    "do", "not", "for", "please", "what", "but",
)  # fmt: skip

# Pronunciations (CMU phones) of default-lexicon words missing from the en-US dictionary.
EXTRA_PRONUNCIATIONS: dict[str, str] = {
    "mmhmm": "M HH M",
    "uhhuh": "AH HH AH",
    "genau": "G AH N AW",
    "d'accord": "D AH K AO R",
}

_SPHINX_RATE = 16000


def normalise_word(word: str) -> str:
    """Lower case, accents and surrounding punctuation removed ("Sí," -> "si")."""
    text = unicodedata.normalize("NFKD", word.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.strip(' .,!?;:"')


def _lexicon_entries(lexicon: Iterable[str]) -> set[tuple[str, ...]]:
    """Lexicon entries as word tuples; hyphenated cues also as their parts ("uh-huh" -> uh huh)."""
    out: set[tuple[str, ...]] = set()
    for entry in lexicon:
        words = tuple(normalise_word(w) for w in entry.split())
        if words:
            out.add(words)
            out.add(tuple(p for w in words for p in w.split("-") if p))
            out.add(("".join(p for w in words for p in w.split("-")),))
    return out


def classify(words: Sequence[str], lexicon: Iterable[str], commands: Iterable[str]) -> LexicalVerdict:
    """The verdict of a decoded word sequence (see the module docstring)."""
    tokens = [normalise_word(w) for w in words]
    tokens = [t for t in tokens if t]
    if not tokens:
        return "none"
    command_set = {normalise_word(c) for c in commands}
    if any(t in command_set for t in tokens):
        return "command"
    entries = _lexicon_entries(lexicon)
    i = 0
    while i < len(tokens):
        for n in (3, 2, 1):
            if tuple(tokens[i : i + n]) in entries:
                i += n
                break
        else:
            return "other"
    return "cue"


@dataclass(frozen=True)
class LexicalCheck(Event):
    """The engine asks for a lexical check of the caller's audio from `start` to `t` (seconds on the
    call's timeline) for the overlap that began at `onset`."""

    type: ClassVar[str] = "lexical_check"
    onset: float = 0.0
    start: float = 0.0


@dataclass(frozen=True)
class LexicalResult:
    """A decode's outcome for the check asked at `asked` (covering audio up to it)."""

    onset: float
    asked: float
    verdict: LexicalVerdict
    words: tuple[str, ...] = ()
    cpu_seconds: float = 0.0


class LexicalChecker(Protocol):
    def check(self, pcm: Pcm, rate: int) -> tuple[LexicalVerdict, tuple[str, ...]]:
        """Decode `pcm` (int16 at `rate`) and judge its words. May block for tens of ms."""


def lexicon_phrases(
    lexicon: Iterable[str], commands: Iterable[str], command_share: float = 1 / 3, filler_share: float = 1 / 6
) -> list[str]:
    """The phrase corpus of the decoder's language model: every cue alone and in pairs (listeners
    repeat and combine cues); commands alone, after "no", before "on", "it" or "please"; filler words
    alone and in pairs. Commands and fillers get `command_share` and `filler_share` as many sentences as
    the cues: the language model's prior between the three kinds (chosen on the training engines'
    validation voices, models/bargein/MODEL_CARD.md)."""
    cues = sorted({" ".join(normalise_word(w) for w in e.split()) for e in lexicon} - {""})
    cmds = sorted({normalise_word(c) for c in commands} - {""})
    phrases = list(cues)
    phrases += [f"{a} {b}" for a in cues for b in cues]
    command_phrases = (
        cmds + [f"no {c}" for c in cmds] + [f"{c} {w}" for c in cmds for w in ("on", "it", "please")]
    )
    fillers = list(FILLER_WORDS) + [f"{a} {b}" for a in FILLER_WORDS for b in FILLER_WORDS if a != b]
    cue_count = len(phrases)
    phrases += command_phrases * max(1, round(cue_count * command_share / len(command_phrases)))
    phrases += fillers * max(1, round(cue_count * filler_share / len(fillers)))
    return phrases


class PocketSphinxLexicon:
    """PocketSphinx (the wheel's 16 kHz en-US acoustic model) with a phrase language model over the
    backchannel lexicon, command words and filler words. Thread-safe (one decode at a time); the
    model loads on the first decode (in the worker thread, live), or with `load()`."""

    def __init__(
        self,
        lexicon: Iterable[str],
        commands: Iterable[str] = DEFAULT_COMMAND_WORDS,
        *,
        dither: bool = False,
        cmn: str = "live",
        shares: tuple[float, float] = (1 / 3, 1 / 6),
    ) -> None:
        self.lexicon = tuple(lexicon)
        self.commands = tuple(commands)
        self._dither = dither
        self._cmn = cmn
        self._shares = shares
        self._cmn0 = ""
        self._decoder: Any = None  # pocketsphinx.Decoder, loaded on first use
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._decoder is not None:
            return
        from pocketsphinx import Decoder, get_model_path

        model = Path(get_model_path()) / "en-us"
        pronunciations: dict[str, list[str]] = {}
        with (model / "cmudict-en-us.dict").open() as f:
            for line in f:
                word, _, phones = line.strip().partition(" ")
                pronunciations.setdefault(word.split("(")[0], []).append(phones)
        for word, phones in EXTRA_PRONUNCIATIONS.items():
            pronunciations.setdefault(word, [phones])
        phrases = lexicon_phrases(self.lexicon, self.commands, *self._shares)
        vocabulary = {w for p in phrases for w in write_tokens(p)}
        phrases = [p for p in phrases if all(w in pronunciations for w in write_tokens(p))]
        with tempfile.TemporaryDirectory(prefix="gateway-lexical-") as tmp:
            lm = write_phrase_lm(phrases, Path(tmp) / "lexical.arpa")
            dict_path = Path(tmp) / "lexical.dict"
            with dict_path.open("w") as f:
                for word in sorted(vocabulary):
                    for k, phones in enumerate(pronunciations.get(word, [])):
                        f.write(f"{word}{'' if k == 0 else f'({k + 1})'} {phones}\n")
            self._decoder = Decoder(
                samprate=_SPHINX_RATE,
                lm=str(lm),
                dict=str(dict_path),
                loglevel="FATAL",
                dither=self._dither,
                cmn=self._cmn,
                # one pass: the second (flat-lexicon) pass and the lattice search doubled the CPU of a
                # decode without changing the verdicts on the validation voices
                fwdflat=False,
                bestpath=False,
            )
        # Every decode starts from the model's initial cepstral mean: a verdict must not depend on
        # what was decoded before (another call's audio).
        self._cmn0 = str(self._decoder.get_cmn(False))

    def words(self, pcm: Pcm, rate: int) -> tuple[str, ...]:
        audio = pcm if rate == _SPHINX_RATE else resample(pcm, rate, _SPHINX_RATE)
        with self._lock:
            self._load()
            d = self._decoder
            d.set_cmn(self._cmn0)
            d.start_utt()
            d.process_raw(np.ascontiguousarray(audio, dtype=np.int16).tobytes(), False, True)
            d.end_utt()
            out = []
            for seg in d.seg() or ():
                word = str(seg.word)
                if word.startswith(("<", "[")):
                    continue
                out.append(word.split("(")[0])
            return tuple(out)

    def check(self, pcm: Pcm, rate: int) -> tuple[LexicalVerdict, tuple[str, ...]]:
        words = self.words(pcm, rate)
        return classify(words, self.lexicon, self.commands), words


def write_tokens(phrase: str) -> list[str]:
    """The words of a phrase as the language model writes them (hyphens split, like the LM's corpus)."""
    return [w for w in phrase.replace("-", " ").split() if w]


@dataclass
class LexicalJob:
    onset: float
    asked: float
    pcm: Pcm
    rate: int


class LexicalRunner(Protocol):
    def submit(self, job: LexicalJob) -> None:
        """Start a decode; must return at once or after the decode (inline runner)."""

    def ready(self, t: float) -> list[LexicalResult]:
        """Results available at call time `t`, oldest first."""


@dataclass
class InlineLexicalRunner:
    """Decodes at once in the caller's thread and releases the verdict `cpu_seconds` later on the
    call's timeline (the decode's measured CPU time, `time.thread_time` by default): replay and
    evaluation see the verdict when a live call would, while a worker thread decodes."""

    checker: LexicalChecker
    clock: Callable[[], float] = time.thread_time
    cpu_seconds: list[float] = field(default_factory=list)
    # decode CPU per overlap (by onset)
    per_overlap: dict[float, float] = field(default_factory=dict)
    _pending: list[LexicalResult] = field(default_factory=list)

    def submit(self, job: LexicalJob) -> None:
        started = self.clock()
        verdict, words = self.checker.check(job.pcm, job.rate)
        cpu = max(0.0, self.clock() - started)
        self.cpu_seconds.append(cpu)
        self.per_overlap[job.onset] = self.per_overlap.get(job.onset, 0.0) + cpu
        self._pending.append(LexicalResult(job.onset, job.asked, verdict, words, cpu))

    def ready(self, t: float) -> list[LexicalResult]:
        due = [r for r in self._pending if r.asked + r.cpu_seconds <= t + 1e-9]
        self._pending = [r for r in self._pending if r.asked + r.cpu_seconds > t + 1e-9]
        return due


class ThreadedLexicalRunner:
    """Decodes in an executor's worker thread; `ready` hands back the finished decodes (the session
    polls it every frame, so no frame waits for a decode)."""

    def __init__(self, checker: LexicalChecker, executor: Executor | None = None) -> None:
        self.checker = checker
        self._executor = executor or shared_executor()
        self._futures: list[Future[LexicalResult]] = []
        self.cpu_seconds: list[float] = []

    def _run(self, job: LexicalJob) -> LexicalResult:
        started = time.thread_time()
        verdict, words = self.checker.check(job.pcm, job.rate)
        return LexicalResult(job.onset, job.asked, verdict, words, time.thread_time() - started)

    def submit(self, job: LexicalJob) -> None:
        self._futures.append(self._executor.submit(self._run, job))

    def ready(self, t: float) -> list[LexicalResult]:
        done = [f for f in self._futures if f.done()]
        self._futures = [f for f in self._futures if not f.done()]
        out = []
        for f in done:
            if f.exception() is None:
                result = f.result()
                self.cpu_seconds.append(result.cpu_seconds)
                out.append(result)
        return out


_EXECUTOR: ThreadPoolExecutor | None = None
_CHECKERS: dict[tuple[tuple[str, ...], tuple[str, ...]], PocketSphinxLexicon] = {}
_SHARED_LOCK = threading.Lock()


def shared_executor() -> ThreadPoolExecutor:
    """One worker thread per process for lexical decodes (a decode holds the checker's lock)."""
    global _EXECUTOR
    with _SHARED_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lexical")
        return _EXECUTOR


def shared_checker(
    lexicon: Iterable[str], commands: Iterable[str] = DEFAULT_COMMAND_WORDS
) -> PocketSphinxLexicon:
    """One decoder per distinct (lexicon, commands) in the process, shared by every call."""
    key = (tuple(lexicon), tuple(commands))
    with _SHARED_LOCK:
        if key not in _CHECKERS:
            _CHECKERS[key] = PocketSphinxLexicon(*key)
        return _CHECKERS[key]
