"""Render stores: many short clips of speech in one `.npz`, with per-clip labels.

A store holds `audio` (every clip end to end, float32 at 8 kHz), `offsets` (clip k is
`audio[offsets[k]:offsets[k + 1]]`) and one value per clip for each column: `text` and `cls` (0
interruption, 1 backchannel) at least, usually `lang` and `voice` (`engine:name[+variant]`, or
`real:<speaker>` for recorded speech), and whatever else the writer adds (`rate`, `pitch`, `speaker`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from models.bargein.synth import SR


def save_renders(path: Path, audio: list[np.ndarray], **columns: np.ndarray) -> None:
    """A render store (what `RenderStore` reads): the clips end to end, their offsets, one value per
    clip for each column (`text` and `cls` at least)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, col in columns.items():
        assert len(col) == len(audio), f"column {name}: {len(col)} values for {len(audio)} clips"
    offsets = np.cumsum([0] + [len(a) for a in audio])
    np.savez(path, audio=np.concatenate(audio).astype(np.float32), offsets=offsets, **columns)


class RenderStore:
    """Pre-rendered speech of one split, drawn by class with a random speed/pitch factor. Several
    stores can be given: they are drawn from as one."""

    def __init__(self, path: Path | list[Path], default_voice: str = "") -> None:
        paths = path if isinstance(path, list) else [path]
        audio, offsets, cols = [], [np.zeros(1, np.int64)], {}
        base = 0
        for p in paths:
            d = np.load(p)
            n = len(d["cls"])
            audio.append(d["audio"])
            offsets.append(np.asarray(d["offsets"][1:], np.int64) + base)
            base += int(d["offsets"][-1])
            for name, default in (
                ("text", None),
                ("cls", None),
                ("voice", default_voice),
                ("lang", "en"),
                ("speaker", ""),
            ):
                col = d[name] if name in d.files else np.full(n, default)
                cols.setdefault(name, []).append(col)
        self.audio = np.concatenate(audio)
        self.offsets = np.concatenate(offsets)
        self.text = np.concatenate(cols["text"])
        self.cls = np.concatenate(cols["cls"])
        self.voice = np.concatenate(cols["voice"])
        self.lang = np.concatenate(cols["lang"])
        self.speaker = np.concatenate(cols["speaker"])

    def __len__(self) -> int:
        return len(self.cls)

    def has(self, event_class: str) -> bool:
        """Whether a scenario event class can be drawn: speech classes need clips of that class."""
        target = {"interruption": 0, "backchannel": 1}.get(event_class)
        return target is None or bool(np.any(self.cls == target))

    def subset(self, mask: np.ndarray) -> RenderStore:
        """The clips where `mask` is true, as a store of their own (audio copied)."""
        keep = np.nonzero(mask)[0]
        out = object.__new__(RenderStore)
        clips = [self.audio[self.offsets[k] : self.offsets[k + 1]] for k in keep]
        out.audio = np.concatenate(clips) if clips else np.zeros(0, np.float32)
        out.offsets = np.cumsum([0] + [len(c) for c in clips])
        for name in ("text", "cls", "voice", "lang", "speaker"):
            setattr(out, name, getattr(self, name)[keep])
        return out

    def draw(
        self, rng: np.random.Generator, cls: int, by_voice: bool = False
    ) -> tuple[np.ndarray, dict[str, str | float]]:
        """A clip of class `cls` (uniformly; `by_voice`: a voice uniformly, then one of its clips),
        resampled by a random factor 0.9-1.1 (speed and pitch together)."""
        candidates = np.nonzero(self.cls == cls)[0]
        if by_voice:
            names = np.unique(self.voice[candidates])
            name = names[int(rng.integers(0, len(names)))]
            candidates = candidates[self.voice[candidates] == name]
        k = int(rng.choice(candidates))
        x = self.audio[self.offsets[k] : self.offsets[k + 1]]
        factor = float(rng.uniform(0.9, 1.1))
        x = np.asarray(soxr.resample(x, SR * factor, SR), dtype=np.float32)
        return x, {"text": str(self.text[k]), "voice": str(self.voice[k]), "speed": round(factor, 3)}
