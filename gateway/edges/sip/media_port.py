"""The per-call `pj.AudioMediaPort`: the only code that runs on pjsua2's media threads.

Its two callbacks do as little as they can while holding the GIL: `onFrameReceived` copies the
frame out of the SWIG `ByteVector` (the fast way when it passed its start-up check) into a
drop-oldest queue (prefixed with its u32 sequence number, as the wire's FRAME payload wants it) and
sets an event; the conference bridge calls it every 20 ms, with no audio while the caller holds the
call or sends no RTP, and such pauses (100 ms and longer) become silent frames so the sequence stays
on wall-clock time;
`onFrameRequested` takes one frame from the playout buffer.
Neither touches asyncio, sockets or the pjsua2 API.
"""

from __future__ import annotations

import threading

import pjsua2 as pj

from gateway.edges.sip.buffers import DropOldestQueue, PlayoutBuffer
from gateway.edges.sip.bytevec import ByteVectorReader
from gateway.edges.sip.wire import SEQ

FRAME_MS = 20
GAP_TICKS = 5  # 100 ms without caller audio: a pause, filled with silence


def frame_bytes(sample_rate: int) -> int:
    return sample_rate * FRAME_MS // 1000 * 2


class CallMediaPort(pj.AudioMediaPort):
    def __init__(
        self,
        sample_rate: int,
        reader: ByteVectorReader,
        inbound: DropOldestQueue,
        playout: PlayoutBuffer,
        wake: threading.Event,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.frame_bytes = frame_bytes(sample_rate)
        self._read = reader
        self.inbound = inbound
        self.playout = playout
        self._wake = wake
        self.received = 0
        self._gap = 0  # ticks without caller audio in a row
        self.requested = 0

    def create(self, name: str) -> None:
        fmt = pj.MediaFormatAudio()
        fmt.type = pj.PJMEDIA_TYPE_AUDIO
        fmt.clockRate = self.sample_rate
        fmt.channelCount = 1
        fmt.bitsPerSample = 16
        fmt.frameTimeUsec = FRAME_MS * 1000
        self.createPort(name, fmt)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or frame.size != self.frame_bytes:
            # A tick without caller audio. A few in a row are jitter: skipped, as always. From
            # GAP_TICKS on (on hold, an RTP pause) they become silent frames, the first ones too, so
            # the call's clock (the frame sequence) stays on wall-clock time.
            self._gap += 1
            if self._gap >= GAP_TICKS:
                for _ in range(GAP_TICKS if self._gap == GAP_TICKS else 1):
                    self.inbound.put(SEQ.pack(self.received) + bytes(self.frame_bytes))
                    self.received += 1
                self._wake.set()
            return
        self._gap = 0
        self.inbound.put(SEQ.pack(self.received) + self._read(frame.buf))
        self.received += 1
        self._wake.set()

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        data, _ = self.playout.next_frame()
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)
        self.requested += 1
