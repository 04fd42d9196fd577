"""What a call is to every part of the gateway, whichever edge it came through.

- `CallInfo`: who called whom, over which edge, for which agent.
- Transport events (`InboundFrame`, `Dtmf`, `CallEnded`) and the `CallTransport` an edge makes
  of its protocol; `InboundQueue` is how an edge hands caller events to its session.
- `SessionFactory`: what runs one call on a transport (the AgentRunner, or a small test session).
- `CallObserver`: what happened in a call, kept in order and streamed to whoever follows it (the
  softphone page's captions, tests), so nobody polls a live session.

This module sits between `turns` (whose events it carries) and the edges, agents, metrics and
replay, which all speak it; it imports none of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.audio.frames import Pcm
from gateway.turns.events import Event

log = logging.getLogger(__name__)

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


# -- what an edge delivers ----------------------------------------------------------------------


@dataclass(frozen=True)
class InboundFrame:
    """20 ms of caller audio, int16 at the call's rate; `t` is seconds since the call was answered."""

    t: float
    pcm: Pcm


@dataclass(frozen=True)
class CallEnded:
    reason: str  # caller_hangup | agent_hangup | rtp_timeout | max_duration | shutdown | error


@dataclass(frozen=True)
class Dtmf:
    """A key the caller pressed, at call time `t`; `method` says how it came (rfc4733, sip_info,
    page, a carrier's name) when the edge knows."""

    t: float
    digit: str
    method: str = ""


TransportEvent = InboundFrame | Dtmf | CallEnded


class CallTransport(Protocol):
    info: CallInfo

    def events(self) -> AsyncIterator[TransportEvent]:
        """Caller frames in time order, DTMF, and finally one CallEnded."""

    def play(self, pcm: Pcm) -> None:
        """Queue agent audio (int16 at the call's rate) for real-time playout."""

    def clear(self) -> None:
        """Drop queued agent audio at once (interruption)."""

    def unheard_seconds(self) -> float:
        """Agent audio this edge has taken but the caller has not heard yet (a paced track, a
        carrier's buffer behind its marks); 0 when the edge plays what it takes at once."""

    async def hangup(self, reason: str = "agent_hangup") -> None: ...


class InboundQueue:
    """Caller events from an edge to its session, at most `max_frames` frames deep.

    When the session falls behind, the oldest *frame* is dropped (and counted); DTMF digits and the
    end of the call are never dropped. After `CallEnded` nothing more is taken.
    """

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.dropped = 0
        self.ended = False
        self._events: deque[TransportEvent] = deque()
        self._frames = 0
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: TransportEvent) -> bool:
        """Queue `event`; False (and nothing queued) once the call has ended."""
        if self.ended:
            return False
        if isinstance(event, InboundFrame):
            if self._frames >= self.max_frames:
                self._drop_oldest_frame()
            self._frames += 1
        elif isinstance(event, CallEnded):
            self.ended = True
        self._events.append(event)
        self._wake.set()
        return True

    def _drop_oldest_frame(self) -> None:
        for i, old in enumerate(self._events):
            if isinstance(old, InboundFrame):
                del self._events[i]
                self._frames -= 1
                self.dropped += 1
                return

    async def get(self) -> TransportEvent:
        while not self._events:
            self._wake.clear()
            await self._wake.wait()
        event = self._events.popleft()
        if isinstance(event, InboundFrame):
            self._frames -= 1
        return event

    async def events(self) -> AsyncIterator[TransportEvent]:
        """Every event in order, ending with the CallEnded."""
        while True:
            event = await self.get()
            yield event
            if isinstance(event, CallEnded):
                return


# -- what an edge refused -----------------------------------------------------------------------

# Why a call attempt was refused or failed before its session ran.
REFUSAL_REASONS = (
    "codec",  # no audio codec in common (SIP 488, a WebRTC offer without one)
    "media_address_family",  # media on an address family the gateway does not take (c=IN IP6)
    "auth",  # no, bad or expired credentials (token, signature, SIP digest, allow-list)
    "rate_limit",  # too many attempts from one source
    "capacity",  # full or draining (SIP 486/503)
    "routing",  # no agent for the call, or an agent that cannot be loaded
    "bad_request",  # a malformed offer, start message or SIP request
    "media",  # the media path could not be set up (SDP answer failed, never connected)
    "error",  # anything else
)


@dataclass(frozen=True)
class RefusedAttempt:
    """A call attempt an edge refused or could not start: what it was, why, what the caller got."""

    edge: EdgeName
    reason: str  # one of REFUSAL_REASONS
    detail: str = ""  # the specific cause, for people ("offer has only opus/48000/2")
    status: int | None = None  # the SIP or HTTP status (or WebSocket close code) sent
    caller: str = ""
    callee: str = ""
    agent: str = ""
    call_id: str = ""  # SIP Call-ID, a carrier's call id, ... when there is one

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in ("", None)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], edge: EdgeName | None = None) -> RefusedAttempt:
        status = data.get("status")
        return cls(
            edge=edge or data.get("edge", "sip"),
            reason=str(data.get("reason", "error")),
            detail=str(data.get("detail", "")),
            status=int(status) if status is not None else None,
            caller=str(data.get("caller", "")),
            callee=str(data.get("callee", "")),
            agent=str(data.get("agent", "")),
            call_id=str(data.get("call_id", "")),
        )


