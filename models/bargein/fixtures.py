"""Held-out clips for the test suite: `python -m models.bargein.fixtures` (after `render_voices` / `real`).

CI runs inference only and has neither flite nor festival, so a few held-out clips are committed as
stereo μ-law WAVs (channel 0 the caller line, channel 1 the agent playout; both are μ-law levels already,
so the files are exact): per test engine (flite, festival) and for the held-out real speakers, interruptions
and backchannels drawn from the *test* stores, over held-out agent sentences, through the telephony channel
(echo on). `labels.json` gives each file's class, onset, end, text and voice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from models.bargein import make_corpus, synth
from models.bargein.channel import ChannelParams, simulate
from models.bargein.phrases import SPLITS
from models.voices.store import RenderStore

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "bargein"
CORPUS = Path(__file__).parent / "corpus"
PER_CLASS = 4
SOURCES = (("flite", "voices_test"), ("festival", "voices_test"), ("real", "real_test"))
CLASSES = {0: "interruption", 1: "backchannel"}


def channel(rng: np.random.Generator) -> ChannelParams:
    return ChannelParams(
        caller_dbfs=float(rng.uniform(-26, -16)),
        snr_db=float(rng.uniform(20, 35)),
        background="pink",
        echo=True,
        echo_delay_s=float(rng.uniform(0.03, 0.12)),
        echo_db=float(rng.uniform(-30, -15)),
        echo_decay_s=0.02,
        band_lo=300.0,
        band_hi=3400.0,
        loss_rate=0.0,
        plc=False,
    )


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    split = SPLITS["test"]
    labels: dict[str, dict[str, object]] = {}
    for engine, store_name in SOURCES:
        store = RenderStore(CORPUS / f"{store_name}.npz")
        store = store.subset(np.char.startswith(store.voice.astype(str), engine + ":"))
        for cls, name in CLASSES.items():
            if not np.any(store.cls == cls):
                continue
            for i in range(PER_CLASS):
                n = int(make_corpus.CLIP_S * make_corpus.SR)
                onset = float(rng.uniform(*make_corpus.ONSET_RANGE))
                agent, agent_voice = make_corpus.agent_track(rng, split, n, onset)
                event, meta = store.draw(rng, cls, by_voice=True)
                caller = np.zeros(n, dtype=np.float32)
                k = int(onset * synth.SR)
                m = min(n - k, len(event))
                caller[k : k + m] = event[:m]
                line, playout, _ = simulate(caller, agent, rng, params=channel(rng))
                file = f"{engine}_{name}_{i}.wav"
                sf.write(OUT / file, np.stack([line, playout], axis=1), synth.SR, subtype="ULAW")
                labels[file] = {
                    "class": name,
                    "onset": round(onset, 3),
                    "end": round(onset + m / synth.SR, 3),
                    "text": meta["text"],
                    "voice": meta["voice"],
                    "agent_voice": agent_voice,
                }
    (OUT / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    print(f"{len(labels)} clips -> {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
