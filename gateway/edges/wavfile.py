"""A call whose caller is a WAV file: offline simulation of an agent, and the demo's local caller.

The caller's audio is delivered as 20 ms frames (in real time, or as fast as the session keeps up
with `realtime=False`), followed by `tail` seconds of silence, then the caller hangs up. Everything
the agent sends back is kept frame-aligned with the caller's audio, so `stereo()` is a two-channel
recording (caller, agent) of the same shape `gateway replay` takes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from gateway.audio.frames import Pcm, iter_frames, samples_per_frame
from gateway.calls import CallEnded, CallInfo, InboundFrame, TransportEvent


class WavCallerTransport:
    def __init__(
        self,
        caller: Pcm,
        info: CallInfo,
        *,
        tail: float = 2.0,
        realtime: bool = True,
        speed: float = 1.0,
    ) -> None:
        self.info = info
        self._caller = np.concatenate([caller, np.zeros(int(tail * info.sample_rate), dtype=np.int16)])
        self._realtime = realtime
        self._speed = speed
        self._frame = samples_per_frame(info.sample_rate)
        self._agent: list[Pcm] = []  # one entry per inbound frame (silence where nothing was played)
        self._played_this_frame: Pcm | None = None
        self._hangup = asyncio.Event()
        self.clears = 0

    async def events(self) -> AsyncIterator[TransportEvent]:
        start = time.monotonic()
        period = self._frame / self.info.sample_rate
        for i, frame in enumerate(iter_frames(self._caller, self.info.sample_rate)):
            if self._hangup.is_set():
                yield CallEnded("agent_hangup")
                return
            if self._realtime:
                delay = start + i * period / self._speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing like a real line, not synchronisation
            else:
                await asyncio.sleep(0)  # let replies and transcripts progress between frames
            yield InboundFrame(i * period, frame)
            # the consumer has handled frame i: what it played meanwhile is the agent's frame i
            played, self._played_this_frame = self._played_this_frame, None
            self._agent.append(played if played is not None else np.zeros(self._frame, dtype=np.int16))
        yield CallEnded("caller_hangup")

    def play(self, pcm: Pcm) -> None:
        self._played_this_frame = pcm

    def clear(self) -> None:
        self.clears += 1

    def unheard_seconds(self) -> float:
        return 0.0  # what is played during a frame is recorded with that frame

    async def hangup(self, reason: str = "agent_hangup") -> None:
        self._hangup.set()

    def agent_track(self) -> Pcm:
        """What the agent sent, one frame per caller frame (the frame played during it)."""
        if not self._agent:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._agent)

    def stereo(self) -> Pcm:
        agent = self.agent_track()
        caller = self._caller[: len(agent)]
        return np.stack([caller, agent[: len(caller)]], axis=1)
