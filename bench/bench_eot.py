"""End-of-turn benchmark: cut-offs in hesitation pauses vs latency after finished turns.

    python bench/bench_eot.py [--turns 300] [--seed 7] [--plot bench/out/eot_curves.png]

Held-out calls (voices and phrase templates never used in training, `models.eot.phrases` "test" split)
are rendered like the training data: turns of one or more parts joined by hesitation pauses of
0.5–1.8 s (fragments, fillers, phone numbers read in groups, dates), through the telephony channel,
followed by silence. The agent is silent. Each call runs through the live `TurnPipeline` (Silero VAD,
TurnEngine, the detector) under many settings in the same run:

* ``vad``: fixed silence timers (`min_endpointing_delay` 0.3 … 2.0 s);
* ``model (audio)``: `turn_detection: model` with the ONNX detector and no words (no STT);
* ``model (+words)``: the same, with the true words spoken so far as a stand-in for a partial STT;
* ``binary @thr``: the model's probability turned into two waits (min if p >= thr, else max), as the
  reference's detector does, to show what the continuous wait buys.

Per setting: **cut-off rate** = share of hesitation pauses with an `end_of_turn` inside them (the
caller went on after it); **turns cut** = share of turns with any premature `end_of_turn`; and the
**latency** after finished turns = first `end_of_turn` after the last part − the end of the last
word (median, p95). The VAD results are computed once per call and shared by all settings
(`TurnPipeline.process_frame(vad_chunks=...)`), and the detector's answers are cached per (call,
speech end, time, words), which changes nothing in the decisions. A few calls are also run through
`gateway.replay.Replayer` end to end as a cross-check of that shortcut.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.replay import Replayer  # noqa: E402
from gateway.turns.eot_onnx import OnnxEndOfTurnDetector, OnnxEndOfTurnStream  # noqa: E402
from gateway.turns.events import EndOfTurn  # noqa: E402
from gateway.turns.options import InterruptionOptions, TurnHandlingOptions, VadOptions  # noqa: E402
from gateway.turns.pipeline import TurnPipeline  # noqa: E402
from gateway.turns.silero import SileroModel  # noqa: E402
from gateway.turns.vad import VadChunk, VadStream  # noqa: E402
from models.eot.phrases import TEMPLATES, VOICES, draw_turn  # noqa: E402
from models.eot.render import SR, Rendered, render_turn  # noqa: E402

FRAME = SR // 50
TEST_SPLIT_ID = 2


@dataclass
class Call:
    index: int
    family: str
    rendered: Rendered
    frames: list[np.ndarray]
    chunks: list[list[VadChunk]]


def make_calls(n: int, seed: int, flat_prob: float) -> list[Call]:
    model = SileroModel()
    calls = []
    for i in tqdm(range(n), desc="render + VAD", file=sys.stderr):
        rng = np.random.default_rng(np.random.SeedSequence([seed, TEST_SPLIT_ID, i]))
        family, turn = draw_turn(rng, TEMPLATES["test"])
        rendered = render_turn(rng, turn, VOICES["test"].draw(rng), flat_prob=flat_prob)
        line = rendered.line
        frames = [line[k : k + FRAME] for k in range(0, len(line) // FRAME * FRAME, FRAME)]
        vad = VadStream(model, SR)
        calls.append(Call(i, family, rendered, frames, [vad.push(f) for f in frames]))
    return calls


@dataclass
class DetectorMode:
    words: bool
    threshold: float | None = None  # None: continuous probability; else binary at this threshold


class _BenchStream:
    """Wraps one call's ONNX stream: true words as the partial transcript, answers cached."""

    def __init__(self, owner: BenchDetector, call: Call) -> None:
        self.owner, self.call = owner, call
        self.samples = 0

    def push(self, caller: np.ndarray) -> None:
        self.samples += len(caller)

    def probability(self, speech_end: float, words: tuple[str, ...]) -> float:
        mode = self.owner.mode
        spoken: list[str] = []
        if mode.words:
            segs = self.call.rendered.segments
            last = max((k for k, s in enumerate(segs) if s.start < speech_end), default=-1)
            spoken = self.call.rendered.words_until(last) if last >= 0 else []
        key = (self.call.index, round(speech_end, 4), self.samples, tuple(spoken))
        p = self.owner.cache.get(key)
        if p is None:
            stream = self.owner.stream_for(self.call, self.samples)
            p = stream.probability(speech_end, spoken)
            self.owner.cache[key] = p
        if mode.threshold is not None:
            return 1.0 if p >= mode.threshold else 0.0
        return p


