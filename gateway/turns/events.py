"""What the TurnEngine says: observations and decisions, each stamped with the time it was made.

Every event has a `type` string; the ones named in the replay contract (docs/design.md) are printed by
`gateway replay` exactly as `to_dict()` renders them. Decisions that drive I/O (pause, resume,
stop playout) are events too, so a session is a loop of "feed input, act on the returned events".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

DecisionMode = Literal["adaptive", "vad"]


@dataclass(frozen=True)
class Word:
    """One transcript word with its start/end on the call's timeline (seconds)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    t: float

    def to_dict(self) -> dict[str, Any]:
        data = {"t": round(self.t, 3), "type": self.type}
        for key, value in asdict(self).items():
            if key == "t":
                continue
            data[key] = round(value, 3) if isinstance(value, float) else value
        return data


# -- observations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSpeechStart(Event):
    type: ClassVar[str] = "agent_speech_start"


@dataclass(frozen=True)
class AgentSpeechEnd(Event):
    type: ClassVar[str] = "agent_speech_end"


@dataclass(frozen=True)
class UserSpeechStart(Event):
    type: ClassVar[str] = "user_speech_start"


@dataclass(frozen=True)
class UserSpeechEnd(Event):
    type: ClassVar[str] = "user_speech_end"
    duration: float = 0.0


@dataclass(frozen=True)
class OverlapStart(Event):
    """The caller started speaking while the agent was audible (t = onset)."""

    type: ClassVar[str] = "overlap_start"
    in_start_boundary: bool = False


# -- verdicts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interruption(Event):
    type: ClassVar[str] = "interruption"
    onset: float = 0.0
    latency_ms: float = 0.0
    mode: DecisionMode = "vad"
    probability: float | None = None
    # True once the call has fallen back from adaptive to VAD mode after a detector failure.
    fallback: bool = False
    # Detector queries made for this overlap (LiveKit's `num_requests`).
    requests: int = 0


@dataclass(frozen=True)
class Backchannel(Event):
    type: ClassVar[str] = "backchannel"
    onset: float = 0.0
    duration: float = 0.0
    probability: float | None = None
    mode: DecisionMode = "vad"
    requests: int = 0


@dataclass(frozen=True)
class FalseInterruption(Event):
    type: ClassVar[str] = "false_interruption"
    resumed: bool = False


@dataclass(frozen=True)
class EndOfTurn(Event):
    type: ClassVar[str] = "end_of_turn"
    delay_ms: float = 0.0
    probability: float | None = None
    wait_s: float = 0.0
    transcript: str = ""
    interrupted_agent: bool = False


# -- decisions that drive playout ---------------------------------------------------------------


@dataclass(frozen=True)
class PausePlayout(Event):
    type: ClassVar[str] = "pause_playout"


@dataclass(frozen=True)
class ResumePlayout(Event):
    type: ClassVar[str] = "resume_playout"


@dataclass(frozen=True)
class StopPlayout(Event):
    """Cancel the agent's generation and clear queued audio."""

    type: ClassVar[str] = "stop_playout"
    reason: str = "interruption"


@dataclass(frozen=True)
class DetectorFallback(Event):
    """The barge-in detector failed or answered late: VAD mode for the rest of the call."""

    type: ClassVar[str] = "detector_fallback"
    reason: str = ""


@dataclass(frozen=True)
class TranscriptDropped(Event):
    """A transcript heard during agent speech that was judged a backchannel, not a turn."""

    type: ClassVar[str] = "transcript_dropped"
    text: str = ""


REPLAY_TYPES: frozenset[str] = frozenset(
    {
        "agent_speech_start",
        "agent_speech_end",
        "user_speech_start",
        "user_speech_end",
        "overlap_start",
        "interruption",
        "backchannel",
        "false_interruption",
        "end_of_turn",
    }
)

__all__ = [
    "REPLAY_TYPES",
    "AgentSpeechEnd",
    "AgentSpeechStart",
    "Backchannel",
    "DecisionMode",
    "DetectorFallback",
    "EndOfTurn",
    "Event",
    "FalseInterruption",
    "Interruption",
    "OverlapStart",
    "PausePlayout",
    "ResumePlayout",
    "StopPlayout",
    "TranscriptDropped",
    "UserSpeechEnd",
    "UserSpeechStart",
    "Word",
]
