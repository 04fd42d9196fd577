"""The TurnEngine: who holds the floor, decided from timestamped events. No I/O.

Theory of operation
-------------------
Two parties share one audio channel. The engine names their states and nothing else:

* the agent is ``SILENT``, ``SPEAKING`` (its audio is audible) or ``PAUSED`` (an interruption
  stopped the audio, the generation is kept so it can resume);
* the user is ``SILENT`` or ``SPEAKING`` (as VAD segments the caller's audio). While both speak,
  an *overlap* is open: it is the unit the interruption arbiter decides on.

Inputs are method calls, each stamped with the time ``t`` at which it is known (seconds on the
call's timeline, never decreasing); some also carry the time the thing happened (a VAD onset is
known only after ``min_speech_duration``). Every input returns the list of events it caused:
observations (``user_speech_start``…), verdicts (``interruption``, ``backchannel``,
``false_interruption``, ``end_of_turn``) and the decisions a session acts on (``pause_playout``,
``resume_playout``, ``stop_playout``). Timers (endpointing, false-interruption, the start
boundary) fire from ``tick(t)``, which the driver calls at least every frame.

Two rules keep it honest, as in h11's state machine:

1. Everything that affects the floor lives in this file; detectors and VAD only produce inputs.
2. An input that does not fit the current state (the agent stops while silent, time runs
   backwards) raises ``EngineError`` instead of being ignored: drivers must be consistent.

The legal agent transitions are listed in ``AGENT_TRANSITIONS`` so the automaton reads at a glance.

Interruptions
~~~~~~~~~~~~~
An overlap opens when the user starts speaking while the agent is SPEAKING (and interruptions are
enabled). Inside the start boundary of an agent turn, or in ``vad`` mode, or after a detector
failure, the *VAD rule* decides: ``min_duration`` voiced seconds (and ``min_words`` words of this
utterance, when an STT is attached) interrupt. Otherwise the barge-in detector's probability
decides: at or above ``threshold`` interrupts. An overlap that ends without a verdict is a
backchannel; the utterance does not become a user turn, unless it ended within the end boundary
of the agent's speech (a short answer to the agent's last question) and is not made only of
backchannel-lexicon words.

An interruption pauses the agent when ``resume_false_interruption`` is on, else stops it. A paused
agent is stopped (``stop_playout``) by evidence that the user took the turn: a final transcript with
words, or a committed end of turn. If instead the user stays silent for
``false_interruption_timeout`` first, playout resumes where it paused (``false_interruption`` with
``resumed``) — unless a batch STT is still transcribing that speech (``words_awaited``): then its
words decide, waiting at most ``max_endpointing_delay`` after the caller's last words. Without an
STT, the committed end of turn is the only evidence.

End of turn
~~~~~~~~~~~
When the user falls silent, the wait before committing is ``min_endpointing_delay`` (``vad``), the
STT's end-of-utterance (``stt``), or a value between min and max chosen continuously by the
end-of-turn probability (``model``: ``wait = max - p * (max - min)``), counted from the end of the
last voiced audio, not from when VAD noticed the silence. Speech resuming cancels the pending end of
turn. With an STT attached, a turn needs a final transcript with words to be committed. A call without
an STT uses ``audio_only_min/max_endpointing_delay`` instead of min/max when they are set (the model is
less sure from the audio alone, so its best range differs).

The early floor (``model``): a probability at or above ``early_floor_threshold`` (the audio-only one
for a call without an STT) waits only ``early_floor_delay`` instead of at least min, so a confident
verdict commits as soon as the silence is that long; below it the min..max rule holds, and a
hesitation the model doubts still waits up to max.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gateway.turns.events import (
    AgentSpeechEnd,
    AgentSpeechStart,
    Backchannel,
    DecisionMode,
    DetectorFallback,
    EndOfTurn,
    Event,
    FalseInterruption,
    Interruption,
    OverlapStart,
    PausePlayout,
    ResumePlayout,
    StopPlayout,
    TranscriptDropped,
    UserSpeechEnd,
    UserSpeechStart,
    Word,
)
from gateway.turns.lexical import LexicalCheck, LexicalVerdict
from gateway.turns.options import TurnHandlingOptions

# Words that arrive with timings slightly before the VAD onset still belong to the utterance.
WORD_ONSET_TOLERANCE = 0.3


class EngineError(RuntimeError):
    """An input that does not fit the engine's state: the driver is inconsistent."""


