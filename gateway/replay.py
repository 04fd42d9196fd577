"""Offline replay of a stereo call recording through the live turn pipeline.

Contract (docs/design.md): channel 0 is the caller (inbound), channel 1 the agent's playout (digital
silence where the agent is silent). The agent is speaking while channel 1 is non-silent; an agent
utterance ends once channel 1 has been silent for `AGENT_HANGOVER` seconds. After the engine
interrupts the agent, the rest of that utterance is treated as stopped (paused, if the engine
paused it: a later resume makes it audible again while channel 1 still plays).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gateway.audio.frames import Pcm, samples_per_frame
from gateway.audio.wav import read_wav
from gateway.turns.detectors import BargeInDetector, EndOfTurnDetector
from gateway.turns.events import (
    REPLAY_TYPES,
    EndOfTurn,
    Event,
    Interruption,
    PausePlayout,
    ResumePlayout,
    StopPlayout,
)
from gateway.turns.lexical import InlineLexicalRunner, shared_checker
from gateway.turns.options import TurnHandlingOptions
from gateway.turns.pipeline import TurnPipeline
from gateway.turns.registry import bargein_detector, end_of_turn_detector
from gateway.turns.silero import SileroModel
from gateway.turns.vad import VadStream

AGENT_HANGOVER = 0.3
# Agent audio resuming after less silence than this, with no user turn or interruption in
# between, continues the same agent turn (a pause between sentences): the start boundary is
# not re-armed.
AGENT_TURN_GAP = 1.0
# A frame of the agent channel is audible above this RMS (about -60 dBFS): "digital silence"
# in recordings is rarely exactly zero after μ-law round trips or dithering.
AGENT_SILENCE_RMS = 32.0


class ReplayError(ValueError):
    """The recording cannot be replayed (not stereo, unsupported rate, unreadable)."""


@dataclass
class _AgentChannel:
    """Agent activity in channel 1, as the engine must see it."""

    active: bool = False  # an utterance is under way in channel 1
    last_audible_end: float = 0.0
    held: str = ""  # "" | "paused" | "stopped": the engine silenced this utterance
    ended_while_paused: bool = False
    turn_open: bool = False  # the last agent turn may still continue (no user turn since)


@dataclass
class ReplayResult:
    file: str
    events: list[Event] = field(default_factory=list)
    duration: float = 0.0
    bargein_requests: int = 0
    bargein_seconds: float = 0.0
    # CPU seconds of each lexical check's decode (interruption.lexical_check)
    lexical_seconds: list[float] = field(default_factory=list)
    # their sum per overlap that had at least one
    lexical_overlap_seconds: list[float] = field(default_factory=list)

    def contract_events(self) -> list[dict[str, object]]:
        rows = []
        for event in sorted(self.events, key=lambda e: e.t):
            if event.type in REPLAY_TYPES:
                rows.append({"file": self.file, **event.to_dict()})
        return rows


class Replayer:
    """Builds one pipeline per file with shared (stateless) models."""

    def __init__(self, options: TurnHandlingOptions, *, model: SileroModel | None = None) -> None:
        self.options = options
        self.model = model or SileroModel()
        self._bargein: BargeInDetector | None = None
        self._eot: EndOfTurnDetector | None = None
        interruption = options.interruption
        if interruption.enabled and interruption.mode == "adaptive":
            self._bargein = bargein_detector(interruption.detector)
        if options.turn_detection == "model":
            self._eot = end_of_turn_detector(options.turn_detector)

    def replay_file(self, path: str | Path, label: str | None = None) -> ReplayResult:
        audio = read_wav(path)
        if audio.pcm.shape[1] != 2:
            raise ReplayError(
                f"{path}: expected a stereo WAV (caller, agent), got {audio.pcm.shape[1]} channel(s)"
            )
        if audio.rate not in (8000, 16000):
            raise ReplayError(f"{path}: sample rate {audio.rate} Hz; replay takes 8000 or 16000 Hz")
        return self.replay_pcm(audio.pcm[:, 0], audio.pcm[:, 1], audio.rate, label or str(path))

    def replay_pcm(self, caller: Pcm, agent: Pcm, rate: int, label: str) -> ReplayResult:
        options = self.options
        if options.vad.sample_rate != rate:
            from dataclasses import replace

            options = replace(options, vad=replace(options.vad, sample_rate=rate))
        lexical = None
        if self._bargein is not None and options.interruption.lexical_check.enabled:
            lexical = InlineLexicalRunner(
                shared_checker(
                    options.interruption.backchannel_lexicon, options.interruption.lexical_check.commands
                )
            )
        pipeline = TurnPipeline(
            options,
            VadStream(self.model, rate),
            bargein=self._bargein,
            end_of_turn=self._eot,
            lexical=lexical,
        )
        result = ReplayResult(file=label, duration=len(caller) / rate)
        channel = _AgentChannel()
        for caller_frame, agent_frame in _frames(caller, agent, rate):
            t0 = pipeline.t
            audible = float(np.sqrt(np.mean(agent_frame.astype(np.float32) ** 2))) > AGENT_SILENCE_RMS
            result.events += _agent_edges(pipeline, channel, audible, t0)
            heard = agent_frame if channel.active and not channel.held else np.zeros_like(agent_frame)
            events = pipeline.process_frame(caller_frame, heard)
            result.events += events
            result.events += _apply_decisions(pipeline, channel, events)
        result.events += pipeline.finish()
        if channel.active and not channel.held:
            result.events += pipeline.agent_speech_end(channel.last_audible_end)
        result.bargein_requests = pipeline.bargein_cost.requests
        result.bargein_seconds = pipeline.bargein_cost.seconds
        if lexical is not None:
            result.lexical_seconds = list(lexical.cpu_seconds)
            result.lexical_overlap_seconds = list(lexical.per_overlap.values())
        return result


def _frames(caller: Pcm, agent: Pcm, rate: int) -> Iterator[tuple[Pcm, Pcm]]:
    n = samples_per_frame(rate)
    whole = len(caller) // n * n
    for i in range(0, whole, n):
        yield caller[i : i + n].copy(), agent[i : i + n].copy()


def _agent_edges(pipeline: TurnPipeline, channel: _AgentChannel, audible: bool, t0: float) -> list[Event]:
    """Agent start/end from channel 1, with the hangover; silenced utterances stay silent."""
    out: list[Event] = []
    if audible:
        if not channel.active:
            channel.active = True
            if channel.held == "paused":
                # A new utterance while the engine still holds the last one paused: it is what
                # a resume would continue with.
                channel.ended_while_paused = False
            else:
                gap = t0 - channel.last_audible_end
                new_turn = not (channel.turn_open and not channel.held and gap < AGENT_TURN_GAP)
                channel.held = ""
                channel.turn_open = True
                out += pipeline.agent_speech_start(new_turn=new_turn)
        channel.last_audible_end = t0 + samples_per_frame(pipeline.sample_rate) / pipeline.sample_rate
        return out
    if channel.active and t0 - channel.last_audible_end >= AGENT_HANGOVER - 1e-9:
        channel.active = False
        if channel.held == "paused":
            channel.ended_while_paused = True
        elif not channel.held:
            out += pipeline.agent_speech_end(channel.last_audible_end)
    return out


def _apply_decisions(pipeline: TurnPipeline, channel: _AgentChannel, events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, EndOfTurn | Interruption):
            channel.turn_open = False
        if isinstance(event, PausePlayout):
            channel.held = "paused"
        elif isinstance(event, StopPlayout):
            channel.held = "stopped"
            if channel.ended_while_paused:
                channel.ended_while_paused = False
        elif isinstance(event, ResumePlayout):
            channel.held = ""
            if channel.ended_while_paused or not channel.active:
                # Nothing left of that utterance in the recording: it ends where it resumed.
                channel.ended_while_paused = False
                channel.active = False
                out += pipeline.agent_speech_end()
    return out
