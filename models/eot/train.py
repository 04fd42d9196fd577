"""Train the end-of-turn model and export it to ONNX: `python -m models.eot.train` (in .venv-train).

Architecture (see MODEL_CARD.md): the audio window around the speech end (1.6 s before, 0.2 s after,
10 ms frames of 24 log-mels + energy + relative pitch + voicing; `gateway.turns.eot_features`) ->
per-feature normalisation -> the log-mels squeezed into 6 learned bands -> two 1-D convolutions
(stride 2 in all) -> GRU -> its last state (48); the word features (classes of the last three words,
hashed identities of the last two, has-words flag, word and digit counts) -> 32; the silence so far
-> concatenated -> MLP -> sigmoid: P(the turn is finished). Small on purpose: a bigger network
memorises the training voices and phrase templates and does worse on held-out ones.

Targets: a decision point at the end of an unfinished part is 0 for every silence shorter than the
pause that follows it (the caller has not gone on yet), the end of the last part is 1 for any silence.
Each epoch draws a silence per point (0.2 s … the pause, or 2.5 s), drops the words of half the
points (so the model works without an STT: has-words flag 0), the last word of some others (a
partial transcript that lags) and the hashed identities of half (so the word classes carry the
generalisation); the audio features get random intonation range, channel colouring, noise and
(for a fifth of the points) no spectral detail at all. Training data: the corpus's `train` and
`extra` splits (more short answers, questions and intonation systems).

Model selection and calibration target the benchmark's objective: after every epoch, a calibration
`sigmoid(scale * (logit - shift) + slope * max(0, silence - knee))` per mode (without / with words) is
fitted on the validation split (held-out voices and phrases) by simulating the engine's rule
`fire when silence >= max - p * (max - min)`, minimising `mode_score`: the p95 latency after finished
turns plus half the median, with a heavy price on cut-offs above 4 %; the epoch with the best
calibrated score (both modes) ships, with its calibration.

The exported graph takes `audio` [B, N_FRAMES, N_AUDIO], `words` [B, N_WORDS], `silence` [B, 1] and
returns `probability` [B, 1].
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from gateway.turns.eot_features import (
    EMB_DIM,
    EMB_STEPS,
    HAS_WORDS,
    HASH_BUCKETS,
    HASH_WORDS,
    LAST_WORDS,
    N_AUDIO,
    N_CLASSES,
    N_FRAMES,
    N_MELS,
    N_WORDS,
    word_features,
)

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
MIN_SILENCE = 0.2
MAX_SILENCE = 2.5
# The engine settings model selection simulates (the benchmark sweeps more).
SEL_MIN, SEL_MAX = 0.2, 2.0


class EotNet(nn.Module):
    def __init__(
        self,
        bands: int = 6,
        channels: int = 32,
        hidden: int = 48,
        emb_hidden: int = 0,
        emb_dropout: float = 0.2,
    ) -> None:
        super().__init__()
        # The speech-embedding branch (second model): the front end's 96-d steps -> a small GRU.
        self.emb_hidden = emb_hidden
        if emb_hidden:
            self.register_buffer("emb_mean", torch.zeros(EMB_DIM))
            self.register_buffer("emb_std", torch.ones(EMB_DIM))
            self.emb_in = nn.Sequential(nn.Dropout(emb_dropout), nn.Linear(EMB_DIM, emb_hidden), nn.ReLU())
            self.emb_gru = nn.GRU(emb_hidden, emb_hidden, batch_first=True)
        self.register_buffer("mean", torch.zeros(N_AUDIO))
        self.register_buffer("std", torch.ones(N_AUDIO))
        # The 24 log-mels are squeezed into a few learned bands: enough for spectral tilt, fading
        # voice and the kind of final sound, too little to memorise the training voices and phrases.
        self.bands = nn.Linear(N_MELS, bands)
        self.conv = nn.Sequential(
            nn.Conv1d(bands + N_AUDIO - N_MELS, channels, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.ReLU(),
        )
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.words_fc = nn.Sequential(nn.Linear(N_WORDS, 32), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(hidden + emb_hidden + 32 + 2, 48), nn.ReLU(), nn.Linear(48, 1))
        # Training only (not exported): the class of the last word, guessed from the audio alone, so
        # that the audio branch learns to hear a sentence stop on "for", "the", "and", "um".
        self.aux = nn.Linear(hidden + emb_hidden, N_CLASSES)
        # Calibration to the engine's linear rule (fitted after training, see `calibrate`), one pair
        # without words and one with: P = sigmoid(scale * (logit - shift)).
        self.register_buffer("shift", torch.zeros(2))
        self.register_buffer("scale", torch.ones(2))
        # A silence prior on top: + slope * max(0, silence - knee) on the calibrated logit, so the
        # probability keeps rising once the silence outlasts most hesitation pauses.
        self.register_buffer("slope", torch.zeros(2))
        self.register_buffer("knee", torch.ones(2))

    def audio_embedding(self, audio: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        x = (audio - self.mean) / self.std
        x = torch.cat([self.bands(x[:, :, :N_MELS]), x[:, :, N_MELS:]], dim=2)
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        _, h = self.gru(y)
        if not self.emb_hidden:
            return h[0]
        assert emb is not None
        e = self.emb_in((emb - self.emb_mean) / self.emb_std)
        _, he = self.emb_gru(e)
        return torch.cat([h[0], he[0]], dim=1)

    def logits(
        self, audio: torch.Tensor, words: torch.Tensor, silence: torch.Tensor, emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head_logits(self.audio_embedding(audio, emb), words, silence)

    def head_logits(self, a: torch.Tensor, words: torch.Tensor, silence: torch.Tensor) -> torch.Tensor:
        w = self.words_fc(words)
        s = torch.clamp(silence, 0.0, 3.0)
        return self.head(torch.cat([a, w, s, s * s], dim=1))

    def calibrated(self, logit: torch.Tensor, words: torch.Tensor, silence: torch.Tensor) -> torch.Tensor:
        has = words[:, HAS_WORDS : HAS_WORDS + 1]

        def pick(pair: torch.Tensor) -> torch.Tensor:
            return pair[0] + has * (pair[1] - pair[0])

        prior = pick(self.slope) * torch.relu(silence - pick(self.knee))
        return torch.sigmoid(pick(self.scale) * (logit - pick(self.shift)) + prior)

    def forward(self, audio: torch.Tensor, words: torch.Tensor, silence: torch.Tensor) -> torch.Tensor:
        return self.calibrated(self.logits(audio, words, silence), words, silence)


class EotNetEmb(nn.Module):
    """The export wrapper of a model with the embedding branch: inputs audio, emb, words, silence."""

    def __init__(self, net: EotNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, audio: torch.Tensor, emb: torch.Tensor, words: torch.Tensor, silence: torch.Tensor
    ) -> torch.Tensor:
        return self.net.calibrated(self.net.logits(audio, words, silence, emb), words, silence)


def augment_emb(e: torch.Tensor, gen: torch.Generator, std: torch.Tensor) -> torch.Tensor:
    """Embedding steps [B, T, EMB_DIM]: noise and a random offset per clip (another voice, channel)."""
    b = len(e)
    e = e + 0.15 * std * torch.randn(b, 1, EMB_DIM, generator=gen)
    return e + 0.1 * std * torch.randn(e.shape, generator=gen)


def augment(x: torch.Tensor, gen: torch.Generator, mean: torch.Tensor) -> torch.Tensor:
    """Raw features [B, T, N_AUDIO]: intonation range, level, noise, and mel bands dropped."""
    b = len(x)
    x = x.clone()
    x[:, :, N_MELS + 1] *= 0.6 + 0.8 * torch.rand(b, 1, generator=gen)  # pitch excursions
    x[:, :, :N_MELS] += 0.3 * torch.randn(b, 1, N_MELS, generator=gen)  # channel colouring
    x += 0.05 * torch.randn(x.shape, generator=gen)
    drop = torch.rand(b, 1, 1, generator=gen) < 0.2
    x[:, :, :N_MELS] = torch.where(drop, mean[:N_MELS], x[:, :, :N_MELS])
    return x


def load_splits(splits: list[str]) -> dict[str, np.ndarray]:
    """Several corpus splits as one training set (turn indices made unique)."""
    parts = [load(split) for split in splits]
    offset = 0
    for part in parts:
        part["turn"] = part["turn"] + offset
        offset = int(part["turn"].max()) + 1
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def load(split: str) -> dict[str, np.ndarray]:
    data = dict(np.load(CORPUS / f"{split}.npz"))
    if "emb" in data:
        data["emb"] = data["emb"].astype(np.float32)
    with open(CORPUS / f"{split}.jsonl") as fh:
        metas = [json.loads(line) for line in fh]
    data["words"] = np.stack([word_features(m["words"]) for m in metas])
    # The same words with the last one missing (a partial transcript one word behind).
    data["words_lag"] = np.stack([word_features(m["words"][:-1]) for m in metas])
    data["turn"] = np.array([m["index"] for m in metas])
    return data


def draw_silence(rng: np.random.Generator, label: np.ndarray, pause: np.ndarray) -> np.ndarray:
    """Silences as the engine asks: through the whole pause of an unfinished part, and mostly
    early after a finished one (a good answer ends the wait there)."""
    early = rng.random(len(label)) < 0.6
    hi = np.where(label == 1, np.where(early, 0.9, MAX_SILENCE), np.minimum(pause, MAX_SILENCE))
    return rng.uniform(MIN_SILENCE, np.maximum(hi, MIN_SILENCE + 0.01)).astype(np.float32)


SIM_STEP = 0.1


def sim_silences(hi: float = SEL_MAX) -> np.ndarray:
    """The silences the engine asks at: every 0.1 s from 0.2 s on."""
    return np.arange(0.2, hi + 0.1001, SIM_STEP)


def raw_logits(
    model: EotNet, data: dict[str, np.ndarray], with_words: bool, hi: float = SEL_MAX
) -> np.ndarray:
    """Uncalibrated logits [silences, points]: the audio and word branches once per point, the head
    once per silence of `sim_silences` (the silence only enters the head)."""
    words = data["words"] if with_words else np.zeros_like(data["words"])
    parts_a, parts_w = [], []
    with torch.no_grad():
        for i in range(0, len(words), 1024):
            emb = torch.from_numpy(data["emb"][i : i + 1024]) if model.emb_hidden else None
            parts_a.append(
                model.audio_embedding(torch.from_numpy(data["audio"][i : i + 1024].astype(np.float32)), emb)
            )
            parts_w.append(model.words_fc(torch.from_numpy(words[i : i + 1024])))
        a, w = torch.cat(parts_a), torch.cat(parts_w)
        out = []
        for silence in sim_silences(hi):
            s = torch.full((len(a), 1), min(max(float(silence), 0.0), 3.0))
            out.append(model.head(torch.cat([a, w, s, s * s], dim=1))[:, 0].numpy())
    return np.stack(out)


def calibrate_logits(
    logits: np.ndarray, cal: tuple[float, float, float, float], hi: float = SEL_MAX
) -> np.ndarray:
    """`EotNet.calibrated` in numpy for one mode: (shift, scale, slope, knee)."""
    shift, scale, slope, knee = cal
    prior = slope * np.maximum(0.0, sim_silences(hi) - knee)[:, None]
    z = np.clip(scale * (logits - shift) + prior, -30.0, 30.0)
    return 1.0 / (1.0 + np.exp(-z))


def simulate_probs(
    probs: np.ndarray, data: dict[str, np.ndarray], lo: float = SEL_MIN, hi: float = SEL_MAX
) -> dict[str, float]:
    """The engine's rule on every decision point, queried every 0.1 s from 0.2 s of silence on;
    `probs` [silences, points] are the answers at `sim_silences(hi)`."""
    fired = np.full(probs.shape[1], np.inf, dtype=np.float32)
    for k, s in enumerate(sim_silences(hi)):
        wait = hi - probs[k] * (hi - lo)
        # The wait is checked continuously; the next query may lower it (the rule keeps the last p).
        t_fire = np.maximum(wait, s)
        newly = (t_fire < s + SIM_STEP) & np.isinf(fired)
        fired[newly] = t_fire[newly]
    fired[np.isinf(fired)] = hi
    final = data["label"] == 1
    cut = (~final) & (fired < data["pause"])
    return {
        "cutoff": float(cut.sum() / max(1, (~final).sum())),
        "median_ms": float(np.median(fired[final]) * 1000),
        "p95_ms": float(np.percentile(fired[final], 95) * 1000),
    }


def simulate_rule(
    model: EotNet, data: dict[str, np.ndarray], with_words: bool, lo: float = SEL_MIN, hi: float = SEL_MAX
) -> dict[str, float]:
    """The engine's rule with the model as it is (its calibration included)."""
    mode = int(with_words)
    cal = (
        float(model.shift[mode]),
        float(model.scale[mode]),
        float(model.slope[mode]),
        float(model.knee[mode]),
    )
    return simulate_probs(calibrate_logits(raw_logits(model, data, with_words, hi), cal, hi), data, lo, hi)


