"""Train the end-of-turn model and export it to ONNX: `python -m models.eot.train` (in .venv-train).

Architecture (see MODEL_CARD.md): the audio window around the speech end (1.6 s before, 0.2 s after,
10 ms frames of 24 log-mels + energy + relative pitch + voicing; `gateway.turns.eot_features`) ->
per-feature normalisation -> four 1-D convolutions (strides 1, 2, 2, 2) -> flatten -> 64; the word
features (hashed last three words, has-words flag, word and digit counts) -> 32; the silence so far
-> concatenated -> MLP -> sigmoid: P(the turn is finished).

Targets: a decision point at the end of an unfinished part is 0 for every silence shorter than the
pause that follows it (the caller has not gone on yet), the end of the last part is 1 for any silence.
Each epoch draws a silence per point (0.25 s … the pause, or 2.5 s), drops the words of half the
points (so the model works without an STT: has-words flag 0) and the last word of some others (a
partial transcript that lags). Model selection simulates the engine's rule
`fire when silence >= max - p * (max - min)` on the validation split (held-out voices and phrases).

The exported graph takes `audio` [B, N_FRAMES, N_AUDIO], `words` [B, N_WORDS], `silence` [B, 1] and
returns `probability` [B, 1].
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from gateway.turns.eot_features import N_AUDIO, N_FRAMES, N_WORDS, word_features

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
MIN_SILENCE = 0.2
MAX_SILENCE = 2.5
# The engine settings model selection simulates (the benchmark sweeps more).
SEL_MIN, SEL_MAX = 0.2, 2.0


class EotNet(nn.Module):
    def __init__(self, channels: int = 48, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(N_AUDIO))
        self.register_buffer("std", torch.ones(N_AUDIO))
        self.conv = nn.Sequential(
            nn.Conv1d(N_AUDIO, channels, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        steps = (((N_FRAMES + 1) // 2 + 1) // 2 + 1) // 2
        self.audio_fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * steps, hidden), nn.ReLU())
        self.words_fc = nn.Sequential(nn.Linear(N_WORDS, 32), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(hidden + 32 + 2, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def logits(self, audio: torch.Tensor, words: torch.Tensor, silence: torch.Tensor) -> torch.Tensor:
        x = ((audio - self.mean) / self.std).transpose(1, 2)
        a = self.audio_fc(self.conv(x))
        w = self.words_fc(words)
        s = torch.clamp(silence, 0.0, 3.0)
        return self.head(torch.cat([a, w, s, s * s], dim=1))

    def forward(self, audio: torch.Tensor, words: torch.Tensor, silence: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(audio, words, silence))


def load(split: str) -> dict[str, np.ndarray]:
    data = dict(np.load(CORPUS / f"{split}.npz"))
    with open(CORPUS / f"{split}.jsonl") as fh:
        metas = [json.loads(line) for line in fh]
    data["words"] = np.stack([word_features(m["words"]) for m in metas])
    # The same words with the last one missing (a partial transcript one word behind).
    data["words_lag"] = np.stack([word_features(m["words"][:-1]) for m in metas])
    data["turn"] = np.array([m["index"] for m in metas])
    return data


def draw_silence(rng: np.random.Generator, label: np.ndarray, pause: np.ndarray) -> np.ndarray:
    hi = np.where(label == 1, MAX_SILENCE, np.minimum(pause, MAX_SILENCE))
    return rng.uniform(MIN_SILENCE, np.maximum(hi, MIN_SILENCE + 0.01)).astype(np.float32)


def predict(model: EotNet, audio: np.ndarray, words: np.ndarray, silence: np.ndarray) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(audio), 1024):
            out.append(
                model(
                    torch.from_numpy(audio[i : i + 1024].astype(np.float32)),
                    torch.from_numpy(words[i : i + 1024]),
                    torch.from_numpy(silence[i : i + 1024, None]),
                )[:, 0].numpy()
            )
    return np.concatenate(out)


def simulate_rule(
    model: EotNet, data: dict[str, np.ndarray], with_words: bool, lo: float = SEL_MIN, hi: float = SEL_MAX
) -> dict[str, float]:
    """The engine's rule on every decision point, queried every 0.1 s from 0.2 s of silence on."""
    n = len(data["label"])
    words = data["words"] if with_words else np.zeros_like(data["words"])
    fired = np.full(n, np.inf, dtype=np.float32)
    for s in np.arange(0.2, hi + 0.1001, 0.1):
        sil = np.full(n, s, dtype=np.float32)
        p = predict(model, data["audio"], words, sil)
        wait = hi - p * (hi - lo)
        # The wait is checked continuously; the next query may lower it (the rule keeps the last p).
        t_fire = np.maximum(wait, s)
        newly = (t_fire < s + 0.1) & np.isinf(fired)
        fired[newly] = t_fire[newly]
    fired[np.isinf(fired)] = hi
    final = data["label"] == 1
    cut = (~final) & (fired < data["pause"])
    return {
        "cutoff": float(cut.sum() / max(1, (~final).sum())),
        "median_ms": float(np.median(fired[final]) * 1000),
        "p95_ms": float(np.percentile(fired[final], 95) * 1000),
    }


