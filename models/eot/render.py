"""Render a caller turn to telephone line audio, with the true timings of every part.

Used by the corpus recipe (`models.eot.make_corpus`) and by the benchmark (`bench/bench_eot.py`), so
the benchmark's held-out calls are made exactly like the training data, from other voices and phrases.

Every part is synthesised on its own by espeak-ng with the turn's voice, speed and pitch (slightly
varied per part). An unfinished part ends with a comma most of the time, which makes espeak-ng use its
continuation intonation (the pitch stays up, as a hesitating speaker's does); otherwise it ends with
nothing, and espeak-ng gives it a final fall (a hesitation that audio alone cannot tell from a finished
sentence: only the words can). The parts are joined by hesitation pauses and the whole call goes through
the barge-in recipe's telephony channel (band limit, gain, noise, μ-law, packet loss), with no echo (the
agent is silent while the caller takes a turn).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from models.bargein.channel import ChannelParams, active_rms, draw_params, simulate
from models.bargein.synth import speech
from models.eot.phrases import Turn

SR = 8000
I16 = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Segment:
    start: float  # seconds in the clip
    end: float
    text: str
    final: bool
    flat: bool  # an unfinished part spoken with a final fall (no continuation intonation)
    pause_after: float  # seconds of silence before the next part (0 after the last)


@dataclass
class Rendered:
    line: I16  # caller line audio, 8 kHz int16
    segments: list[Segment]
    voice: str
    speed: int
    pitch: int
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.line) / SR

    def words_until(self, index: int) -> list[str]:
        """Words spoken up to the end of segment `index` (the transcript an STT would have)."""
        return " ".join(s.text for s in self.segments[: index + 1]).replace(",", " ").split()


def render_turn(
    rng: np.random.Generator,
    turn: Turn,
    voice: str,
    *,
    pause_range: tuple[float, float] = (0.5, 1.8),
    flat_prob: float = 0.1,
    lead: tuple[float, float] = (0.3, 0.8),
    tail: float = 3.0,
) -> Rendered:
    speed = int(rng.integers(130, 211))
    pitch = int(rng.integers(25, 76))
    audio: list[np.ndarray] = [np.zeros(int(SR * rng.uniform(*lead)), dtype=np.float32)]
    t = len(audio[0]) / SR
    segments: list[Segment] = []
    for i, part in enumerate(turn):
        flat = False
        text = part.text
        if not part.final:
            flat = bool(rng.random() < flat_prob)
            text = text if flat else text + ("," if rng.random() < 0.8 else "...")
        s = int(np.clip(speed + rng.integers(-10, 11), 80, 260))
        p = int(np.clip(pitch + rng.integers(-5, 6), 0, 99))
        x = speech(text, voice, speed=s, pitch=p)
        last = i == len(turn) - 1
        t = place_part(rng, audio, segments, t, x, part.text, part.final, flat, last, pause_range)
    line, params = to_line(rng, audio, tail)
    return Rendered(line, segments, voice, speed, pitch, {"channel": params.to_dict()})


def place_part(
    rng: np.random.Generator,
    audio: list[np.ndarray],
    segments: list[Segment],
    t: float,
    x: np.ndarray,
    text: str,
    final: bool,
    flat: bool,
    last: bool,
    pause_range: tuple[float, float],
) -> float:
    """Append one synthesised part (level varied ±3 dB) and, unless it is the last, a hesitation pause;
    returns the time after them."""
    x = np.asarray(x, dtype=np.float32) * np.float32(10 ** (rng.uniform(-3, 3) / 20))
    pause = 0.0 if last else float(rng.uniform(*pause_range))
    segments.append(Segment(t, t + len(x) / SR, text, final, flat, pause))
    audio.append(x.astype(np.float32))
    t += len(x) / SR
    if pause:
        audio.append(np.zeros(int(SR * pause), dtype=np.float32))
        t += int(SR * pause) / SR
    return t


def to_line(rng: np.random.Generator, audio: list[np.ndarray], tail: float) -> tuple[I16, ChannelParams]:
    """The turn's parts, `tail` seconds of silence after them, through the telephony channel (no echo)."""
    audio.append(np.zeros(int(SR * tail), dtype=np.float32))
    clean = np.concatenate(audio).astype(np.float32)
    params = replace(draw_params(rng, echo_prob=0.0), echo=False)
    voiced = np.concatenate([a for a in audio if np.any(a)])
    line, _, params = simulate(clean, np.zeros_like(clean), rng, params, speech_level_ref=active_rms(voiced))
    return line, params
