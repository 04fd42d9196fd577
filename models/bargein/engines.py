"""Caller speech from other TTS engines than espeak-ng: where the render stores live.

flite and festival are *test* engines only: no model trains on them, and no threshold or epoch is
picked with them (they were training and validation voices here before; that is gone). Their code and
every other engine's is in `models/voices/tts.py`; `models/bargein/render_voices.py` writes the stores:

- `corpus/voices_train.npz`, `corpus/voices_val.npz`: training engines (Pico, Piper; espeak-ng for
  validation), training phrases / held-out phrases;
- `corpus/voices_test.npz`, `corpus/voices_test_trainphrases.npz`: every flite and festival voice,
  held-out phrases / training phrases;
- `corpus/real_train.npz`, `corpus/real_test.npz`: recorded speech (`models/voices/real.py`).

`RenderStore` and `save_renders` (now in `models/voices/store.py`) stay importable from here.
"""

from __future__ import annotations

from pathlib import Path

from models.voices.store import RenderStore, save_renders
from models.voices.tts import TEST_ENGINES, TRAIN_ENGINES

OUT = Path(__file__).parent / "corpus"

__all__ = ["OUT", "TEST_ENGINES", "TRAIN_ENGINES", "RenderStore", "save_renders"]
