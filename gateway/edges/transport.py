"""The one shape every edge (SIP, WebRTC, carrier media streams) turns its protocol into."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

EdgeName = Literal["sip", "webrtc", "mediastream", "replay"]


@dataclass(frozen=True)
class CallInfo:
    call_id: str
    edge: EdgeName
    agent: str
    caller: str = ""
    callee: str = ""
    codec: str = ""
    sample_rate: int = 8000
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundFrame:
    """20 ms of caller audio, int16 at the call's rate; `t` is seconds since the call was answered."""

    t: float
    pcm: npt.NDArray[np.int16]


@dataclass(frozen=True)
class CallEnded:
    reason: str  # caller_hangup | agent_hangup | rtp_timeout | max_duration | shutdown | error


@dataclass(frozen=True)
class Dtmf:
    t: float
    digit: str


TransportEvent = InboundFrame | Dtmf | CallEnded


class CallTransport(Protocol):
    info: CallInfo

    def events(self) -> AsyncIterator[TransportEvent]:
        """Caller frames in time order, DTMF, and finally one CallEnded."""

    def play(self, pcm: npt.NDArray[np.int16]) -> None:
        """Queue agent audio (int16 at the call's rate) for real-time playout."""

    def clear(self) -> None:
        """Drop queued agent audio at once (interruption)."""

    async def hangup(self, reason: str = "agent_hangup") -> None: ...
