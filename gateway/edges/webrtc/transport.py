"""A browser call (aiortc peer connection) as a CallTransport.

Caller frames come from `tracks.read_caller` into a bounded queue (drop-oldest, counted); agent
frames go to the `AgentAudioTrack`, which paces them in real time. Audio still queued in the
track is not yet heard: its length is reported as the Playout's `edge_delay`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from gateway.backends.base import Pcm
from gateway.edges.transport import CallEnded, CallInfo, Dtmf, InboundFrame, TransportEvent
from gateway.edges.webrtc.tracks import AgentAudioTrack

INBOUND_QUEUE_FRAMES = 50


class WebRtcTransport:
    def __init__(self, info: CallInfo, track: AgentAudioTrack) -> None:
        self.info = info
        self.track = track
        self.frames_in = 0
        self.dropped = 0
        self._queue: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._ended = False
        self.hangup_requested: Callable[[str], None] | None = None
        self.edge_delay: Callable[[float], None] | None = None

    def feed(self, pcm: Pcm) -> None:
        if self._ended:
            return
        if self._queue.qsize() >= INBOUND_QUEUE_FRAMES:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(InboundFrame(self.frames_in * 0.02, pcm))
        self.frames_in += 1

    def feed_dtmf(self, digit: str) -> None:
        if not self._ended:
            self._queue.put_nowait(Dtmf(self.frames_in * 0.02, digit))

    def end(self, reason: str) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(CallEnded(reason))

    async def events(self) -> AsyncIterator[TransportEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, CallEnded):
                return

    def play(self, pcm: Pcm) -> None:
        self.track.push(pcm)
        self._report()

    def clear(self) -> None:
        self.track.clear()
        self._report()

    def _report(self) -> None:
        if self.edge_delay is not None:
            self.edge_delay(self.track.queued_seconds)

    async def hangup(self, reason: str = "agent_hangup") -> None:
        self.end(reason)
        if self.hangup_requested is not None:
            self.hangup_requested(reason)
