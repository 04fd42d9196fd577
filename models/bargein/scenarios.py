"""Labelled stereo scenario WAVs for `gateway eval-bargein`: `python -m models.bargein.scenarios OUT_DIR`.

Each file is a call as a contact centre records it: channel 0 the caller line (the caller's sounds, room
and line noise, the echo of the agent, band-limited, μ-law, packet loss), channel 1 the agent playout
(TTS speech with digital silence between utterances). The agent speaks `--turns` utterances; during each
one the caller does one thing: interrupts (mostly after the 1.0 s start cooldown, some inside it),
backchannels, makes a noise, or stays silent (then only echo and noise reach the line).

Caller speech comes from the held-out *test* voices and phrases (espeak-ng, see `phrases.py`), or with
`--store PATH [PATH ...]` from render stores of held-out voices instead: `corpus/voices_test.npz`
(flite/festival, `render_voices.py`), `corpus/real_test.npz` (held-out real speakers, `voices/real.py`);
`--voices PREFIX ...` keeps the store clips whose voice starts with a prefix (`flite:`, `festival:`), and each
speech event draws a voice first, then one of its clips, so every voice is heard about as often. A class the
stores have no clip of (real speakers say few backchannels) is left out of the calls: the other classes share
its probability. Noise events (babble talkers included) stay synthetic.

Every file has a JSON sidecar `NAME.json`: sample rate, duration, channel parameters, `agent_turns`
[{start, end}] and `events` [{class, onset, end, turn, in_start_cooldown, text | noise, voice}], class in
interruption | backchannel | noise | silent (a silent turn's onset/end span the agent turn); `voice` is
`engine:name` of the caller's speech (`espeak-ng:en-us-nyc+m6`, `flite:awb`, `real:codec2-kristoff`), and
`caller_stores` lists the stores the speech came from.

    PYTHONPATH=. .venv/bin/python -m models.bargein.scenarios models/bargein/corpus/scenarios_flite \
        --files 30 --store models/bargein/corpus/voices_test.npz --voices flite:
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from models.bargein import synth
from models.bargein.channel import active_rms, draw_params, simulate
from models.bargein.engines import RenderStore
from models.bargein.phrases import SPLITS, Split

SR = 8000
COOLDOWN = 1.0
CLASS_P = {"interruption": 0.4, "backchannel": 0.3, "noise": 0.2, "silent": 0.1}


def _event(
    rng: np.random.Generator, split: Split, cls: str, store: RenderStore | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Caller sound at a reference speech level of 1.0 (active RMS), and its labels."""
    if cls in ("interruption", "backchannel") and store is not None:
        x, meta = store.draw(rng, 0 if cls == "interruption" else 1, by_voice=True)
        return x / active_rms(x), dict(meta)
    if cls in ("interruption", "backchannel"):
        phrases = split.interruptions if cls == "interruption" else split.backchannels
        text, lang = phrases[int(rng.integers(0, len(phrases)))]
        voice = split.voice(lang, int(rng.integers(0, 100)), int(rng.integers(0, 100)))
        x = synth.random_speech(rng, text, voice)
        return x / active_rms(x), {"text": text, "voice": f"espeak-ng:{voice}"}
    kind = str(rng.choice([*synth.NOISES, "babble"]))
    if kind == "babble":
        talkers = []
        for _ in range(int(rng.integers(1, 4))):
            text, lang = split.interruptions[int(rng.integers(0, len(split.interruptions)))]
            voice = split.voice(lang, int(rng.integers(0, 100)), int(rng.integers(0, 100)))
            talkers.append(synth.random_speech(rng, text, voice))
        x = synth.babble(rng, talkers)
    else:
        x = synth.NOISES[kind](rng)
    level = 10 ** (-rng.uniform(-6, 12) / 20)
    return x / active_rms(x) * level, {"noise": kind}


