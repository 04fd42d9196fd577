"""Interfaces of the pluggable detectors the TurnEngine listens to.

Detectors are streaming and per call: the session opens one stream per call and feeds it every
20 ms frame of caller audio together with the agent audio that was being played at that moment
(the playout reference, so echo of the agent can be told from the caller). The session asks for a
probability at most every `detector_interval` seconds while an overlap is open; answers are fed
to the TurnEngine as timestamped inputs. Implementations must be cheap to open and must not
block for long: the session measures each answer against the configured timeout.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gateway.audio.frames import Pcm


class DetectorError(RuntimeError):
    """A detector could not answer; the call falls back to VAD mode."""


@runtime_checkable
class BargeInStream(Protocol):
    def push(self, caller: Pcm, agent: Pcm) -> None:
        """Append one frame of caller audio and the agent audio played during it (same length)."""

    def probability(self, onset: float) -> float:
        """P(the overlap that began at `onset` is a real interruption), using audio up to now.

        `onset` is in seconds on the stream's own timeline (0 = first sample pushed).
        """


@runtime_checkable
class BargeInDetector(Protocol):
    name: str
    sample_rate: int

    def open_stream(self) -> BargeInStream: ...


@runtime_checkable
class EndOfTurnStream(Protocol):
    def push(self, caller: Pcm) -> None:
        """Append one frame of caller audio."""

    def probability(self, speech_end: float, words: tuple[str, ...]) -> float:
        """P(the caller's turn is finished), given the end of the last speech and partial words."""


@runtime_checkable
class EndOfTurnDetector(Protocol):
    name: str
    sample_rate: int

    def open_stream(self) -> EndOfTurnStream: ...
