"""Small built-in detectors that need no trained model.

They implement the detector protocols of `gateway.turns.detectors` so that adaptive mode and
`turn_detection: model` work out of the box; the trained ONNX models replace them when present.
"""

from __future__ import annotations

import numpy as np

from gateway.audio.frames import FRAME_SECONDS, Pcm
from gateway.audio.ringbuffer import RingBuffer

# Words after which a sentence is very likely unfinished ("my number is ...", "for ...", "um").
_UNFINISHED = """
a an the and or but so because for to of at on in with from my your our is are was were
um uh er erm like about maybe if that which who when then
"""
UNFINISHED_ENDINGS: frozenset[str] = frozenset(_UNFINISHED.split())


def _rms_db(frame: Pcm) -> float:
    x = frame.astype(np.float32)
    return float(10.0 * np.log10(np.mean(x * x) + 1.0))


class _FrameEnergies:
    """Per-frame energy (dB) of the last few seconds, addressed by stream time."""

    def __init__(self, sample_rate: int, seconds: float = 4.0) -> None:
        self.frame_seconds = FRAME_SECONDS
        self.caller = RingBuffer(int(seconds / self.frame_seconds), dtype=np.float32)
        self.agent = RingBuffer(int(seconds / self.frame_seconds), dtype=np.float32)
        self.samples = 0
        self.sample_rate = sample_rate

    def push(self, caller: Pcm, agent: Pcm | None) -> None:
        self.caller.write(np.array([_rms_db(caller)], dtype=np.float32))
        self.agent.write(np.array([_rms_db(agent) if agent is not None else 0.0], dtype=np.float32))
        self.samples += len(caller)

    def since(self, onset: float) -> tuple[np.ndarray, np.ndarray]:
        first = max(int(onset / self.frame_seconds), self.caller.available_from)
        stop = self.caller.total_written
        if first >= stop:
            empty = np.zeros(0, dtype=np.float32)
            return empty, empty
        return self.caller.read(first, stop), self.agent.read(first, stop)


class HeuristicBargeInStream:
    def __init__(self, sample_rate: int) -> None:
        self._energies = _FrameEnergies(sample_rate)

    def push(self, caller: Pcm, agent: Pcm) -> None:
        self._energies.push(caller, agent)

    def probability(self, onset: float) -> float:
        caller, agent = self._energies.since(onset)
        if len(caller) == 0:
            return 0.0
        # Frames where the caller is clearly louder than what echo of the agent would explain.
        own_voice = (caller > 45.0) & (caller > agent - 12.0)
        sustained = float(np.sum(own_voice)) * FRAME_SECONDS
        # Sustained speech of the caller's own makes a real attempt to take the floor likely;
        # 0.6 s of it crosses 0.5.
        return float(1.0 / (1.0 + np.exp(-(sustained - 0.6) / 0.1)))


class HeuristicBargeInDetector:
    """Sustained caller speech, discounted where the agent's echo could explain it."""

    name = "heuristic"

    def __init__(self, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate

    def open_stream(self) -> HeuristicBargeInStream:
        return HeuristicBargeInStream(self.sample_rate)


class HeuristicEndOfTurnStream:
    def __init__(self, sample_rate: int) -> None:
        self._energies = _FrameEnergies(sample_rate)

    def push(self, caller: Pcm) -> None:
        self._energies.push(caller, None)

    def probability(self, speech_end: float, words: tuple[str, ...]) -> float:
        if words:
            last = words[-1].lower().strip(" .,!?;:")
            return 0.1 if last in UNFINISHED_ENDINGS else 0.85
        caller, _ = self._energies.since(max(0.0, speech_end - 1.0))
        voiced = caller[caller > 45.0]
        if len(voiced) < 10:
            return 0.5
        # Falling energy over the last words (a finished statement) vs. level (held breath).
        tail, body = float(np.mean(voiced[-5:])), float(np.median(voiced))
        return 0.7 if tail < body - 3.0 else 0.4


class HeuristicEndOfTurnDetector:
    """Unfinished-phrase words when an STT gives them, else the energy contour of the last second."""

    name = "heuristic"

    def __init__(self, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate

    def open_stream(self) -> HeuristicEndOfTurnStream:
        return HeuristicEndOfTurnStream(self.sample_rate)
