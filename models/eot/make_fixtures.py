"""Held-out clips for the end-of-turn tests: `python -m models.eot.make_fixtures` (project venv).

The tests run inference only, without flite or festival installed: this writes a few short clips of the
held-out engines (never used for training or selection) to `tests/fixtures/eot/` as 8 kHz 16-bit WAV,
each a lead of 0.4 s, the phrase, and 1.2 s of silence; `index.json` gives each clip's text, voice and
the end of its voice (seconds).
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from models.eot.render import SR
from models.voices import tts

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "eot"
PHRASES = {"complete": "I'd like Tuesday at three.", "fragment": "I'd like to book an appointment for,"}
VOICES = (
    ("flite", "slt"),
    ("flite", "kal16"),
    ("festival", "kal_diphone"),
    ("festival", "cmu_us_slt_arctic_hts"),
)
LEAD, TAIL = 0.4, 1.2


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    index = []
    for engine, name in VOICES:
        voice = next(v for v in tts.VOICES[engine]["test"] if v.name == name)
        for kind, text in PHRASES.items():
            (x,) = tts.render(voice, [(text, {})])
            pcm = np.concatenate([np.zeros(int(LEAD * SR)), x * 0.6, np.zeros(int(TAIL * SR))])
            path = OUT / f"{engine}-{name}-{kind}.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SR)
                w.writeframes((np.clip(pcm, -1, 1) * 32767).astype(np.int16).tobytes())
            index.append(
                {
                    "file": path.name,
                    "engine": engine,
                    "voice": name,
                    "kind": kind,
                    "text": text,
                    "end": LEAD + len(x) / SR,
                }
            )
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"{len(index)} clips in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
