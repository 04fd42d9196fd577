"""aiortc media tracks: the agent's voice out (paced, clearable) and the caller's voice in (framed).

`AgentAudioTrack` is what the browser hears. The session hands it one 20 ms frame per caller
frame; `recv()` is called by aiortc's sender and paces itself on its own real-time clock, taking
a queued frame or sending silence. The queue is small (`max_frames`, drop-oldest, counted), and
`clear()` empties it at once, so an interruption silences the agent within one packet.

`read_caller()` turns the browser's track (Opus 48 kHz or G.711 8 kHz, any layout) into exact
20 ms int16 frames at the call's rate.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gateway.audio.frames import FRAME_SECONDS, Framer, Pcm, samples_per_frame


class AgentAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, rate: int, max_frames: int = 25) -> None:
        super().__init__()
        self.rate = rate
        self.samples = samples_per_frame(rate)
        self.max_frames = max_frames
        self.queue: deque[Pcm] = deque()
        self.sent_frames = 0
        self.sent_audio_frames = 0
        self.dropped = 0
        self.clears = 0
        self._start: float | None = None
        self._pts = 0
        self._silence = np.zeros(self.samples, dtype=np.int16)
        self.on_sent: Callable[[], None] | None = None

    @property
    def queued_seconds(self) -> float:
        return len(self.queue) * FRAME_SECONDS

    def push(self, pcm: Pcm) -> None:
        if len(self.queue) >= self.max_frames:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(pcm)

    def clear(self) -> None:
        self.queue.clear()
        self.clears += 1

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._pts += self.samples
            wait = self._start + self._pts / self.rate - now
            if wait > 0:
                await asyncio.sleep(wait)  # real-time pacing of the outbound stream
            elif wait < -0.2:  # fell far behind (suspended loop): restart the clock
                self._start, self._pts = now, 0
        pcm = self.queue.popleft() if self.queue else self._silence
        if pcm is not self._silence:
            self.sent_audio_frames += 1
        self.sent_frames += 1
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        if self.on_sent is not None:
            self.on_sent()
        return frame


async def read_caller(track: MediaStreamTrack, rate: int, deliver: Callable[[Pcm], None]) -> None:
    """Receive the browser's audio until the track ends, as 20 ms frames at `rate`."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    framer = Framer(rate)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        assert isinstance(frame, av.AudioFrame)
        for out in resampler.resample(frame):
            pcm = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            for piece in framer.push(pcm):
                deliver(piece)