def export(model: EotNet, path: Path) -> None:
    model.eval()
    a = torch.zeros(1, N_FRAMES, N_AUDIO)
    w = torch.zeros(1, N_WORDS)
    s = torch.full((1, 1), 0.5)
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
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=18.0, help="stop after this much training time")
    ap.add_argument("--out", type=Path, default=HERE / "eot.onnx")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    train, val = load("train"), load("val")
    audio = torch.from_numpy(train["audio"].astype(np.float32))
    model = EotNet()
    flat = audio.reshape(-1, N_AUDIO)
    model.mean.copy_(flat.mean(0))
    model.std.copy_(flat.std(0) + 1e-3)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * ((len(audio) + args.batch - 1) // args.batch)
    )
    label = torch.from_numpy(train["label"].astype(np.float32))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"train points {len(audio)}, val points {len(val['label'])}, params {n_params}", file=sys.stderr)
    best: tuple[float, dict[str, object]] | None = None
    started = time.monotonic()
    history = []
    for epoch in range(args.epochs):
        model.train()
        silence = torch.from_numpy(draw_silence(rng, train["label"], train["pause"]))
        use_words = rng.random(len(audio)) < 0.5
        lag = rng.random(len(audio)) < 0.12
        words_np = np.where(lag[:, None], train["words_lag"], train["words"]) * use_words[:, None]
        words = torch.from_numpy(words_np.astype(np.float32))
        order = torch.from_numpy(rng.permutation(len(audio)))
        total = 0.0
        for i in tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch}", leave=False, file=sys.stderr):
            idx = order[i : i + args.batch]
            x = audio[idx] + 0.05 * torch.randn(len(idx), N_FRAMES, N_AUDIO)
            y = label[idx]
            logit = model.logits(x, words[idx], silence[idx, None])[:, 0]
            # A cut-off costs more than a slow answer.
            weight = torch.where(y > 0.5, 1.0, 1.5)
            loss = nn.functional.binary_cross_entropy_with_logits(logit, y, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        model.eval()
        audio_only = simulate_rule(model, val, with_words=False)
        both = simulate_rule(model, val, with_words=True)
        # Lower is better: latency, with a heavy price on cut-offs above 2 %.
        score = (
            audio_only["median_ms"]
            + both["median_ms"]
            + 20000 * max(0.0, audio_only["cutoff"] - 0.02)
            + 20000 * max(0.0, both["cutoff"] - 0.02)
        )
        row = {"epoch": epoch, "loss": total / len(order), "audio": audio_only, "words": both, "score": score}
        history.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if best is None or score < best[0]:
            best = (score, row)
            torch.save(model.state_dict(), HERE / "corpus" / "best.pt")
        if time.monotonic() - started > args.minutes * 60:
            print("time budget reached", file=sys.stderr)
            break
    assert best is not None
    model.load_state_dict(torch.load(HERE / "corpus" / "best.pt"))
    export(model, args.out)
    (HERE / "train_metrics.json").write_text(
        json.dumps({"best": best[1], "params": n_params, "history": history}, indent=1) + "\n"
    )
    print(f"best epoch {best[1]['epoch']}: {json.dumps(best[1])}; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