# Cut-offs allowed on validation before the score pays for them (the target is 5 % on the benchmark).
CUTOFF_CAP = 0.04


def mode_score(r: dict[str, float]) -> float:
    """Lower is better: the p95 latency after finished turns first (the target the first model
    missed most), then half the median, with a heavy price on cut-offs above `CUTOFF_CAP` (1 % more
    costs 500 ms): the benchmark's objective, "minimise p95 subject to cut-offs <= 4 %", made smooth."""
    return r["p95_ms"] + 0.5 * r["median_ms"] + 50000 * max(0.0, r["cutoff"] - CUTOFF_CAP)


SHIFTS = tuple(np.arange(-1.5, 3.01, 0.25).round(2))
SCALES = (0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
SLOPES = (0.0, 1.0, 2.0, 4.0, 8.0)
KNEES = (0.5, 0.7, 0.9, 1.2)


def fit_calibration(
    logits: np.ndarray, data: dict[str, np.ndarray]
) -> tuple[float, tuple[float, float, float, float], dict[str, float]]:
    """The (shift, scale, slope, knee) of one mode that minimise `mode_score` for the engine's rule.

    The engine maps p linearly to a wait; a model that is right but not sure (p = 0.8 after a
    finished sentence) waits 0.56 s of 0.2–2.0 s. A monotone recalibration keeps the ranking at each
    silence and moves answers towards the ends of the range where that pays; the silence prior lets a
    long silence end a turn the model was unsure about.
    """
    best: tuple[float, tuple[float, float, float, float], dict[str, float]] | None = None
    for shift in SHIFTS:
        for scale in SCALES:
            for slope in SLOPES:
                for knee in KNEES if slope else KNEES[:1]:
                    cal = (float(shift), float(scale), float(slope), float(knee))
                    r = simulate_probs(calibrate_logits(logits, cal), data)
                    score = mode_score(r)
                    if best is None or score < best[0]:
                        best = (score, cal, r)
    assert best is not None
    return best


def calibrate(model: EotNet, val: dict[str, np.ndarray]) -> dict[str, object]:
    """Fit the calibration of both modes (without and with words) on the validation split."""
    found: dict[str, object] = {}
    for mode, with_words in ((0, False), (1, True)):
        score, cal, r = fit_calibration(raw_logits(model, val, with_words), val)
        model.shift[mode], model.scale[mode], model.slope[mode], model.knee[mode] = cal
        name = "words" if with_words else "audio"
        found[name] = {"shift": cal[0], "scale": cal[1], "slope": cal[2], "knee": cal[3], "score": score, **r}
    return found


SWEEP_MINS = (0.1, 0.2, 0.3, 0.5)
SWEEP_MAXES = (1.0, 1.5, 2.0, 2.5, 3.0)


def subset(data: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in data.items()}


def settings_sweep(model: EotNet, val: dict[str, np.ndarray]) -> dict[str, object]:
    """The engine's rule over (min, max) pairs on validation (training engines' held-out voices only),
    per mode and per engine; `recommended`: per mode, the pair with the lowest median among those with
    cut-offs <= CUTOFF_CAP (the settings the agents may ship; never chosen on the test engines)."""
    rows: dict[str, list[dict[str, object]]] = {"audio": [], "words": []}
    engines = np.unique(val["engine"]) if "engine" in val else np.array([])
    for lo in SWEEP_MINS:
        for hi in SWEEP_MAXES:
            for name, with_words in (("audio", False), ("words", True)):
                r: dict[str, object] = {"min": lo, "max": hi, **simulate_rule(model, val, with_words, lo, hi)}
                for e in engines:
                    r[f"engine{int(e)}"] = simulate_rule(
                        model, subset(val, val["engine"] == e), with_words, lo, hi
                    )
                rows[name].append(r)
    recommended = {}
    for name, rs in rows.items():
        ok = [r for r in rs if float(r["cutoff"]) <= CUTOFF_CAP]  # type: ignore[arg-type]
        pick = min(ok or rs, key=lambda r: (float(r["median_ms"]), float(r["p95_ms"])))  # type: ignore[arg-type]
        recommended[name] = {k: pick[k] for k in ("min", "max", "cutoff", "median_ms", "p95_ms")}
    return {"rows": rows, "recommended": recommended}


def export(model: EotNet, path: Path) -> None:
    model.eval()
    a = torch.zeros(1, N_FRAMES, N_AUDIO)
    w = torch.zeros(1, N_WORDS)
    s = torch.full((1, 1), 0.5)
    if model.emb_hidden:
        e = torch.zeros(1, EMB_STEPS, EMB_DIM)
        torch.onnx.export(
            EotNetEmb(model),
            (a, e, w, s),
            str(path),
            input_names=["audio", "emb", "words", "silence"],
            output_names=["probability"],
            dynamic_axes={
                "audio": {0: "B"},
                "emb": {0: "B"},
                "words": {0: "B"},
                "silence": {0: "B"},
                "probability": {0: "B"},
            },
            opset_version=17,
            dynamo=False,
        )
        return
    torch.onnx.export(
        model,
        (a, w, s),
        str(path),
        input_names=["audio", "words", "silence"],
        output_names=["probability"],
        dynamic_axes={"audio": {0: "B"}, "words": {0: "B"}, "silence": {0: "B"}, "probability": {0: "B"}},
        opset_version=17,
        dynamo=False,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The committed model: the defaults (--splits train extra, 1 thread).
    ap.add_argument("--epochs", type=int, default=28, help="length of the one-cycle schedule")
    ap.add_argument("--stop-after", type=int, default=16, help="stop after this many epochs")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--splits", nargs="+", default=["tts-train", "tts-train-4000"], help="corpus splits to train on"
    )
    ap.add_argument("--val", default="tts-val", help="validation split (training engines' held-out voices)")
    ap.add_argument("--emb-hidden", type=int, default=32, help="speech-embedding branch size (0: none)")
    ap.add_argument("--emb-dropout", type=float, default=0.2)
    ap.add_argument("--aux", type=float, default=0.5, help="weight of the last-word-class-from-audio loss")
    ap.add_argument("--hash-noise", type=float, default=0.0, help="share of last-word identities moved")
    ap.add_argument("--ema", type=float, default=0.0, help="evaluate an EMA of the weights (decay per step)")
    ap.add_argument("--neg-weight", type=float, default=1.5, help="loss weight of 'not finished' points")
    ap.add_argument("--minutes", type=float, default=60.0, help="stop after this much training time")
    ap.add_argument("--out", type=Path, default=HERE / "eot.onnx")
    ap.add_argument("--metrics", type=Path, default=HERE / "train_metrics.json")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    train, val = load_splits(args.splits), load(args.val)
    best_path = CORPUS / f"best-{args.out.stem}.pt"
    audio = torch.from_numpy(train["audio"].astype(np.float32))
    model = EotNet(emb_hidden=args.emb_hidden, emb_dropout=args.emb_dropout)
    emb_all = torch.from_numpy(train["emb"]) if args.emb_hidden else None
    if emb_all is not None:
        flat_e = emb_all.reshape(-1, emb_all.shape[-1])
        model.emb_mean.copy_(flat_e.mean(0))
        model.emb_std.copy_(flat_e.std(0) + 1e-3)
    flat = audio.reshape(-1, N_AUDIO)
    model.mean.copy_(flat.mean(0))
    model.std.copy_(flat.std(0) + 1e-3)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * ((len(audio) + args.batch - 1) // args.batch)
    )
    label = torch.from_numpy(train["label"].astype(np.float32))
    last_class = torch.from_numpy(train["words"][:, :N_CLASSES].argmax(1))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"train points {len(audio)}, val points {len(val['label'])}, params {n_params}", file=sys.stderr)
    # An exponential moving average of the weights (when --ema): smoother than the last step's.
    ema = copy.deepcopy(model) if args.ema else None
    best: tuple[float, dict[str, object]] | None = None
    started = time.monotonic()
    history = []
    for epoch in range(args.epochs):
        model.train()
        silence = torch.from_numpy(draw_silence(rng, train["label"], train["pause"]))
        use_words = rng.random(len(audio)) < 0.5
        lag = rng.random(len(audio)) < 0.12
        words_np = np.where(lag[:, None], train["words_lag"], train["words"]) * use_words[:, None]
        # Hide the hashed identities of half the points: the classes must carry the generalisation.
        hide = rng.random(len(audio)) < 0.5
        lo = LAST_WORDS * N_CLASSES
        words_np[hide, lo : lo + HASH_WORDS * HASH_BUCKETS] = 0.0
        # A word never seen in training lands in the bucket of some training word: move the last
        # word's identity to a random bucket for some points, so that no bucket is trusted blindly.
        if args.hash_noise > 0:
            noisy = (~hide) & use_words & (rng.random(len(audio)) < args.hash_noise)
            words_np[noisy, lo : lo + HASH_BUCKETS] = 0.0
            words_np[np.flatnonzero(noisy), lo + rng.integers(0, HASH_BUCKETS, int(noisy.sum()))] = 1.0
        words = torch.from_numpy(words_np.astype(np.float32))
        order = torch.from_numpy(rng.permutation(len(audio)))
        total = 0.0
        for i in tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch}", leave=False, file=sys.stderr):
            idx = order[i : i + args.batch]
            x = augment(audio[idx], gen, model.mean)
            y = label[idx]
            e = augment_emb(emb_all[idx], gen, model.emb_std) if emb_all is not None else None
            a = model.audio_embedding(x, e)
            logit = model.head_logits(a, words[idx], silence[idx, None])[:, 0]
            # A cut-off costs more than a slow answer.
            weight = torch.where(y > 0.5, 1.0, args.neg_weight)
            loss = nn.functional.binary_cross_entropy_with_logits(logit, y, weight=weight)
            if args.aux > 0:
                loss = loss + args.aux * nn.functional.cross_entropy(model.aux(a), last_class[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                with torch.no_grad():
                    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                        p_ema.lerp_(p, 1.0 - args.ema)
            total += float(loss.detach()) * len(idx)
        evaluated = ema if ema is not None else model
        evaluated.eval()
        # Model selection: each epoch calibrated for the engine's rule, then scored as it would ship.
        calibration = calibrate(evaluated, val)
        score = sum(float(c["score"]) for c in calibration.values())  # type: ignore[index]
        row = {"epoch": epoch, "loss": total / len(order), **calibration, "score": score}
        history.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if best is None or score < best[0]:
            best = (score, row)
            torch.save(evaluated.state_dict(), best_path)
        if epoch + 1 >= args.stop_after:
            break
        if time.monotonic() - started > args.minutes * 60:
            print("time budget reached", file=sys.stderr)
            break
    assert best is not None
    model.load_state_dict(torch.load(best_path))  # calibration included
    model.eval()
    calibrated = {"audio": simulate_rule(model, val, False), "words": simulate_rule(model, val, True)}
    print(f"calibrated: {json.dumps(calibrated)}", file=sys.stderr)
    sweep = settings_sweep(model, val)
    print(f"settings on validation: {json.dumps(sweep['recommended'])}", file=sys.stderr)
    export(model, args.out)
    metrics = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "best": best[1],
        "calibrated": calibrated,
        "settings": sweep,
        "params": n_params,
        "history": history,
    }
    args.metrics.write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"best epoch {best[1]['epoch']}: {json.dumps(best[1])}; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