class AgentState(enum.Enum):
    SILENT = "silent"
    SPEAKING = "speaking"
    PAUSED = "paused"


class UserState(enum.Enum):
    SILENT = "silent"
    SPEAKING = "speaking"


# (input, agent state before) -> agent state after. Inputs not listed for a state are errors.
AGENT_TRANSITIONS: dict[tuple[str, AgentState], AgentState] = {
    ("agent_speech_start", AgentState.SILENT): AgentState.SPEAKING,
    ("agent_speech_end", AgentState.SPEAKING): AgentState.SILENT,
    ("interrupt_pause", AgentState.SPEAKING): AgentState.PAUSED,
    ("interrupt_stop", AgentState.SPEAKING): AgentState.SILENT,
    ("resume", AgentState.PAUSED): AgentState.SPEAKING,
    ("confirm_stop", AgentState.PAUSED): AgentState.SILENT,
}


def _normalise(text: str) -> str:
    return text.lower().strip(" .,!?;:\"'")


@dataclass
class _Overlap:
    onset: float
    in_start_boundary: bool
    # Voiced seconds the utterance already had when the overlap opened (the agent started
    # while the user was speaking): only speech inside the overlap counts towards min_duration.
    voiced_at_open: float = 0.0
    max_probability: float | None = None
    requests: int = 0
    # The caller paused inside the overlap at `last_end`; it closes unless they resume by
    # `pause_until` ("actually, wait" is one overlap, not a backchannel and then another one).
    last_end: float | None = None
    pause_until: float = 0.0
    utterances: list[_Utterance] = field(default_factory=list)
    # Lexical check (interruption.lexical_check): decodes asked, the `t` of the one in flight, the
    # newest verdict and the audio end it covers, and the probability of an interruption held for it.
    lexical_checks: int = 0
    lexical_in_flight: float | None = None
    lexical_verdict: LexicalVerdict | None = None
    lexical_covered: float = 0.0
    held_probability: float | None = None
    probe_asked: float | None = None  # `t` of the command probe's decode (lexical_check.command_probe)


@dataclass
class _Utterance:
    onset: float
    end: float | None = None
    voiced: float = 0.0
    words: list[Word] = field(default_factory=list)
    overlap: _Overlap | None = None
    # None: an ordinary user turn; otherwise why it does not (yet) count as one.
    verdict: str | None = None  # "interruption" | "backchannel" | "ignored"


@dataclass
class _PendingTurn:
    """A user turn waiting for its end: words so far and the endpointing state."""

    last_end: float
    words: list[Word] = field(default_factory=list)
    eot_probability: float | None = None
    stt_end_of_utterance_at: float | None = None
    interrupted_agent: bool = False