class BenchDetector:
    name = "bench"
    sample_rate = SR

    def __init__(self, detector: OnnxEndOfTurnDetector) -> None:
        self.detector = detector
        self.mode = DetectorMode(words=False)
        self.call: Call | None = None
        self.cache: dict[tuple[object, ...], float] = {}
        self._streams: dict[int, OnnxEndOfTurnStream] = {}

    def open_stream(self) -> _BenchStream:
        assert self.call is not None
        return _BenchStream(self, self.call)

    def stream_for(self, call: Call, samples: int) -> OnnxEndOfTurnStream:
        """A real stream of this call that has received exactly `samples` samples."""
        stream = self._streams.get(call.index)
        if stream is None or stream.samples > samples:
            stream = self.detector.open_stream()
            self._streams = {call.index: stream}
        line = call.rendered.line
        if stream.samples < samples:
            stream.push(line[stream.samples : samples])
        return stream


@dataclass
class Outcome:
    pauses: int = 0
    cut_pauses: int = 0
    turns: int = 0
    cut_turns: int = 0
    latencies: list[float] = field(default_factory=list)
    by_family: dict[str, list[int]] = field(default_factory=dict)  # family -> [pauses, cut]
    by_base: dict[str, tuple[list[int], list[float]]] = field(
        default_factory=dict
    )  # [pauses, cut], latencies

    def row(self) -> dict[str, float]:
        lat = np.array(self.latencies) * 1000
        return {
            "cutoff": self.cut_pauses / max(1, self.pauses),
            "turns_cut": self.cut_turns / max(1, self.turns),
            "median_ms": float(np.median(lat)) if len(lat) else float("nan"),
            "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        }


def score_call(call: Call, eots: Sequence[float], out: Outcome) -> None:
    segs = call.rendered.segments
    final = segs[-1]
    premature = [t for t in eots if t < final.end - 0.02]
    fam = out.by_family.setdefault(call.family, [0, 0])
    base, base_lat = out.by_base.setdefault(call.rendered.voice.split("+")[0], ([0, 0], []))
    for seg, nxt in itertools.pairwise(segs):
        out.pauses += 1
        fam[0] += 1
        base[0] += 1
        if any(seg.end - 0.02 <= t < nxt.start + 0.05 for t in premature):
            out.cut_pauses += 1
            fam[1] += 1
            base[1] += 1
    out.turns += 1
    out.cut_turns += bool(premature)
    after = [t for t in eots if t >= final.end - 0.02]
    if after:
        out.latencies.append(after[0] - final.end)
        base_lat.append(after[0] - final.end)


def run_call(
    call: Call, options: TurnHandlingOptions, detector: BenchDetector | None, silero: SileroModel
) -> list[float]:
    """Times of the `end_of_turn` events of one call under `options`."""
    if detector is not None:
        detector.call = call
    pipeline = TurnPipeline(options, VadStream(silero, SR), end_of_turn=detector)
    eots: list[float] = []
    zero = np.zeros(FRAME, dtype=np.int16)
    for frame, chunks in zip(call.frames, call.chunks, strict=True):
        eots += [
            ev.t for ev in pipeline.process_frame(frame, zero, vad_chunks=chunks) if isinstance(ev, EndOfTurn)
        ]
    eots += [ev.t for ev in pipeline.finish() if isinstance(ev, EndOfTurn)]
    return eots


def run_setting(
    calls: list[Call], options: TurnHandlingOptions, detector: BenchDetector | None, silero: SileroModel
) -> Outcome:
    out = Outcome()
    for call in calls:
        score_call(call, run_call(call, options, detector, silero), out)
    return out


VAD_SILENCE = 0.2


def base_options(**kw: object) -> TurnHandlingOptions:
    """Defaults, interruptions by VAD (the agent is silent anyway) and VAD's `min_silence_duration`
    at `VAD_SILENCE` for every detector: the engine cannot end a turn before VAD says the caller
    is silent, so this is the floor of every latency below."""
    base = TurnHandlingOptions(
        interruption=InterruptionOptions(mode="vad"),
        vad=VadOptions(min_silence_duration=VAD_SILENCE),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


VAD_TIMERS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 1.8, 2.0)
MODEL_PAIRS = (
    (0.1, 1.5), (0.1, 2.0), (0.1, 2.5), (0.2, 1.5), (0.2, 2.0),
    (0.2, 2.5), (0.2, 3.0), (0.3, 2.0), (0.5, 1.5), (0.5, 2.5),
)  # fmt: skip
BINARY = ((0.2, 2.0, 0.5), (0.2, 2.0, 0.7), (0.2, 2.0, 0.9))


def fmt_row(name: str, setting: str, r: dict[str, float]) -> str:
    return (
        f"| {name:<15} | {setting:<16} | {r['cutoff'] * 100:6.1f} % | {r['turns_cut'] * 100:6.1f} % "
        f"| {r['median_ms']:6.0f} | {r['p95_ms']:6.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--flat", type=float, default=0.0, help="share of hesitations spoken with a final fall")
    ap.add_argument("--plot", type=Path, default=ROOT / "bench" / "out" / "eot_curves.png")
    ap.add_argument("--crosscheck", type=int, default=8, help="calls also run through Replayer")
    args = ap.parse_args(argv)

    silero = SileroModel()
    calls = make_calls(args.turns, args.seed, args.flat)
    detector = BenchDetector(OnnxEndOfTurnDetector())
    results: dict[str, list[tuple[str, float, dict[str, float], Outcome]]] = {}

    settings: list[tuple[str, str, float, TurnHandlingOptions, DetectorMode | None]] = []
    for d in VAD_TIMERS:
        settings.append(("vad", f"{d:.1f} s", d, base_options(min_endpointing_delay=d), None))
    for words in (False, True):
        name = "model (+words)" if words else "model (audio)"
        for lo, hi in MODEL_PAIRS:
            opts = base_options(turn_detection="model", min_endpointing_delay=lo, max_endpointing_delay=hi)
            settings.append((name, f"{lo:.1f}–{hi:.1f} s", hi, opts, DetectorMode(words)))
        for lo, hi, thr in BINARY:
            opts = base_options(turn_detection="model", min_endpointing_delay=lo, max_endpointing_delay=hi)
            label = f"binary{' +w' if words else ''}"
            settings.append((label, f"{lo}/{hi} @{thr}", thr, opts, DetectorMode(words, thr)))

    for name, setting, x, opts, mode in tqdm(settings, desc="settings", file=sys.stderr):
        if mode is not None:
            detector.mode = mode
        out = run_setting(calls, opts, detector if mode is not None else None, silero)
        results.setdefault(name, []).append((setting, x, out.row(), out))

    n_pauses = next(iter(results.values()))[0][3].pauses
    fams = next(iter(results.values()))[0][3].by_family
    print(f"\nEnd-of-turn benchmark: {len(calls)} held-out calls, {n_pauses} hesitation pauses (0.5–1.8 s)")
    print("pauses per family: " + ", ".join(f"{k} {v[0]}" for k, v in sorted(fams.items())))
    print("\n| detector        | setting          | cut-offs | turns cut | median ms | p95 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        for setting, _, r, _ in rows:
            print(fmt_row(name, setting, r))

    # Ratios against VAD in the same run: the VAD timer with the same cut-off rate or better.
    print("\nAgainst the fastest VAD timer that cuts off no more often (same run):")
    vad_rows = results["vad"]
    for name in ("model (audio)", "model (+words)"):
        for setting, _, r, _ in results[name]:
            ok = [v for v in vad_rows if v[2]["cutoff"] <= r["cutoff"]]
            if not ok:
                best = min(v[2]["cutoff"] for v in vad_rows)
                print(f"  {name} {setting}: no VAD timer as safe (best {best:.1%})")
                continue
            v = min(ok, key=lambda v: v[2]["median_ms"])
            m, vm = r["median_ms"], v[2]["median_ms"]
            print(
                f"  {name} {setting}: median {m:.0f} ms vs VAD {v[0]} {vm:.0f} ms (x{m / vm:.2f}), "
                f"p95 {r['p95_ms']:.0f} vs {v[2]['p95_ms']:.0f} ms"
            )

    print("\nCut-offs per family (model audio 0.1–2.0 s / +words 0.1–2.0 s / vad 0.5 s):")
    pick = {
        "model (audio)": "0.1–2.0 s",
        "model (+words)": "0.1–2.0 s",
        "vad": "0.5 s",
    }
    for fam in sorted(fams):
        cells = []
        for name, setting in pick.items():
            o = next(o for s, _, _, o in results[name] if s == setting)
            p, c = o.by_family.get(fam, [0, 0])
            cells.append(f"{c}/{p}")
        print(f"  {fam:<10} " + "  ".join(cells))

    print("\nPer held-out base voice (cut-offs, median / p95 latency ms):")
    for name, setting in pick.items():
        o = next(o for s, _, _, o in results[name] if s == setting)
        cells = []
        for base, (pc, lat) in sorted(o.by_base.items()):
            ms = np.array(lat) * 1000
            cells.append(f"{base} {pc[1]}/{pc[0]} {np.median(ms):.0f}/{np.percentile(ms, 95):.0f}")
        print(f"  {name} {setting}: " + "; ".join(cells))

    measure_cost(detector.detector, calls[0])
    crosscheck(calls[: args.crosscheck], detector, silero)
    plot(results, args.plot)
    return 0


def measure_cost(detector: OnnxEndOfTurnDetector, call: Call, reps: int = 300) -> None:
    """Time per decision: a new speech end (features + ONNX) and a repeated query (ONNX only)."""
    stream = detector.open_stream()
    line = call.rendered.line
    stream.push(line)
    end = call.rendered.segments[0].end
    first, again = [], []
    for k in range(reps):
        stream._cached = None  # force the features of a new speech end
        t0 = time.perf_counter()
        stream.probability(end + 1e-4 * (k % 7), ("I'd", "like"))
        t1 = time.perf_counter()
        stream.probability(end + 1e-4 * (k % 7), ("I'd", "like"))
        t2 = time.perf_counter()
        first.append(t1 - t0)
        again.append(t2 - t1)
    a, b = np.array(first) * 1000, np.array(again) * 1000
    print(
        f"\nCost per decision (1 thread): new speech end (features + ONNX) median {np.median(a):.2f} ms, "
        f"p95 {np.percentile(a, 95):.2f} ms; repeated query (ONNX) median {np.median(b):.2f} ms, "
        f"p95 {np.percentile(b, 95):.2f} ms"
    )


def crosscheck(calls: list[Call], detector: BenchDetector, silero: SileroModel) -> None:
    """The shared-VAD, cached-answer shortcut against `Replayer` end to end (audio-only model)."""
    if not calls:
        return
    opts = base_options(turn_detection="model", min_endpointing_delay=0.2, max_endpointing_delay=2.0)
    replayer = Replayer(opts, model=silero)
    detector.mode = DetectorMode(words=False)
    same = 0
    for call in calls:
        line = call.rendered.line
        res = replayer.replay_pcm(line, np.zeros_like(line), SR, f"call{call.index}")
        a = [round(e.t, 3) for e in res.events if isinstance(e, EndOfTurn)]
        b = [round(t, 3) for t in run_call(call, opts, detector, silero)]
        same += a == b
    print(f"Replayer cross-check: {same}/{len(calls)} calls with identical end_of_turn times")


def _x_of(key: str, row: tuple[str, float, dict[str, float], Outcome]) -> float:
    return row[2][key]


def plot(results: dict[str, list[tuple[str, float, dict[str, float], Outcome]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    styles = {"vad": "o-", "model (audio)": "s-", "model (+words)": "^-", "binary": "x--", "binary +w": "+--"}
    for name, rows in results.items():
        for ax, key in zip(axes, ("median_ms", "p95_ms"), strict=True):
            ordered = sorted(rows, key=functools.partial(_x_of, key))  # a curve from left to right
            xs = [r[key] for _, _, r, _ in ordered]
            ys = [r["cutoff"] * 100 for _, _, r, _ in ordered]
            ax.plot(xs, ys, styles.get(name, ".-"), label=name)
            if name in ("vad", "model (audio)"):
                for (setting, _, _r, _), x, y in zip(ordered, xs, ys, strict=True):
                    ax.annotate(setting, (x, y), fontsize=6, alpha=0.7)
    for ax, key in zip(axes, ("median", "p95"), strict=True):
        ax.axhline(5, color="grey", lw=0.8, ls=":")
        ax.axvline(400 if key == "median" else 900, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"{key} end-of-turn latency after the last word (ms)")
        ax.set_ylabel("cut-offs in hesitation pauses (%)")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(0, 110)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("End of turn on held-out voices: model vs VAD silence timers")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
