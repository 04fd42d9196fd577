"""Train the barge-in model and export it to ONNX: `python -m models.bargein.train` (in .venv-train).

Architecture (see MODEL_CARD.md): log-mel features of the caller line and of the agent playout (24 bands
each, 10 ms frames) -> per-feature normalisation -> two causal strided 1-D convolutions ("valid", 6 frames
of left context, stride 4 in all: one step per 40 ms) -> GRU -> linear -> sigmoid, one probability per
step. Because every step only sees the past, one pass over a clip yields the model's answer for every
prefix of the overlap: the loss is applied at every step after the caller's onset (training "on prefixes"
for free), and at run time the GRU state is carried from query to query so each 100 ms query costs only
the new steps.

The exported graph takes `x_caller`, `x_agent` [B, 6 + 4k, 24] (6 frames of context before the first new
step, then 4 frames per step) and `h0` [1, B, H], and returns `prob` [B, k] and `h` [1, B, H].
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

from gateway.turns.bargein_features import ENERGY_FLOOR, N_MELS

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
CONTEXT = 6
STRIDE = 4
FRAME_S = 0.01


class BargeInNet(nn.Module):
    def __init__(self, n_mels: int = N_MELS, channels: int = 48, hidden: int = 48) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(2 * n_mels))
        self.register_buffer("std", torch.ones(2 * n_mels))
        self.conv1 = nn.Conv1d(2 * n_mels, channels, kernel_size=4, stride=2)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=4, stride=2)
        self.act = nn.ReLU()
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.hidden = hidden

    def logits(
        self, caller: torch.Tensor, agent: torch.Tensor, h0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([caller, agent], dim=2)
        x = (x - self.mean) / self.std
        x = x.transpose(1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        y, h = self.gru(x.transpose(1, 2), h0)
        return self.head(y).squeeze(-1), h

    def forward(
        self, caller: torch.Tensor, agent: torch.Tensor, h0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z, h = self.logits(caller, agent, h0)
        return torch.sigmoid(z), h


def load(split: str) -> dict[str, np.ndarray]:
    d = np.load(CORPUS / f"{split}.npz")
    return {k: d[k] for k in d.files}


def step_times(n_steps: int) -> np.ndarray:
    """End time (s, clip timeline) of the last frame each step has seen."""
    return (CONTEXT + STRIDE * np.arange(n_steps) + STRIDE) * FRAME_S


def targets(data: dict[str, np.ndarray], n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    t = step_times(n_steps)[None, :]
    onset = data["onset"][:, None]
    end = data["end"][:, None]
    cls = data["cls"][:, None]
    y = np.broadcast_to((cls == 0).astype(np.float32), (len(cls), n_steps)).copy()
    live = (t >= onset + 0.03) & ((t <= end + 0.5) | (cls == 3))
    w = live.astype(np.float32)
    # The first 100 ms of an interruption are often ambiguous (a "yes" before a "but ..."): weigh less.
    early = (cls == 0) & (t < onset + 0.1)
    w[early & live] = 0.3
    return y, w


def decisions(prob: np.ndarray, data: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    """Per-clip verdicts as the engine would make them (queries every 100 ms from the VAD onset)."""
    n_steps = prob.shape[1]
    t = step_times(n_steps)
    res: dict[str, list[float]] = {"lat": [], "int_hit": [], "bc_fp": [], "noise_fp": [], "echo_fp": []}
    for i in range(len(prob)):
        onset, end, cls = float(data["onset"][i]), float(data["end"][i]), int(data["cls"][i])
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
        + max(0.0, m["latency_p95_ms"] - 600) / 2000
    )


def best_threshold(prob: np.ndarray, data: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
    best: tuple[float, float, dict[str, float]] | None = None
    for th in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        m = decisions(prob, data, th)
        if m["latency_median_ms"] != m["latency_median_ms"]:  # nan: nothing detected
            continue
        sc = selection_score(m)
        if best is None or sc < best[0]:
            best = (sc, th, m)
    if best is None:
        return 0.5, decisions(prob, data, 0.5) | {"latency_median_ms": 9e9, "latency_p95_ms": 9e9}
    return best[1], best[2]


def predict(model: BargeInNet, data: dict[str, np.ndarray], n_frames: int, batch: int = 256) -> np.ndarray:
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data["cls"]), batch):
            c = torch.from_numpy(data["caller"][i : i + batch, :n_frames].astype(np.float32))
            a = torch.from_numpy(data["agent"][i : i + batch, :n_frames].astype(np.float32))
            p, _ = model(c, a, torch.zeros(1, len(c), model.hidden))
            out.append(p.numpy())
    return np.concatenate(out)


SILENCE = float(np.log(ENERGY_FLOOR))


def augment_agent(
    a: torch.Tensor,
    data: dict[str, np.ndarray],
    idx: np.ndarray,
    n_frames: int,
    rng: np.random.Generator,
    args: argparse.Namespace,
) -> torch.Tensor:
    """Loosen the caller's verdict from the agent's timing: for clips where the caller makes a sound, shift
    the agent playout in time or replace it (by silence, or by another clip's agent speech). The caller line
    still carries the original echo, so echo-only clips (class 3) keep their true playout: those teach what
    the agent input is for."""
    a = a.clone()
    cls = data["cls"][idx]
    event = np.nonzero(cls != 3)[0]
    max_shift = int(args.agent_shift_s / FRAME_S)
    drop = rng.random(len(event)) < args.agent_drop
    shift = rng.random(len(event)) < args.agent_shift
    for j, d, sh in zip(event, drop, shift, strict=True):
        if d:
            if rng.random() < 0.5:
                a[j] = SILENCE
            else:
                k = int(rng.integers(0, len(data["cls"])))
                a[j] = torch.from_numpy(data["agent"][k, :n_frames].astype(np.float32))
        elif sh:
            s = int(rng.integers(-max_shift, max_shift + 1))
            if s > 0:
                a[j, s:] = a[j, :-s].clone()
                a[j, :s] = SILENCE
            elif s < 0:
                a[j, :s] = a[j, -s:].clone()
                a[j, s:] = SILENCE
    return a


def export(model: BargeInNet, path: Path) -> None:
    model.eval()
    c = torch.zeros(2, CONTEXT + STRIDE * 5, N_MELS)
    h = torch.zeros(1, 2, model.hidden)
    torch.onnx.export(
        model,
        (c, c.clone(), h),
        str(path),
        input_names=["x_caller", "x_agent", "h0"],
        output_names=["prob", "h"],
        dynamic_axes={
            "x_caller": {0: "B", 1: "T"},
            "x_agent": {0: "B", 1: "T"},
            "h0": {1: "B"},
            "prob": {0: "B", 1: "S"},
            "h": {1: "B"},
        },
        opset_version=17,
        dynamo=False,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=25.0, help="stop after this much wall time")
    ap.add_argument("--max-loss", type=float, default=0.5, help="weight of the soft-max loss on negatives")
    ap.add_argument(
        "--vtlp",
        type=float,
        default=0.0,
        help="share of clips with warped caller bands (off in the committed model)",
    )
    ap.add_argument("--freq-mask", type=float, default=0.5, help="share of clips with masked mel bands")
    ap.add_argument(
        "--agent-shift",
        type=float,
        default=0.3,
        help="share of caller-event clips whose agent playout is shifted by up to --agent-shift-s",
    )
    ap.add_argument("--agent-shift-s", type=float, default=0.8, help="largest agent shift, seconds")
    ap.add_argument(
        "--agent-drop",
        type=float,
        default=0.3,
        help="share of caller-event clips whose agent playout is replaced (half silence, half other speech)",
    )
    ap.add_argument("--time-mask", type=float, default=0.0, help="share of clips with 1-2 caller time masks")
    ap.add_argument("--tilt", type=float, default=0.0, help="caller spectral tilt, log units edge to edge")
    ap.add_argument("--echo-weight", type=float, default=1.0, help="loss weight of echo-only clips")
    ap.add_argument("--gain", type=float, default=1.0, help="caller gain jitter, +- log units")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument(
        "--extra", nargs="*", default=[], help="more training splits, e.g. train_piper (make_corpus --splits)"
    )
    ap.add_argument("--out", type=Path, default=HERE / "bargein.onnx")
    ap.add_argument("--metrics", type=Path, default=HERE / "train_metrics.json")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    train, val = load("train"), load("val")
    for name in args.extra:
        more = load(name)
        train = {k: np.concatenate([v, more[k]]) for k, v in train.items()}
    n_frames = CONTEXT + STRIDE * ((train["caller"].shape[1] - CONTEXT) // STRIDE)
    n_steps = (n_frames - CONTEXT) // STRIDE
    y_tr, w_tr = targets(train, n_steps)
    y_va, w_va = targets(val, n_steps)
    w_tr[train["cls"] == 3] *= args.echo_weight

    model = BargeInNet(channels=args.channels, hidden=args.hidden)
    feats = (
        np.concatenate([train["caller"], train["agent"]], axis=2).reshape(-1, 2 * N_MELS).astype(np.float32)
    )
    model.mean.copy_(torch.from_numpy(feats.mean(axis=0)))
    model.std.copy_(torch.from_numpy(feats.std(axis=0) + 1e-3))
    del feats
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * ((len(y_tr) + args.batch - 1) // args.batch)
    )
    bce = nn.BCEWithLogitsLoss(reduction="none")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params}  train {len(y_tr)}  val {len(y_va)}  steps/clip {n_steps}", flush=True)

    best: tuple[float, dict[str, float], dict[str, torch.Tensor]] | None = None
    start = time.time()
    history = []
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(y_tr))
        total = 0.0
        for b in range(0, len(order), args.batch):
            idx = np.sort(order[b : b + args.batch])
            c = torch.from_numpy(train["caller"][idx, :n_frames].astype(np.float32))
            a = torch.from_numpy(train["agent"][idx, :n_frames].astype(np.float32))
            # Gain jitter on the caller line (log-mel: an additive constant), as a level-independence prior.
            c = c + torch.from_numpy(rng.uniform(-args.gain, args.gain, (len(idx), 1, 1)).astype(np.float32))
            # (Like --vtlp, the augmentations below draw nothing when off: the committed recipe's random
            # stream does not depend on them.)
            if args.agent_shift > 0 or args.agent_drop > 0:
                a = augment_agent(a, train, idx, n_frames, rng, args)
            if args.tilt > 0:
                slope = rng.uniform(-args.tilt, args.tilt, (len(idx), 1, 1)).astype(np.float32)
                ramp = (np.arange(N_MELS, dtype=np.float32) / (N_MELS - 1) - 0.5)[None, None, :]
                c = c + torch.from_numpy(slope * ramp)
            if args.time_mask > 0:
                for j in np.nonzero(rng.random(len(idx)) < args.time_mask)[0]:
                    for _ in range(int(rng.integers(1, 3))):
                        w = int(rng.integers(4, 13))
                        lo = int(rng.integers(0, n_frames - w))
                        c[j, lo : lo + w] = model.mean[:N_MELS]
            # Vocal-tract-length perturbation in the mel domain: stretch the caller's bands by 0.88-1.12
            # (voices the corpus does not have), by linear interpolation along the band axis.
            # (Not drawn at all when off, so the committed model's random stream is unchanged.)
            warp = np.nonzero(rng.random(len(idx)) < args.vtlp)[0] if args.vtlp > 0 else np.zeros(0, np.int64)
            if len(warp):
                bands = np.arange(N_MELS, dtype=np.float32)
                for j in warp:
                    src = np.clip(bands / rng.uniform(0.88, 1.12), 0, N_MELS - 1)
                    lo = np.floor(src).astype(np.int64)
                    hi = np.minimum(lo + 1, N_MELS - 1)
                    frac = torch.from_numpy((src - lo).astype(np.float32))
                    c[j] = c[j][:, lo] * (1 - frac) + c[j][:, hi] * frac
            # Frequency masking (a few adjacent mel bands of the caller set to their mean): robustness to
            # voices and channels the corpus does not have.
            for j in np.nonzero(rng.random(len(idx)) < args.freq_mask)[0]:
                lo = int(rng.integers(0, N_MELS - 4))
                w = int(rng.integers(1, 5))
                c[j, :, lo : lo + w] = model.mean[lo : lo + w]
            z, _ = model.logits(c, a, torch.zeros(1, len(idx), model.hidden))
            yt, wt = torch.from_numpy(y_tr[idx]), torch.from_numpy(w_tr[idx])
            loss = (bce(z, yt) * wt).sum() / wt.sum()
            if args.max_loss > 0:
                # The engine interrupts on the first step above threshold: for a non-interruption the
                # loudest step is what counts, so penalise a soft maximum of its logits.
                neg = (yt[:, 0] == 0) & (wt.sum(dim=1) > 0)
                if bool(neg.any()):
                    zl = torch.where(wt[neg] > 0, z[neg], torch.full_like(z[neg], -30.0))
                    zmax = torch.logsumexp(zl * 4.0, dim=1) / 4.0
                    loss = loss + args.max_loss * nn.functional.softplus(zmax).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        p_va = predict(model, val, n_frames)
        z_va = np.log(np.clip(p_va, 1e-6, 1)) * y_va + np.log(np.clip(1 - p_va, 1e-6, 1)) * (1 - y_va)
        val_loss = float(-(z_va * w_va).sum() / w_va.sum())
        m = decisions(p_va, val, 0.5)
        # Selection: errors weighted as the targets weigh them, plus a latency term.
        # Selection: at the best threshold on val (the export moves it to 0.5, see below).
        th, m = best_threshold(p_va, val)
        score = selection_score(m)
        history.append({"epoch": epoch, "train_loss": total / len(y_tr), "val_loss": val_loss, **m})
        print(
            f"epoch {epoch:2d} {time.time() - start:6.0f}s loss {total / len(y_tr):.4f} val {val_loss:.4f} "
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
    # Calibrate: shift the output bias so that the val-selected threshold becomes 0.5, the engine's
    # default `interruption.threshold`.
    th = float(best[1]["threshold"])
    with torch.no_grad():
        model.head.bias -= float(np.log(th / (1 - th)))
    export(model, args.out)
    p_va = predict(model, val, n_frames)
    thresholds = {f"{t:.2f}": decisions(p_va, val, t) for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)}
    args.metrics.write_text(
        json.dumps(
            {
                "params": n_params,
                "args": {
                    k: str(v) if isinstance(v, Path) else v
                    for k, v in vars(args).items()
                    if k != "out" and k != "metrics"
                },
                "selected_epoch_val": best[1],
                "calibrated_threshold_shift": th,
                "val_at_threshold": thresholds,
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