class TurnEngine:
    """Sans-I/O turn-taking state machine; see the module docstring."""

    def __init__(
        self, options: TurnHandlingOptions | None = None, *, has_stt: bool = False, has_lexical: bool = False
    ) -> None:
        self.options = options or TurnHandlingOptions()
        self.has_stt = has_stt
        # The driver can run lexical checks (LexicalCheck events -> lexical_verdict()).
        self.has_lexical = has_lexical
        self.agent = AgentState.SILENT
        self.user = UserState.SILENT
        self.now = 0.0
        self.fallback = False
        self._agent_turn_start: float | None = None
        self._utterance: _Utterance | None = None
        self._turn: _PendingTurn | None = None
        self._overlap: _Overlap | None = None
        # Backchannel utterances heard during the current agent turn (end-boundary rule).
        self._backchannels: list[_Utterance] = []
        self._false_deadline: float | None = None
        self._words_awaited = 0  # utterances a batch STT is still transcribing (words_awaited())
        self._false_check_stopped = False  # the agent was stopped (no resume): report only
        self._dynamic_min: float | None = None
        self._last_agent_end: float | None = None

    # -- read-only views for drivers ------------------------------------------------------------

    @property
    def overlap_onset(self) -> float | None:
        """Onset of the open, undecided overlap, if any."""
        return self._overlap.onset if self._overlap else None

    @property
    def wants_bargein_probability(self) -> bool:
        """True when a detector answer could decide now (adaptive, past the start boundary)."""
        opts = self.options.interruption
        if self._overlap is None or self.fallback or opts.mode != "adaptive":
            return False
        return not self._in_start_boundary(self.now)

    @property
    def wants_eot_probability(self) -> bool:
        return (
            self.options.turn_detection == "model"
            and self._turn is not None
            and self.user is UserState.SILENT
        )

    @property
    def pending_turn_end(self) -> float | None:
        """End of the last voiced audio of the turn waiting for its end, if any."""
        return self._turn.last_end if self._turn else None

    @property
    def pending_turn_words(self) -> tuple[str, ...]:
        return tuple(w.text for w in self._turn.words) if self._turn else ()

    @property
    def max_endpointing_delay(self) -> float:
        """The longest wait: the audio-only one for a call without an STT, if set."""
        opts = self.options
        if not self.has_stt and opts.audio_only_max_endpointing_delay is not None:
            return opts.audio_only_max_endpointing_delay
        return opts.max_endpointing_delay

    @property
    def early_floor_threshold(self) -> float | None:
        """The probability at or above which the early floor applies (None: no early floor)."""
        opts = self.options
        if not self.has_stt and opts.audio_only_early_floor_threshold is not None:
            return opts.audio_only_early_floor_threshold
        return opts.early_floor_threshold

    @property
    def min_endpointing_delay(self) -> float:
        """The effective minimum wait (learned from the caller's pauses in dynamic mode; the
        audio-only one for a call without an STT, if set)."""
        opts = self.options
        base = opts.min_endpointing_delay
        if not self.has_stt and opts.audio_only_min_endpointing_delay is not None:
            base = opts.audio_only_min_endpointing_delay
        if opts.endpointing.mode == "dynamic" and self._dynamic_min is not None:
            return min(max(self._dynamic_min, base), self.max_endpointing_delay)
        return base

    # -- inputs ---------------------------------------------------------------------------------

    def agent_speech_start(self, t: float, *, new_turn: bool = True) -> list[Event]:
        """The agent became audible. `new_turn=False` continues the same agent turn after a pause
        between sentences: the start boundary then still counts from the turn's first audio."""
        self._advance(t)
        self._transition("agent_speech_start")
        if new_turn or self._agent_turn_start is None:
            self._agent_turn_start = t
            self._backchannels = []
        out: list[Event] = [AgentSpeechStart(t)]
        utterance = self._utterance
        if self.user is UserState.SPEAKING and utterance is not None:
            if not new_turn and utterance.overlap is not None and utterance.verdict is None:
                # The same caller utterance goes on over the agent's next sentence: one overlap.
                self._overlap = utterance.overlap
            else:
                out += self._open_overlap(t, utterance)
        return out + self._check_vad_rule(t)

    def agent_speech_end(self, t: float, end: float | None = None) -> list[Event]:
        """The agent's audio stopped at `end` (default `t`), noticed at `t`."""
        self._advance(t)
        self._transition("agent_speech_end")
        end = t if end is None else min(end, t)
        self._last_agent_end = end
        out: list[Event] = [AgentSpeechEnd(end)]
        if self._overlap is not None and self._overlap.last_end is not None:
            out += self._close_as_backchannel(t)  # it ended before the agent did: a listener cue
        elif self._overlap is not None:
            # The agent finished before a verdict: the caller simply has the floor now.
            self._overlap = None  # kept on the utterance in case the agent's turn goes on
        self._promote_boundary_backchannels(end)
        return out + self._fire_timers(t)

    def user_speech_start(self, t: float, onset: float) -> list[Event]:
        self._advance(t)
        if self.user is UserState.SPEAKING:
            raise EngineError(f"user_speech_start at {t:.3f}s while the user is already speaking")
        self.user = UserState.SPEAKING
        previous = self._utterance
        utterance = _Utterance(onset=onset)
        self._utterance = utterance
        out: list[Event] = [UserSpeechStart(onset)]
        self._false_deadline = None
        if self._turn is not None:
            # Speech resumed before the end of turn fired: same turn, one more pause learned.
            self._learn_pause(onset - self._turn.last_end)
        overlap = self._overlap
        if overlap is not None and previous is not None:
            # speech resumed within the overlap's pause: the same overlap goes on
            overlap.voiced_at_open -= previous.voiced
            overlap.last_end = None
            overlap.utterances.append(utterance)
            utterance.overlap = overlap
        elif self.agent is AgentState.SPEAKING:
            out += self._open_overlap(onset, utterance)
        return out

    def user_speech_progress(self, t: float, voiced: float) -> list[Event]:
        """Voiced seconds of the current utterance so far (VAD, per chunk)."""
        self._advance(t)
        if self.user is not UserState.SPEAKING or self._utterance is None:
            raise EngineError(f"user_speech_progress at {t:.3f}s while the user is silent")
        self._utterance.voiced = max(self._utterance.voiced, voiced)
        return self._check_vad_rule(t) + self._fire_timers(t)

    def user_speech_end(self, t: float, end: float) -> list[Event]:
        self._advance(t)
        if self.user is not UserState.SPEAKING or self._utterance is None:
            raise EngineError(f"user_speech_end at {t:.3f}s while the user is silent")
        self.user = UserState.SILENT
        utterance = self._utterance
        utterance.end = end
        out: list[Event] = [UserSpeechEnd(end, duration=end - utterance.onset)]
        overlap = self._overlap
        if overlap is not None:
            # no verdict yet: the overlap waits out a short pause before it counts as a backchannel
            overlap.last_end = end
            overlap.pause_until = end + self.options.interruption.overlap_max_pause
            return out + self._fire_timers(t)
        if utterance.verdict is None or utterance.verdict == "interruption":
            self._extend_turn(utterance)
            if self.agent is AgentState.PAUSED or self._false_check_stopped:
                self._false_deadline = end + self.options.interruption.false_interruption_timeout
        return out + self._fire_timers(t)

    def bargein_probability(self, t: float, probability: float) -> list[Event]:
        self._advance(t)
        overlap = self._overlap
        if overlap is None or not self.wants_bargein_probability:
            return self._fire_timers(t)  # a late answer for a closed overlap: nothing to decide
        overlap.requests += 1
        overlap.max_probability = max(probability, overlap.max_probability or 0.0)
        out: list[Event] = []
        if probability >= self.options.interruption.threshold and self._words_ok():
            if self._lexical_on():
                out += self._lexical_gate(t, overlap, probability)
            else:
                out += self._interrupt(t, "adaptive", probability)
        elif self._lexical_on():
            overlap.held_probability = None  # the model no longer says "interrupt"
            if probability >= self.options.interruption.lexical_check.lean:
                out += self._ask_lexical(t, overlap)
        if self._overlap is overlap and self._lexical_on():
            out += self._command_probe(t, overlap)
        return out + self._fire_timers(t)

    def lexical_verdict(self, t: float, onset: float, verdict: LexicalVerdict, asked: float) -> list[Event]:
        """The verdict of the lexical check asked at `asked` for the overlap that began at `onset`,
        known at `t`. A verdict for an overlap that is already decided or closed changes nothing."""
        self._advance(t)
        overlap = self._overlap
        if overlap is None or abs(overlap.onset - onset) > 1e-6 or not self._adaptive_active(t):
            return self._fire_timers(t)
        if overlap.lexical_in_flight is not None and abs(overlap.lexical_in_flight - asked) < 1e-6:
            overlap.lexical_in_flight = None
        out: list[Event] = []
        probe = overlap.probe_asked is not None and abs(overlap.probe_asked - asked) < 1e-6
        if probe and verdict != "command":
            return self._fire_timers(t)  # the probe only listens for commands
        if asked >= overlap.lexical_covered:
            overlap.lexical_verdict, overlap.lexical_covered = verdict, asked
            if verdict == "command" and self._words_ok():
                out += self._interrupt(t, "adaptive", overlap.max_probability)
            elif verdict in ("other", "none") and overlap.held_probability is not None:
                out += self._interrupt(t, "adaptive", overlap.held_probability)
            elif overlap.held_probability is not None:
                out += self._ask_lexical(t, overlap)  # a cue: keep listening while the caller goes on
        return out + self._fire_timers(t)

    def bargein_failed(self, t: float, reason: str) -> list[Event]:
        """The detector erred or answered late: VAD mode for the rest of the call."""
        self._advance(t)
        if self.fallback:
            return []
        self.fallback = True
        return [DetectorFallback(t, reason=reason), *self._check_vad_rule(t)]

    def eot_probability(self, t: float, probability: float) -> list[Event]:
        self._advance(t)
        if self._turn is not None and self.user is UserState.SILENT:
            self._turn.eot_probability = min(1.0, max(0.0, probability))
        return self._fire_timers(t)

    def transcript(
        self, t: float, words: list[Word], *, final: bool = True, end_of_utterance: bool = False
    ) -> list[Event]:
        """STT output: interim or final words with times on the call's timeline."""
        self._advance(t)
        out: list[Event] = []
        if not words:
            return self._fire_timers(t)
        target = self._utterance_for(words)
        if target is None:
            if final and self._turn is not None:
                self._turn.words = [*self._turn.words, *words]
            return self._fire_timers(t)
        if target.verdict == "backchannel":
            if final:
                target.words = list(words)
                out.append(TranscriptDropped(t, text=" ".join(w.text for w in words)))
                if self._last_agent_end is not None and self.agent is AgentState.SILENT:
                    self._promote_boundary_backchannels(self._last_agent_end)
            return out + self._fire_timers(t)
        if target.verdict == "ignored":
            return self._fire_timers(t)
        target.words = list(words)
        if final and self._turn is not None and target.end is not None:
            self._turn.words = self._turn_words()
        if final and end_of_utterance and self._turn is not None:
            self._turn.stt_end_of_utterance_at = t
        if self._overlap is not None:
            out += self._check_vad_rule(t)
        if final and self.agent is AgentState.PAUSED:
            if self._only_backchannel_words(words) and self.user is UserState.SILENT:
                # "uh-huh" stopped a VAD-mode agent: resume at once instead of waiting it out.
                out += self._resume_false(t)
            else:
                out += self._confirm_interruption(t, "transcript")
        return out + self._fire_timers(t)

    def tick(self, t: float) -> list[Event]:
        self._advance(t)
        return self._check_vad_rule(t) + self._release_held(t) + self._fire_timers(t)

    # -- internals ------------------------------------------------------------------------------

    def _advance(self, t: float) -> None:
        if t < self.now - 1e-9:
            raise EngineError(f"time went backwards: {t:.3f}s after {self.now:.3f}s")
        self.now = t

    def _transition(self, name: str) -> None:
        key = (name, self.agent)
        if key not in AGENT_TRANSITIONS:
            raise EngineError(f"{name} is not allowed while the agent is {self.agent.value}")
        self.agent = AGENT_TRANSITIONS[key]

    def _in_start_boundary(self, t: float) -> bool:
        boundary = self.options.interruption.backchannel_boundary
        if boundary is None or self._agent_turn_start is None:
            return False
        return t < self._agent_turn_start + boundary.start

    def _adaptive_active(self, t: float) -> bool:
        return (
            self.options.interruption.mode == "adaptive"
            and not self.fallback
            and not self._in_start_boundary(t)
        )

    # -- lexical check (barge-in) ----------------------------------------------------------------

    def _lexical_on(self) -> bool:
        return self.has_lexical and self.options.interruption.lexical_check.enabled

    def _lexical_gate(self, t: float, overlap: _Overlap, probability: float) -> list[Event]:
        """The model says "interrupt": a cue verdict vetoes, a command or other words confirm, no
        verdict yet holds the interruption until one arrives or the deadline passes."""
        if overlap.lexical_verdict in ("command", "other", "none") or (
            probability >= self.options.interruption.lexical_check.veto_below
        ):
            return self._interrupt(t, "adaptive", probability)
        overlap.held_probability = max(probability, overlap.held_probability or 0.0)
        return self._ask_lexical(t, overlap) + self._release_held(t)

    def _ask_lexical(self, t: float, overlap: _Overlap) -> list[Event]:
        opts = self.options.interruption.lexical_check
        if overlap.lexical_in_flight is not None or overlap.lexical_checks >= opts.max_checks:
            return []
        if overlap.lexical_verdict == "command":
            return []
        if overlap.lexical_checks > 0 and (
            t - overlap.lexical_covered < opts.recheck - 1e-9 or not self._spoke_after(overlap)
        ):
            return []
        overlap.lexical_checks += 1
        overlap.lexical_in_flight = t
        return [LexicalCheck(t, onset=overlap.onset, start=overlap.onset - opts.preroll)]

    def _command_probe(self, t: float, overlap: _Overlap) -> list[Event]:
        """Once per overlap, `command_probe` s after the onset, a decode that only a command word acts on."""
        opts = self.options.interruption.lexical_check
        if (
            opts.command_probe is None
            or overlap.probe_asked is not None
            or overlap.lexical_in_flight is not None
        ):
            return []
        if t < overlap.onset + opts.command_probe - 1e-9 or overlap.lexical_checks >= opts.max_checks:
            return []
        if (
            overlap.lexical_verdict is not None
            and overlap.lexical_covered >= overlap.onset + opts.command_probe
        ):
            return []  # a regular decode already heard that far
        overlap.lexical_checks += 1
        overlap.lexical_in_flight = overlap.probe_asked = t
        return [LexicalCheck(t, onset=overlap.onset, start=overlap.onset - opts.preroll)]

    def _spoke_after(self, overlap: _Overlap) -> bool:
        """The caller spoke after the audio the newest verdict covered."""
        if self.user is UserState.SPEAKING:
            return True
        return overlap.last_end is not None and overlap.last_end > overlap.lexical_covered + 1e-9

    def _release_held(self, t: float) -> list[Event]:
        """A held interruption whose verdict is late (no verdict by `max_delay` after the onset) or
        whose cue veto has gone stale (`veto_span` after the audio it covered) is decided now."""
        overlap = self._overlap
        if overlap is None or overlap.held_probability is None or not self._adaptive_active(t):
            return []
        opts = self.options.interruption.lexical_check
        if overlap.lexical_verdict is None:
            late = t >= overlap.onset + opts.max_delay - 1e-9
        else:
            late = (
                overlap.lexical_verdict == "cue"
                and t >= overlap.lexical_covered + opts.veto_span - 1e-9
                and self._spoke_after(overlap)
            )
        if late and self._words_ok():
            return self._interrupt(t, "adaptive", overlap.held_probability)
        return []

    def _close_as_backchannel(self, t: float) -> list[Event]:
        overlap = self._overlap
        assert overlap is not None and overlap.last_end is not None
        self._overlap = None
        for utterance in overlap.utterances:
            utterance.verdict = "backchannel"
            self._backchannels.append(utterance)
        adaptive = overlap.requests > 0 or self._adaptive_active(t)
        return [
            Backchannel(
                t,
                onset=overlap.onset,
                duration=overlap.last_end - overlap.onset,
                probability=overlap.max_probability,
                mode="adaptive" if adaptive else "vad",
                requests=overlap.requests,
            )
        ]

    def _open_overlap(self, onset: float, utterance: _Utterance) -> list[Event]:
        if not self.options.interruption.enabled:
            utterance.verdict = "ignored"
            return [OverlapStart(onset)]
        overlap = _Overlap(
            onset=onset,
            in_start_boundary=self._in_start_boundary(onset),
            voiced_at_open=utterance.voiced,
            utterances=[utterance],
        )
        self._overlap = overlap
        utterance.overlap = overlap
        return [OverlapStart(onset, in_start_boundary=overlap.in_start_boundary)]

    def _utterance_words(self) -> int:
        utterance = self._utterance
        return len(utterance.words) if utterance else 0

    def _words_ok(self) -> bool:
        needed = self.options.interruption.min_words
        return needed <= 0 or not self.has_stt or self._utterance_words() >= needed

    def _check_vad_rule(self, t: float) -> list[Event]:
        overlap, utterance = self._overlap, self._utterance
        if overlap is None or utterance is None or self._adaptive_active(t):
            return []
        voiced = utterance.voiced - overlap.voiced_at_open
        if voiced >= self.options.interruption.min_duration and self._words_ok():
            return self._interrupt(t, "vad", overlap.max_probability)
        return []

    def _interrupt(self, t: float, mode: DecisionMode, probability: float | None) -> list[Event]:
        overlap, utterance = self._overlap, self._utterance
        assert overlap is not None and utterance is not None
        self._overlap = None
        utterance.verdict = "interruption"
        caller_paused = self.user is UserState.SILENT
        out: list[Event] = [
            Interruption(
                t,
                onset=overlap.onset,
                latency_ms=(t - overlap.onset) * 1000.0,
                mode=mode,
                probability=probability,
                fallback=self.fallback,
                requests=overlap.requests,
            )
        ]
        if self.options.interruption.resume_false_interruption:
            self._transition("interrupt_pause")
            out.append(PausePlayout(t))
        else:
            self._transition("interrupt_stop")
            self._false_check_stopped = True
            out.append(StopPlayout(t, reason="interruption"))
        self._backchannels = []
        if caller_paused and utterance.end is not None:
            # decided in the pause after the caller's words: their turn is already waiting
            self._extend_turn(utterance)
            self._false_deadline = utterance.end + self.options.interruption.false_interruption_timeout
        return out

    def _confirm_interruption(self, t: float, reason: str) -> list[Event]:
        """Evidence that the user took the turn: a paused agent stops for good."""
        self._false_deadline = None
        self._false_check_stopped = False
        if self.agent is not AgentState.PAUSED:
            return []
        self._transition("confirm_stop")
        if self._turn is not None:
            self._turn.interrupted_agent = True
        return [StopPlayout(t, reason=reason)]

    def _extend_turn(self, utterance: _Utterance) -> None:
        assert utterance.end is not None
        if self._turn is None:
            self._turn = _PendingTurn(last_end=utterance.end)
        self._turn.last_end = utterance.end
        self._turn.eot_probability = None
        self._turn.stt_end_of_utterance_at = None
        self._turn.words = self._turn_words()
        if utterance.verdict == "interruption":
            self._turn.interrupted_agent = True

    def _turn_words(self) -> list[Word]:
        words = list(self._turn.words) if self._turn else []
        if self._utterance is not None:
            seen = {(w.text, w.start) for w in words}
            words += [w for w in self._utterance.words if (w.text, w.start) not in seen]
        return words

    def _utterance_for(self, words: list[Word]) -> _Utterance | None:
        first = words[0].start
        candidates = [self._utterance, *reversed(self._backchannels)]
        for utterance in candidates:
            if utterance is None:
                continue
            end = utterance.end if utterance.end is not None else float("inf")
            if utterance.onset - WORD_ONSET_TOLERANCE <= first <= end + WORD_ONSET_TOLERANCE:
                return utterance
        return None

    def _only_backchannel_words(self, words: list[Word]) -> bool:
        lexicon = set(self.options.interruption.backchannel_lexicon)
        text = " ".join(_normalise(w.text) for w in words)
        return bool(words) and (text in lexicon or all(_normalise(w.text) in lexicon for w in words))

    def _promote_boundary_backchannels(self, agent_end: float) -> None:
        """End boundary: overlap speech ending near the agent's end was a real (late) answer; it
        joins the caller's pending turn (no event of its own: the end of turn will say it)."""
        boundary = self.options.interruption.backchannel_boundary
        if boundary is None or self.user is UserState.SPEAKING:
            return
        for utterance in list(self._backchannels):
            ended = utterance.words[-1].end if utterance.words else utterance.end
            if ended is None or ended < agent_end - boundary.end:
                continue
            if self.has_stt and not utterance.words:
                continue  # with an STT, only a transcript can count as an answer
            if self._only_backchannel_words(utterance.words):
                continue
            self._backchannels.remove(utterance)
            utterance.verdict = None
            if self._turn is None:
                self._turn = _PendingTurn(last_end=utterance.end or agent_end)
            self._turn.words = [*self._turn.words, *utterance.words]

    def _learn_pause(self, pause: float) -> None:
        if self.options.endpointing.mode != "dynamic" or pause <= 0:
            return
        alpha = self.options.endpointing.dynamic_alpha
        previous = self._dynamic_min if self._dynamic_min is not None else self.options.min_endpointing_delay
        self._dynamic_min = alpha * pause + (1 - alpha) * previous

    def _endpointing_wait(self, turn: _PendingTurn) -> tuple[float, float | None]:
        opts = self.options
        low, high = self.min_endpointing_delay, self.max_endpointing_delay
        if opts.turn_detection == "model":
            p = turn.eot_probability
            if p is None:
                return high, None
            wait = high - p * (high - low)
            floor = self.early_floor_threshold
            if floor is not None and p >= floor:
                wait = min(wait, opts.early_floor_delay)
            return wait, p
        return low, None

    def _turn_ready(self, t: float, turn: _PendingTurn) -> tuple[bool, float, float | None]:
        wait, probability = self._endpointing_wait(turn)
        if t < turn.last_end + wait:
            return False, wait, probability
        if self.has_stt:
            if not turn.words:
                return False, wait, probability
            if self.options.turn_detection == "stt" and turn.stt_end_of_utterance_at is None:
                return t >= turn.last_end + self.options.max_endpointing_delay, wait, probability
        return True, wait, probability

    def _fire_timers(self, t: float) -> list[Event]:
        out: list[Event] = []
        overlap = self._overlap
        if overlap is not None and overlap.last_end is not None and t >= overlap.pause_until - 1e-9:
            out += self._close_as_backchannel(t)
        turn = self._turn
        if turn is not None and self.user is UserState.SILENT:
            ready, wait, probability = self._turn_ready(t, turn)
            if ready and self.agent is not AgentState.SPEAKING:
                out += self._confirm_interruption(t, "end_of_turn")
                self._turn = None
                self._false_deadline = None
                out.append(
                    EndOfTurn(
                        t,
                        delay_ms=(t - turn.last_end) * 1000.0,
                        probability=probability,
                        wait_s=wait,
                        transcript=" ".join(w.text for w in turn.words),
                        interrupted_agent=turn.interrupted_agent,
                    )
                )
            elif self.has_stt and not turn.words and t >= turn.last_end + self.options.max_endpointing_delay:
                self._turn = None  # speech with no words (noise): not a turn
        if (
            self._false_deadline is not None
            and t >= self._false_deadline
            and self.user is UserState.SILENT
            and not self._words_on_their_way(t)
        ):
            out += self._resume_false(t)
        return out

    def words_awaited(self, utterances: int) -> None:
        """How many utterances the call's batch STT has been handed and not transcribed yet (the
        session counts them; a streaming STT never says). Read by the next timers."""
        self._words_awaited = max(0, utterances)

    def _words_on_their_way(self, t: float) -> bool:
        """A paused agent waits past ``false_interruption_timeout`` while the words of the speech
        that paused it are still being transcribed (a local decoder under load takes longer than
        the timeout): until they arrive, or ``max_endpointing_delay`` after the caller's last
        words at most. Resuming first would talk over a real interruption."""
        if not (self.has_stt and self.agent is AgentState.PAUSED and self._words_awaited > 0):
            return False
        assert self._false_deadline is not None
        last_words = self._false_deadline - self.options.interruption.false_interruption_timeout
        return t < last_words + self.options.max_endpointing_delay

    def _resume_false(self, t: float) -> list[Event]:
        """The interruption was false: resume a paused agent (or report a stopped one)."""
        self._false_deadline = None
        self._turn = None
        out: list[Event] = []
        if self.agent is AgentState.PAUSED:
            self._transition("resume")
            out += [ResumePlayout(t), FalseInterruption(t, resumed=True)]
        elif self._false_check_stopped:
            out.append(FalseInterruption(t, resumed=False))
        self._false_check_stopped = False
        return out
