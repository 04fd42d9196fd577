"""Double-talk gate: caller audio that the agent's own echo explains is not caller speech.

A phone line returns part of what the gateway plays (hybrid and acoustic echo), typically 20 dB
or more below the original and up to a few hundred ms late. VAD alone hears that echo as the caller
speaking, and in the start boundary of an agent turn (where VAD decides) it would interrupt the
agent with its own voice. This gate is the classic Geigel comparison, per 20 ms frame: while the
agent is audible, caller audio quieter than the loudest agent audio of the last `tail` seconds by
more than `margin_db` is taken as echo. The VAD probability of chunks made only of such frames is
zeroed before segmentation; double talk (the caller at least nearly as loud as the echo source)
passes untouched. Detectors still receive the raw audio.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gateway.turns.detectors import Pcm

FRAME_SECONDS = 0.02
# Below this level (dBFS) the agent is not audible and nothing is gated.
AGENT_AUDIBLE_DB = -55.0


def frame_db(frame: Pcm) -> float:
    x = frame.astype(np.float32) / 32768.0
    return float(10.0 * np.log10(float(np.mean(x * x)) + 1e-10))


class EchoGate:
    def __init__(self, *, margin_db: float = 20.0, tail: float = 0.3, history: float = 1.0) -> None:
        self.margin_db = margin_db
        self._tail_frames = max(1, round(tail / FRAME_SECONDS))
        self._agent_db: deque[float] = deque(maxlen=self._tail_frames)
        # (frame end time, echo-explained) for the last `history` seconds
        self._frames: deque[tuple[float, bool]] = deque(maxlen=max(2, round(history / FRAME_SECONDS)))

    def update(self, t_end: float, caller: Pcm, agent: Pcm) -> bool:
        """Record one frame; returns whether its caller audio is explained by echo."""
        self._agent_db.append(frame_db(agent))
        loudest = max(self._agent_db)
        explained = loudest > AGENT_AUDIBLE_DB and frame_db(caller) < loudest - self.margin_db
        self._frames.append((t_end, explained))
        return explained

    def explains(self, start: float, end: float) -> bool:
        """True when every frame overlapping [start, end) was echo-explained."""
        overlapping = [
            explained
            for frame_end, explained in self._frames
            if frame_end > start + 1e-9 and frame_end - FRAME_SECONDS < end - 1e-9
        ]
        return bool(overlapping) and all(overlapping)