def make_scenario(
    seed: int, index: int, turns: int, split_name: str = "test", store: RenderStore | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    split = SPLITS[split_name]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99, index]))
    agent_voice = str(rng.choice(split.agent_voices))
    agent_parts: list[tuple[float, np.ndarray]] = []
    caller_parts: list[tuple[float, np.ndarray]] = []
    turns_meta: list[dict[str, float]] = []
    events: list[dict[str, Any]] = []
    t = float(rng.uniform(0.5, 1.5))
    for k in range(turns):
        lines = [str(rng.choice(split.agent_lines)) for _ in range(int(rng.integers(1, 3)))]
        speech = np.concatenate(
            [
                np.concatenate(
                    [synth.random_speech(rng, s, agent_voice), np.zeros(int(0.12 * SR), np.float32)]
                )
                for s in lines
            ]
        )[: -int(0.12 * SR)]
        dur = len(speech) / SR
        agent_parts.append((t, speech * rng.uniform(0.6, 1.0)))
        turns_meta.append({"start": round(t, 3), "end": round(t + dur, 3)})
        class_p = {c: p for c, p in CLASS_P.items() if store is None or store.has(c)}
        total = sum(class_p.values())
        cls = str(rng.choice(list(class_p), p=[p / total for p in class_p.values()]))
        if cls == "silent":
            events.append(
                {
                    "class": cls,
                    "onset": round(t, 3),
                    "end": round(t + dur, 3),
                    "turn": k,
                    "in_start_cooldown": False,
                }
            )
        else:
            x, meta = _event(rng, split, cls, store)
            if cls == "interruption" and rng.random() < 0.15:
                onset = t + rng.uniform(0.2, 0.8)
            else:
                onset = t + rng.uniform(COOLDOWN + 0.3, max(COOLDOWN + 0.4, dur - 0.8))
            caller_parts.append((onset, x))
            events.append(
                {
                    "class": cls,
                    "onset": round(onset, 3),
                    "end": round(onset + len(x) / SR, 3),
                    "turn": k,
                    "in_start_cooldown": bool(onset < t + COOLDOWN),
                    **meta,
                }
            )
        t += dur + float(rng.uniform(1.5, 3.0))
    n = int((t + 1.0) * SR)
    agent = np.zeros(n, dtype=np.float32)
    caller = np.zeros(n, dtype=np.float32)
    for start, x in agent_parts:
        i = int(start * SR)
        agent[i : i + len(x)] += x[: n - i]
    for start, x in caller_parts:
        i = int(start * SR)
        caller[i : i + len(x)] += x[: n - i]
    params = draw_params(rng, echo_prob=0.9)
    line, playout, params = simulate(caller, agent, rng, params=params, speech_level_ref=1.0)
    labels = {
        "sample_rate": SR,
        "duration": round(n / SR, 3),
        "split": split_name,
        "seed": seed,
        "index": index,
        "agent_voice": agent_voice,
        "channel": params.to_dict(),
        "agent_turns": turns_meta,
        "events": events,
    }
    return np.stack([line, playout], axis=1), labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--seed", type=int, default=31337)
    ap.add_argument("--split", default="test", choices=sorted(SPLITS))
    ap.add_argument(
        "--store",
        nargs="+",
        type=Path,
        help="caller speech from these render stores (held-out voices only) instead of espeak-ng",
    )
    ap.add_argument(
        "--voices", nargs="+", help="with --store: keep clips whose voice starts with one of these"
    )
    args = ap.parse_args(argv)
    store = None
    if args.store:
        held_out = "val" if args.split == "val" else "test"
        if any(held_out not in path.stem for path in args.store):
            ap.error(
                "--store takes held-out stores only (voices_test*.npz, real_test.npz; "
                "with --split val the validation store voices_val.npz)"
            )
        store = RenderStore(list(args.store))
        if args.voices:
            store = store.subset(
                np.array([any(str(v).startswith(p) for p in args.voices) for v in store.voice])
            )
        if not len(store):
            ap.error("no clip of the stores matches --voices")
        print(f"{len(store)} clips of {len(set(store.voice))} voices", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(args.files), desc="scenarios"):
        audio, labels = make_scenario(args.seed, i, args.turns, args.split, store)
        if args.store:
            labels["caller_stores"] = [p.name for p in args.store]
            labels["caller_voices"] = args.voices or []
        name = f"scenario_{i:03d}"
        sf.write(args.out / f"{name}.wav", audio, SR, subtype="PCM_16")
        (args.out / f"{name}.json").write_text(json.dumps(labels, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
