"""Render a caller turn with any TTS engine of `models.voices.tts` (the multi-engine recipe).

The same shape as `models.eot.render.render_turn` (which is espeak-ng only): every part is synthesised
on its own with the turn's voice, rate and pitch (slightly varied per part), an unfinished part mostly
ends with "," or "..." (continuation intonation where the engine has one), the parts are joined by
hesitation pauses and the call goes through the barge-in recipe's telephony channel.
"""

from __future__ import annotations

import numpy as np

from models.eot.phrases import Turn
from models.eot.render import SR, Rendered, Segment, place_part, to_line
from models.eot.voices import VoiceDraw
from models.voices import tts


def render_turn_tts(
    rng: np.random.Generator,
    turn: Turn,
    draw: VoiceDraw,
    *,
    pause_range: tuple[float, float] = (0.5, 1.8),
    flat_prob: float = 0.1,
    lead: tuple[float, float] = (0.3, 0.8),
    tail: float = 3.0,
) -> Rendered | None:
    """The turn as line audio with its true part timings; None if the engine failed on a part."""
    texts, flats = [], []
    for part in turn:
        flat = False
        text = part.text
        if not part.final:
            flat = bool(rng.random() < flat_prob)
            text = text if flat else text + ("," if rng.random() < 0.8 else "...")
        texts.append(
            (
                text,
                {"rate": draw.rate * rng.uniform(0.95, 1.05), "pitch": draw.pitch * rng.uniform(0.97, 1.03)},
            )
        )
        flats.append(flat)
    pcms = tts.render(draw.voice, texts)
    if any(len(x) < 400 for x in pcms):
        return None
    audio: list[np.ndarray] = [np.zeros(int(SR * rng.uniform(*lead)), dtype=np.float32)]
    t = len(audio[0]) / SR
    segments: list[Segment] = []
    for i, (part, x) in enumerate(zip(turn, pcms, strict=True)):
        last = i == len(turn) - 1
        t = place_part(rng, audio, segments, t, x, part.text, part.final, flats[i], last, pause_range)
    line, params = to_line(rng, audio, tail)
    return Rendered(
        line,
        segments,
        draw.voice.spec,
        round(draw.rate * 100),
        round(draw.pitch * 100),
        {"channel": params.to_dict(), "engine": draw.voice.engine},
    )
