"""A browser call (aiortc peer connection) as a CallTransport.

Caller frames come from `tracks.read_caller` into an `InboundQueue` (drop-oldest frames, counted;
DTMF from the page is never dropped); agent frames go to the `AgentAudioTrack`, which paces them
in real time. Audio still queued in the track is not yet heard: `unheard_seconds()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.audio.frames import FRAME_SECONDS, Pcm
from gateway.calls import CallEnded, CallInfo, Dtmf, InboundFrame, InboundQueue, TransportEvent
from gateway.edges.webrtc.tracks import AgentAudioTrack

INBOUND_QUEUE_FRAMES = 50


class WebRtcTransport:
    def __init__(self, info: CallInfo, track: AgentAudioTrack) -> None:
        self.info = info
        self.track = track
        self.frames_in = 0
        self._inbound = InboundQueue(INBOUND_QUEUE_FRAMES)

    @property
    def dropped(self) -> int:
        return self._inbound.dropped

    @property
    def t(self) -> float:
        """Call time of the next caller frame."""
        return self.frames_in * FRAME_SECONDS

    def feed(self, pcm: Pcm) -> None:
        if self._inbound.put(InboundFrame(self.t, pcm)):
            self.frames_in += 1

    def feed_dtmf(self, digit: str) -> None:
        self._inbound.put(Dtmf(self.t, digit, "page"))

    def end(self, reason: str) -> None:
        self._inbound.put(CallEnded(reason))

    def events(self) -> AsyncIterator[TransportEvent]:
        return self._inbound.events()

    def play(self, pcm: Pcm) -> None:
        self.track.push(pcm)

    def clear(self) -> None:
        self.track.clear()

    def unheard_seconds(self) -> float:
        return self.track.queued_seconds

    async def hangup(self, reason: str = "agent_hangup") -> None:
        self.end(reason)
