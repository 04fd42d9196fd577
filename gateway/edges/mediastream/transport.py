"""A carrier media stream as a CallTransport.

Inbound wire audio (μ-law, A-law or L16 at 8/16 kHz, in whatever chunk sizes the carrier uses) is
decoded, resampled to the call's rate and cut into exact 20 ms frames. Outbound: the session hands
one 20 ms frame per caller frame (so sending at once is real-time pacing: the carrier's own
buffer stays one or two frames deep); each frame, or each batch of `frames_per_message` frames,
is encoded and followed by a mark. Mark echoes advance `PlayedPosition`, whose unheard seconds
are `unheard_seconds()`. `clear()` drops unsent audio, sends the carrier's clear and
tells the position tracker.

The handler feeds `feed_*` from the socket reader and drains `outbox` to the socket; the
transport itself does no I/O, so tests and the benchmark can drive it directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import numpy as np

from gateway.audio.frames import FRAME_SECONDS, Framer, Pcm, samples_per_frame
from gateway.audio.resample import StreamResampler
from gateway.calls import CallEnded, CallInfo, Dtmf, InboundFrame, InboundQueue, TransportEvent
from gateway.edges.mediastream.dialects.base import Dialect, Outbound
from gateway.edges.mediastream.marks import PlayedPosition

log = logging.getLogger(__name__)

INBOUND_QUEUE_FRAMES = 50  # 1 s of caller audio; beyond it the oldest frames are dropped (counted)


class MediaStreamTransport:
    def __init__(self, info: CallInfo, dialect: Dialect) -> None:
        self.info = info
        self.dialect = dialect
        self.wire = dialect.wire
        self.rate = info.sample_rate
        self.position = PlayedPosition(self.rate)
        self.frames_in = 0
        self.frames_out = 0
        self.clears = 0
        self.outbox: asyncio.Queue[Outbound | None] = asyncio.Queue()
        self._inbound = InboundQueue(INBOUND_QUEUE_FRAMES)
        self._framer = Framer(self.rate)
        self._up = StreamResampler(self.wire.rate, self.rate) if self.wire.rate != self.rate else None
        self._down = StreamResampler(self.rate, self.wire.rate) if self.wire.rate != self.rate else None
        self._batch: list[Pcm] = []
        self._batch_frame = 0
        self._played_in_frame = False
        self._current_frame = 0  # index of the caller frame the session is handling
        self.hangup_reason = ""

    @property
    def dropped(self) -> int:
        return self._inbound.dropped

    @property
    def _ended(self) -> bool:
        return self._inbound.ended

    # -- inbound (from the socket reader) -------------------------------------------------------

    def feed_media(self, payload: bytes) -> None:
        if self._ended:
            return
        pcm = self.wire.decode(payload)
        if self._up is not None:
            pcm = self._up.process(pcm)
        for frame in self._framer.push(pcm):
            self._inbound.put(InboundFrame(self.frames_in * FRAME_SECONDS, frame))
            self.frames_in += 1

    def feed_dtmf(self, digit: str) -> None:
        if digit:
            self._inbound.put(Dtmf(self.frames_in * FRAME_SECONDS, digit, self.info.extra.get("carrier", "")))

    def feed_mark(self, name: str) -> None:
        self.position.on_echo(name)

    def end(self, reason: str) -> None:
        self._inbound.put(CallEnded(reason))

    # -- CallTransport --------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[TransportEvent]:
        while True:
            event = await self._inbound.get()
            if isinstance(event, InboundFrame):
                if self._batch and not self._played_in_frame:
                    self._flush_batch()  # the agent fell silent: send what is batched
                self._played_in_frame = False
                self._current_frame = round(event.t / FRAME_SECONDS)
            yield event
            if isinstance(event, CallEnded):
                return

    def play(self, pcm: Pcm) -> None:
        if self._ended:
            return
        self._played_in_frame = True
        if not self._batch:
            self._batch_frame = self._current_frame
        self._batch.append(pcm)
        self.frames_out += 1
        if len(self._batch) >= self.dialect.frames_per_message:
            self._flush_batch()

    def clear(self) -> None:
        self._batch.clear()
        # Unsent audio still in the outbox is dropped with the carrier's buffer.
        kept: list[Outbound | None] = []
        while not self.outbox.empty():
            item = self.outbox.get_nowait()
            if item is None:
                kept.append(item)
        for item in kept:
            self.outbox.put_nowait(item)
        if self._down is not None:
            self._down.reset()
        message = self.dialect.clear()
        if message is not None:
            self.outbox.put_nowait(message)
        self.clears += 1
        self.position.on_clear()

    def unheard_seconds(self) -> float:
        return self.position.unheard_seconds if self.dialect.has_marks else 0.0

    async def hangup(self, reason: str = "agent_hangup") -> None:
        self.hangup_reason = reason
        self.end(reason)
        self.outbox.put_nowait(None)  # the writer closes the socket

    # -- outbound -------------------------------------------------------------------------------

    def _flush_batch(self) -> None:
        pcm = np.concatenate(self._batch) if len(self._batch) > 1 else self._batch[0]
        self._batch = []
        samples = len(pcm)
        if self._down is not None:
            pcm = self._down.process(pcm)
        for message in self.dialect.media(self.wire.encode(pcm)):
            self.outbox.put_nowait(message)
        self.position.on_sent(samples)
        if self.dialect.has_marks:
            # The label records the caller frame the chunk was played with: a carrier-side
            # recording (tests/carrier_simulator.py) aligns the two channels exactly by it.
            mark = self.dialect.mark(self.position.new_mark(f"{self._batch_frame}"))
            if mark is not None:
                self.outbox.put_nowait(mark)

    @property
    def frame_samples(self) -> int:
        return samples_per_frame(self.rate)
