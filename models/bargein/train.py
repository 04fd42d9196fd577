"""Train the barge-in model and export it to ONNX: `python -m models.bargein.train` (in .venv-train).

Architecture (see MODEL_CARD.md): one vector per 80 ms step — the caller's speech embedding from the
front end learned from real speech (`gateway/turns/speech_embedding.py`, 96 values) and the mean log-mel
energies of the caller line and of the agent playout (24 + 24) -> per-feature normalisation -> linear +
ReLU -> GRU -> linear -> sigmoid, one probability per step. Every step only sees the past, so one pass over
a clip gives the model's answer for every prefix of the overlap: the loss applies at every step after the
caller's onset, and at run time the GRU state is carried from query to query.

A training example starts where the runtime starts reading: `PRE_ONSET_S` before a VAD onset that comes
0.09 s early to 0.36 s late (drawn anew every epoch), and runs `WINDOW_STEPS` steps.

Selection (epoch and threshold) uses the validation split only: held-out voices of the *training* engines
(espeak-ng variants, Pico/Piper/RHVoice voices never trained on) speaking held-out phrases. flite and
festival voices and the held-out real speakers are never read here.

The exported graph takes `x` [B, k, 144] (k new steps) and `h0` [1, B, H] and returns `prob` [B, k] and `h`.
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

from gateway.turns.bargein_features import N_MELS
from gateway.turns.speech_embedding import EMB_DIM, STEP_SECONDS

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
PRE_ONSET_S = 0.24
WINDOW_STEPS = 22
N_IN = EMB_DIM + 2 * N_MELS
VAD_JITTER = (-0.09, 0.36)


class BargeInNet(nn.Module):
    def __init__(self, n_in: int = N_IN, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.drop = nn.Dropout(dropout)
        self.inp = nn.Linear(n_in, hidden)
        self.act = nn.ReLU()
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.hidden = hidden

    def logits(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - self.mean) / self.std
        x = self.act(self.inp(self.drop(x)))
        y, h = self.gru(x, h0)
        return self.head(y).squeeze(-1), h

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, h = self.logits(x, h0)
        return torch.sigmoid(z), h


def load(split: str) -> dict[str, np.ndarray]:
    d = np.load(CORPUS / f"{split}_steps.npz")
    return {k: d[k] for k in d.files}


def step_end(k: np.ndarray) -> np.ndarray:
    """End time (s, clip timeline) of step k."""
    return (k + 1) * STEP_SECONDS


def first_steps(onset: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """The step the runtime would start reading at, for a VAD onset drawn around the true onset."""
    jitter = rng.uniform(*VAD_JITTER, len(onset)) if rng is not None else np.full(len(onset), 0.1)
    return np.floor((onset + jitter - PRE_ONSET_S) / STEP_SECONDS).astype(np.int64)


def window(data: dict[str, np.ndarray], idx: np.ndarray, s0: np.ndarray) -> np.ndarray:
    """[len(idx), WINDOW_STEPS, N_IN] features from step s0 of each clip."""
    steps = s0[:, None] + np.arange(WINDOW_STEPS)[None, :]
    rows = idx[:, None]
    return np.concatenate(
        [data["emb"][rows, steps], data["caller"][rows, steps], data["agent"][rows, steps]], axis=2
    ).astype(np.float32)


def targets(data: dict[str, np.ndarray], idx: np.ndarray, s0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = step_end(s0[:, None] + np.arange(WINDOW_STEPS)[None, :])
    onset = data["onset"][idx][:, None]
    end = data["end"][idx][:, None]
    cls = data["cls"][idx][:, None]
    y = np.broadcast_to((cls == 0).astype(np.float32), t.shape).copy()
    live = (t >= onset + 0.03) & ((t <= end + 0.5) | (cls == 3))
    w = live.astype(np.float32)
    # The first 100 ms of an interruption are often ambiguous (a "yes" before a "but ..."): weigh less.
    w[(cls == 0) & (t < onset + 0.1) & live] = 0.3
    return y, w


def decisions(
    prob: np.ndarray, data: dict[str, np.ndarray], s0: np.ndarray, threshold: float
) -> dict[str, float]:
    """Per-clip verdicts as the engine makes them: the first step at or above threshold after the onset."""
    res: dict[str, list[float]] = {"lat": [], "int_hit": [], "bc_fp": [], "noise_fp": [], "echo_fp": []}
    for i in range(len(prob)):
        onset, end, cls = float(data["onset"][i]), float(data["end"][i]), int(data["cls"][i])
        t = step_end(s0[i] + np.arange(prob.shape[1]))
        live = (t >= onset + 0.05) & ((t <= end + 0.5) if cls != 3 else (t >= 0))
        hit = np.nonzero(live & (prob[i] >= threshold))[0]
        fired = len(hit) > 0
        if cls == 0:
            res["int_hit"].append(float(fired))
            if fired:
                res["lat"].append(t[hit[0]] - onset)
        else:
            res[("bc_fp", "noise_fp", "echo_fp")[cls - 1]].append(float(fired))
    lat = np.array(res["lat"]) if res["lat"] else np.array([np.nan])
    tp = sum(res["int_hit"])
    fp = sum(res["bc_fp"]) + sum(res["noise_fp"]) + sum(res["echo_fp"])
    return {
        "recall": float(np.mean(res["int_hit"])),
        "precision": float(tp / max(tp + fp, 1)),
        "backchannel_fp": float(np.mean(res["bc_fp"])),
        "noise_fp": float(np.mean(res["noise_fp"])),
        "echo_fp": float(np.mean(res["echo_fp"])),
        "latency_median_ms": float(np.median(lat) * 1000),
        "latency_p95_ms": float(np.percentile(lat, 95) * 1000),
    }


def selection_score(m: dict[str, float]) -> float:
    """Lower is better: misses and false interruptions as the targets weigh them, plus latency."""
    return (
        (1 - m["recall"]) * 2
        + m["backchannel_fp"]
        + 2 * m["noise_fp"]
        + 2 * m["echo_fp"]
        + max(0.0, m["latency_median_ms"] - 250) / 1000
        + max(0.0, m["latency_p95_ms"] - 600) / 1000
    )


THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def best_threshold(
    prob: np.ndarray, data: dict[str, np.ndarray], s0: np.ndarray
) -> tuple[float, dict[str, float]]:
    best: tuple[float, float, dict[str, float]] | None = None
    for th in THRESHOLDS:
        m = decisions(prob, data, s0, th)
        if m["latency_median_ms"] != m["latency_median_ms"]:  # nan: nothing detected
            continue
        sc = selection_score(m)
        if best is None or sc < best[0]:
            best = (sc, th, m)
    if best is None:
        return 0.5, decisions(prob, data, s0, 0.5) | {"latency_median_ms": 9e9, "latency_p95_ms": 9e9}
    return best[1], best[2]


def predict(model: BargeInNet, data: dict[str, np.ndarray], s0: np.ndarray, batch: int = 512) -> np.ndarray:
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data["cls"]), batch):
            idx = np.arange(i, min(i + batch, len(data["cls"])))
            x = torch.from_numpy(window(data, idx, s0[idx]))
            p, _ = model(x, torch.zeros(1, len(idx), model.hidden))
            out.append(p.numpy())
    return np.concatenate(out)


def augment(x: np.ndarray, cls: np.ndarray, rng: np.random.Generator, args: argparse.Namespace) -> np.ndarray:
    """Feature-level augmentation (audio-level ones — voices, speed, codec, loss, echo — are in the corpus).

    Caller gain jitter (log-mel: an additive constant); for clips where the caller makes a sound, the agent
    playout shifted in time or replaced (silence, or another clip's agent), so the verdict does not lean on
    the agent's timing; echo-only clips keep their true playout: they teach what the agent input is for.
    """
    e0, c0, a0 = 0, EMB_DIM, EMB_DIM + N_MELS
    x = x.copy()
    x[:, :, c0:a0] += rng.uniform(-args.gain, args.gain, (len(x), 1, 1)).astype(np.float32)
    if args.emb_noise > 0:
        x[:, :, e0:c0] += rng.normal(0, args.emb_noise, x[:, :, e0:c0].shape).astype(np.float32)
    silence = float(np.min(x[:, :, a0:])) if len(x) else 0.0
    for j in np.nonzero(cls != 3)[0]:
        r = rng.random()
        if r < args.agent_drop:
            if rng.random() < 0.5:
                x[j, :, a0:] = silence
            else:
                x[j, :, a0:] = x[int(rng.integers(0, len(x))), :, a0:]
        elif r < args.agent_drop + args.agent_shift:
            s = int(rng.integers(-args.agent_shift_steps, args.agent_shift_steps + 1))
            if s:
                x[j, :, a0:] = np.roll(x[j, :, a0:], s, axis=0)
    return x


def export(model: BargeInNet, path: Path) -> None:
    model.eval()
    x = torch.zeros(2, 3, N_IN)
    h = torch.zeros(1, 2, model.hidden)
    torch.onnx.export(
        model,
        (x, h),
        str(path),
        input_names=["x", "h0"],
        output_names=["prob", "h"],
        dynamic_axes={"x": {0: "B", 1: "T"}, "h0": {1: "B"}, "prob": {0: "B", 1: "T"}, "h": {1: "B"}},
        opset_version=17,
        dynamo=False,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=30.0, help="stop after this much wall time")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.2, help="input dropout")
    ap.add_argument("--max-loss", type=float, default=0.5, help="weight of the soft-max loss on negatives")
    ap.add_argument(
        "--early-loss", type=float, default=0.5, help="weight of 'decide within 0.5 s' on interruptions"
    )
    ap.add_argument("--gain", type=float, default=1.0, help="caller gain jitter, +- log units")
    ap.add_argument("--emb-noise", type=float, default=0.5, help="Gaussian noise on the embedding")
    ap.add_argument("--agent-shift", type=float, default=0.3)
    ap.add_argument("--agent-shift-steps", type=int, default=10)
    ap.add_argument("--agent-drop", type=float, default=0.3)
    ap.add_argument("--no-caller-mels", action="store_true", help="zero the caller's log-mel inputs")
    ap.add_argument("--out", type=Path, default=HERE / "bargein.onnx")
    ap.add_argument("--metrics", type=Path, default=HERE / "train_metrics.json")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    train, val = load("train"), load("val")
    if args.no_caller_mels:
        for d in (train, val):
            d["caller"] = np.zeros_like(d["caller"])
    n_steps = train["emb"].shape[1]
    s0_va = np.clip(first_steps(val["onset"], None), 0, n_steps - WINDOW_STEPS)

    model = BargeInNet(hidden=args.hidden, dropout=args.dropout)
    sample = window(train, np.arange(0, len(train["cls"]), 7), first_steps(train["onset"][::7], None))
    flat = sample.reshape(-1, N_IN)
    model.mean.copy_(torch.from_numpy(flat.mean(axis=0)))
    model.std.copy_(torch.from_numpy(flat.std(axis=0) + 1e-2))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    per_epoch = (len(train["cls"]) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * per_epoch)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params}  train {len(train['cls'])}  val {len(val['cls'])}", flush=True)

    best: tuple[float, dict[str, float], dict[str, torch.Tensor]] | None = None
    start = time.time()
    history = []
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train["cls"]))
        s0_all = np.clip(first_steps(train["onset"], rng), 0, n_steps - WINDOW_STEPS)
        total = 0.0
        for b in range(0, len(order), args.batch):
            idx = np.sort(order[b : b + args.batch])
            s0 = s0_all[idx]
            x = augment(window(train, idx, s0), train["cls"][idx], rng, args)
            y, w = targets(train, idx, s0)
            z, _ = model.logits(torch.from_numpy(x), torch.zeros(1, len(idx), model.hidden))
            yt, wt = torch.from_numpy(y), torch.from_numpy(w)
            loss = (bce(z, yt) * wt).sum() / wt.sum()
            # The engine interrupts on the first step above threshold: for a non-interruption the loudest
            # step is what counts, so penalise a soft maximum of its logits; for an interruption, the
            # best step within 0.5 s of the onset should be confident (decide early).
            neg = (yt[:, 0] == 0) & (wt.sum(dim=1) > 0)
            if args.max_loss > 0 and bool(neg.any()):
                zl = torch.where(wt[neg] > 0, z[neg], torch.full_like(z[neg], -30.0))
                loss = (
                    loss + args.max_loss * nn.functional.softplus(torch.logsumexp(zl * 4.0, 1) / 4.0).mean()
                )
            t = step_end(s0[:, None] + np.arange(WINDOW_STEPS)[None, :])
            early = torch.from_numpy(
                (t >= train["onset"][idx][:, None] + 0.1) & (t <= train["onset"][idx][:, None] + 0.5)
            )
            pos = (yt[:, 0] == 1) & early.any(dim=1)
            if args.early_loss > 0 and bool(pos.any()):
                zl = torch.where(early[pos], z[pos], torch.full_like(z[pos], -30.0))
                loss = (
                    loss
                    + args.early_loss * nn.functional.softplus(-torch.logsumexp(zl * 4.0, 1) / 4.0).mean()
                )
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        p_va = predict(model, val, s0_va)
        th, m = best_threshold(p_va, val, s0_va)
        score = selection_score(m)
        history.append({"epoch": epoch, "train_loss": total / len(train["cls"]), "threshold": th, **m})
        print(
            f"epoch {epoch:2d} {time.time() - start:6.0f}s loss {total / len(train['cls']):.4f} th {th} "
            + " ".join(f"{k} {v:.3f}" for k, v in m.items()),
            flush=True,
        )
        if best is None or score < best[0]:
            best = (score, {**m, "threshold": th}, {k: v.clone() for k, v in model.state_dict().items()})
        if time.time() - start > args.minutes * 60:
            print("time budget reached", flush=True)
            break
    assert best is not None
    model.load_state_dict(best[2])
    # Calibrate: shift the output bias so that the val-selected threshold becomes 0.5, the engine's default.
    th = float(best[1]["threshold"])
    with torch.no_grad():
        model.head.bias -= float(np.log(th / (1 - th)))
    export(model, args.out)
    p_va = predict(model, val, s0_va)
    args.metrics.write_text(
        json.dumps(
            {
                "params": n_params,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "selected_epoch_val": best[1],
                "calibrated_threshold_shift": th,
                "val_at_threshold": {f"{t:.2f}": decisions(p_va, val, s0_va, t) for t in THRESHOLDS},
                "history": history,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"exported {args.out} ({args.out.stat().st_size} bytes); best val {best[1]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