def report_refusal(sessions: object, attempt: RefusedAttempt) -> None:
    """Log a refused attempt with its reason and hand it to `sessions.refused()` when the sessions
    have one (the AgentRunner counts it and writes its row); never raises."""
    log.warning(
        "%s call attempt refused (%s%s): %s%s%s",
        attempt.edge,
        attempt.reason,
        f", {attempt.status}" if attempt.status is not None else "",
        attempt.detail or "no detail",
        f"; from {attempt.caller}" if attempt.caller else "",
        f"; call {attempt.call_id}" if attempt.call_id else "",
    )
    hook = getattr(sessions, "refused", None)
    if hook is None:
        return
    try:
        hook(attempt)
    except Exception:
        log.exception("recording a refused attempt failed")


# -- what observers see -------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnTiming:
    """Where the time went between the caller's last word and the agent's first audio (ms)."""

    eou_delay_ms: float  # last voiced audio -> end of turn (endpointing)
    stt_final_latency_ms: float | None  # VAD end of speech -> final transcript
    llm_ttft_ms: float | None  # end of turn -> first LLM token
    tts_first_audio_ms: float | None  # end of turn -> first synthesised audio
    response_ms: float  # end of turn -> first agent frame sent

    @property
    def total_ms(self) -> float:
        return self.eou_delay_ms + self.response_ms


@dataclass(frozen=True)
class Caption:
    """A final transcript of the caller, or a sentence the agent said, at call time `t`."""

    who: Literal["caller", "agent"]
    t: float
    text: str


Observation = Event | Caption | Dtmf | TurnTiming


class CallObserver:
    """One call as it happens: engine events, captions of both sides, DTMF and turn timings.

    The session reports into it; the lists keep the whole record (small: no audio), and `follow()`
    streams each entry as it is reported until the call is over. It holds nothing of the session,
    so an edge may keep it after the call (its last calls, for tests) without keeping the session.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.transcripts: list[tuple[float, str]] = []
        self.agent_said: list[tuple[float, str]] = []
        self.dtmf: list[str] = []
        self.turn_timings: list[TurnTiming] = []
        self.closed = False
        self._order: list[Observation] = []
        self._wake = asyncio.Event()

    def _add(self, item: Observation) -> None:
        self._order.append(item)
        self._wake.set()

    def on_events(self, events: Sequence[Event]) -> None:
        self.events += events
        for event in events:
            self._add(event)

    def on_transcript(self, t: float, text: str) -> None:
        self.transcripts.append((t, text))
        self._add(Caption("caller", t, text))

    def on_agent_said(self, t: float, text: str) -> None:
        self.agent_said.append((t, text))
        self._add(Caption("agent", t, text))

    def on_dtmf(self, dtmf: Dtmf) -> None:
        self.dtmf.append(dtmf.digit)
        self._add(dtmf)

    def on_turn_timing(self, timing: TurnTiming) -> None:
        self.turn_timings.append(timing)
        self._add(timing)

    def close(self) -> None:
        """The call is over: followers get what is left, then their iteration ends."""
        self.closed = True
        self._wake.set()

    async def follow(self) -> AsyncIterator[Observation]:
        """Everything reported so far, then each new entry, until `close()`."""
        seen = 0
        while True:
            while seen < len(self._order):
                seen += 1
                yield self._order[seen - 1]
            if self.closed:
                return
            self._wake.clear()
            await self._wake.wait()


class SessionFactory(Protocol):
    """Runs one call on `transport` until it ends, reporting to `observer` if one is given."""

    def __call__(
        self, transport: CallTransport, observer: CallObserver | None = None
    ) -> Coroutine[Any, Any, None]: ...


@dataclass(frozen=True)
class AgentChoice:
    """The agent that takes a call, as its CallInfo names it, and the rate its session runs at."""

    agent: str
    sample_rate: int


class CallSessions(SessionFactory, Protocol):
    """What an edge that picks its calls' agents needs: the routing decision and the sessions."""

    def route(self, requested: str = "", callee: str = "", default: str | None = None) -> str:
        """The agent for a call: `requested` (a plain agent name the caller asked for, never a
        path), else the routes on `callee`, else `default` or the gateway's default agent."""

    def choose(self, requested: str = "", callee: str = "", default: str | None = None) -> AgentChoice:
        """`route()`, with the agent loaded; raises when it cannot be."""
