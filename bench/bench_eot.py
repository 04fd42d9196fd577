"""End-of-turn benchmark: cut-offs in hesitation pauses vs latency after finished turns, per engine.

    python bench/bench_eot.py [--turns 150] [--engines flite festival espeak-ng real] [--seed 7]
        [--corrections 40] [--baseline-rev 3b35c02] [--plot bench/out/eot_curves.png] [--cache]

`real` adds the held-out real-speaker calls of `models.eot.make_real_eot` (groups real-allison and
real-codec2, reported apart from the synthetic "all"); `--corrections N` adds N self-correction calls
per synthetic engine ("could you book me for Monday, no," ... "Tuesday.").

Held-out calls (phrase templates never used in training, `models.eot.phrases` "test" split) spoken by
the held-out engines flite and festival (`models.eot.voices`: never used for training, calibration or
epoch selection) and by espeak-ng's held-out test variants (the first model's benchmark), `--turns`
per engine: turns of one or more parts joined by hesitation pauses of 0.5–1.8 s (fragments, fillers,
phone numbers read in groups, dates), through the telephony channel, followed by silence. The agent
is silent. Each call runs through the live `TurnPipeline` (Silero VAD, TurnEngine, the detector)
under many settings in the same run; the committed model and the baseline model (`--baseline-rev`:
the `models/eot/eot.onnx` of that git revision) are both run:

* ``vad``: fixed silence timers (`min_endpointing_delay` 0.3 … 2.0 s);
* ``model (audio)``: `turn_detection: model` with the ONNX detector and no words (no STT);
* ``model (+words)``: the same, with the true words spoken so far as a stand-in for a partial STT;
* ``≥thr@floor``: the model with the engine's early floor (a probability >= thr waits only `floor`),
  over a few (min, max) pairs, plus validation's choice (`models/eot/floor_selection.json`).

At the end: the fastest median within each cut-off budget (2-20 %) for the model against the VAD
timers, per group (the issue's curve test), and validation's settings on every group.

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
import subprocess
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
from gateway.turns.eot_features import HOP, word_features  # noqa: E402
from gateway.turns.eot_onnx import MODEL_PATH, OnnxEndOfTurnDetector  # noqa: E402
from gateway.turns.events import EndOfTurn  # noqa: E402
from gateway.turns.options import InterruptionOptions, TurnHandlingOptions, VadOptions  # noqa: E402
from gateway.turns.pipeline import TurnPipeline  # noqa: E402
from gateway.turns.silero import SileroModel  # noqa: E402
from gateway.turns.vad import VadChunk, VadStream  # noqa: E402
from models.eot.phrases import TEMPLATES, VOICES, correction_turn, draw_turn  # noqa: E402
from models.eot.render import SR, Rendered, render_turn  # noqa: E402

FRAME = SR // 50
TEST_SPLIT_ID = 2
ENGINES = ("flite", "festival", "espeak-ng")


@dataclass
class Call:
    index: int
    family: str
    engine: str
    rendered: Rendered
    frames: list[np.ndarray]
    chunks: list[list[VadChunk]]


def render_call(engine: str, i: int, seed: int, flat_prob: float) -> tuple[str, Rendered] | None:
    """Call `i` of a held-out engine: espeak-ng as the first benchmark did (its held-out test
    variants), flite and festival through `models.eot.render_tts` (their test voices)."""
    sid = TEST_SPLIT_ID if engine == "espeak-ng" else 10 + ENGINES.index(engine)
    rng = np.random.default_rng(np.random.SeedSequence([seed, sid, i]))
    family, turn = draw_turn(rng, TEMPLATES["test"])
    if engine == "espeak-ng":
        return family, render_turn(rng, turn, VOICES["test"].draw(rng), flat_prob=flat_prob)
    from models.eot.render_tts import render_turn_tts
    from models.eot.voices import draw_voice

    rendered = render_turn_tts(rng, turn, draw_voice(rng, "test", engine), flat_prob=flat_prob)
    return None if rendered is None else (family, rendered)


def render_correction(engine: str, i: int, seed: int) -> tuple[str, Rendered] | None:
    """Self-correction call `i` of a held-out engine ("could you book me for Monday, no," ...
    "Tuesday."): held-out frames, pauses of 0.3-1.0 s (a correction follows quickly)."""
    sid = 30 + ENGINES.index(engine)
    rng = np.random.default_rng(np.random.SeedSequence([seed, sid, i]))
    turn = correction_turn(rng, TEMPLATES["test"])
    if engine == "espeak-ng":
        voice = VOICES["test"].draw(rng)
        return "correction", render_turn(rng, turn, voice, flat_prob=0.0, pause_range=(0.3, 1.0))
    from models.eot.render_tts import render_turn_tts
    from models.eot.voices import draw_voice

    draw = draw_voice(rng, "test", engine)
    rendered = render_turn_tts(rng, turn, draw, flat_prob=0.0, pause_range=(0.3, 1.0))
    return None if rendered is None else ("correction", rendered)


def make_calls(
    n: int, seed: int, flat_prob: float, engines: Sequence[str] = ("espeak-ng",), corrections: bool = False
) -> list[Call]:
    """`n` calls per engine (the phrase families of the test split), or `n` self-corrections."""
    model = SileroModel()
    calls: list[Call] = []
    jobs = [(e, i) for e in engines for i in range(n)]
    for engine, i in tqdm(jobs, desc="render + VAD", file=sys.stderr):
        made = render_correction(engine, i, seed) if corrections else render_call(engine, i, seed, flat_prob)
        if made is None:
            continue
        family, rendered = made
        line = rendered.line
        frames = [line[k : k + FRAME] for k in range(0, len(line) // FRAME * FRAME, FRAME)]
        vad = VadStream(model, SR)
        calls.append(Call(len(calls), family, engine, rendered, frames, [vad.push(f) for f in frames]))
    return calls


REAL_CALLS = ROOT / "models" / "eot" / "corpus" / "real-eot.pkl"


def real_engine(speaker: str) -> str:
    """The benchmark's group of a real speaker: Allison's IVR prompts or the codec2 recordings."""
    return "real-allison" if speaker.startswith("asterisk") else "real-codec2"


def real_calls(path: Path = REAL_CALLS) -> list[Call]:
    """The held-out real-speaker calls of `models.eot.make_real_eot` (VAD run here)."""
    import pickle

    if not path.is_file():
        raise SystemExit(f"{path} missing: run `python -m models.eot.make_real_eot` first")
    with open(path, "rb") as fh:
        made: list[tuple[str, str, Rendered]] = pickle.load(fh)
    model = SileroModel()
    calls: list[Call] = []
    for speaker, family, rendered in tqdm(made, desc="real calls: VAD", file=sys.stderr):
        line = rendered.line
        frames = [line[k : k + FRAME] for k in range(0, len(line) // FRAME * FRAME, FRAME)]
        vad = VadStream(model, SR)
        chunks = [vad.push(f) for f in frames]
        calls.append(Call(0, family, real_engine(speaker), rendered, frames, chunks))
    return calls


def cached_calls(
    n: int, seed: int, flat_prob: float, engines: Sequence[str], cache: bool, corrections: int = 0
) -> list[Call]:
    """`make_calls`, kept in a pickle under bench/out/ when `cache` (the rendering and VAD take minutes).
    The engine "real" adds the held-out real-speaker calls (`real_calls`)."""
    import pickle

    calls: list[Call]
    if "real" in engines or corrections:
        tts = [e for e in engines if e != "real"]
        calls = cached_calls(n, seed, flat_prob, tts, cache) if tts else []
        if corrections and tts:
            path = ROOT / "bench" / "out" / f"eot-corrections-{corrections}-{seed}-{'-'.join(tts)}.pkl"
            if cache and path.exists():
                with open(path, "rb") as fh:
                    calls += pickle.load(fh)
            else:
                more = make_calls(corrections, seed, flat_prob, tts, corrections=True)
                if cache:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "wb") as fh:
                        pickle.dump(more, fh)
                calls += more
        if "real" in engines:
            calls += real_calls()
        for i, call in enumerate(calls):
            call.index = i
        return calls
    path = ROOT / "bench" / "out" / f"eot-calls-{n}-{seed}-{flat_prob}-{'-'.join(engines)}.pkl"
    if cache and path.exists():
        with open(path, "rb") as fh:
            calls = pickle.load(fh)
        return calls
    calls = make_calls(n, seed, flat_prob, engines)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            pickle.dump(calls, fh)
    return calls


@dataclass
class DetectorMode:
    words: bool
    threshold: float | None = None  # None: continuous probability; else binary at this threshold


class _BenchStream:
    """Wraps one call: true words as the partial transcript, the model's inputs cached per speech end."""

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
        p = self.owner.answer(self.call, speech_end, self.samples, spoken)
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
        self._inputs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = {}

    def open_stream(self) -> _BenchStream:
        assert self.call is not None
        return _BenchStream(self, self.call)

    def answer(self, call: Call, speech_end: float, samples: int, words: list[str]) -> float:
        """What the call's real stream answers after `samples` samples (cached)."""
        key = (call.index, round(speech_end, 4), samples, tuple(words))
        p = self.cache.get(key)
        if p is None:
            silence = max(0.0, samples / SR - speech_end)
            feats, emb = self.inputs(call, speech_end, samples)
            p = float(
                self.detector.model.run(
                    feats[None],
                    word_features(words)[None],
                    np.array([silence], dtype=np.float32),
                    None if emb is None else emb[None],
                )[0]
            )
            self.cache[key] = p
        return p

    def inputs(self, call: Call, speech_end: float, samples: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's audio inputs of a speech end, from a real stream of the call that has received
        the audio up to the query (`samples`), computed once per speech end when complete."""
        end_key = (call.index, round(speech_end * SR) // HOP)
        got = self._inputs.get(end_key)
        if got is not None:
            return got
        stream = self.detector.open_stream()
        stream.push(call.rendered.line[:samples])  # one push: the streams are chunking-exact
        feats, emb = stream.inputs(speech_end)
        if stream._cached is not None:
            self._inputs[end_key] = (feats, emb)
        return feats, emb


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
    call: Call,
    options: TurnHandlingOptions,
    detector: BenchDetector | None,
    silero: SileroModel,
    stop_early: bool = True,
) -> list[float]:
    """Times of the `end_of_turn` events of one call under `options`. With `stop_early`, the call stops
    at the first `end_of_turn` after its last part (all that `score_call` reads: the caller says
    nothing more)."""
    if detector is not None:
        detector.call = call
    pipeline = TurnPipeline(options, VadStream(silero, SR), end_of_turn=detector)
    eots: list[float] = []
    zero = np.zeros(FRAME, dtype=np.int16)
    last_end = call.rendered.segments[-1].end - 0.02
    for frame, chunks in zip(call.frames, call.chunks, strict=True):
        eots += [
            ev.t for ev in pipeline.process_frame(frame, zero, vad_chunks=chunks) if isinstance(ev, EndOfTurn)
        ]
        if stop_early and eots and eots[-1] >= last_end:
            return eots
    eots += [ev.t for ev in pipeline.finish() if isinstance(ev, EndOfTurn)]
    return eots


def run_setting(
    calls: list[Call], options: TurnHandlingOptions, detector: BenchDetector | None, silero: SileroModel
) -> dict[str, Outcome]:
    """Outcomes per engine, "all" (the synthetic engines) and "real" (the real speakers) of one setting."""
    out: dict[str, Outcome] = {}
    for call in calls:
        eots = run_call(call, options, detector, silero)
        group = "real" if call.engine.startswith("real") else "all"
        score_call(call, eots, out.setdefault(group, Outcome()))
        score_call(call, eots, out.setdefault(call.engine, Outcome()))
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


VAD_TIMERS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 1.8, 2.0)
MODEL_PAIRS = tuple((lo, hi) for lo in (0.1, 0.2, 0.5) for hi in (1.0, 1.5, 2.0, 3.0))
BASELINE_PAIRS = ((0.1, 2.0), (0.2, 2.0), (0.5, 1.5), (0.5, 3.0))
# The early floor: (threshold, floor delay) x (min, max); the model's curve is the Pareto front over
# these and MODEL_PAIRS (no floor). The setting the agents may ship is validation's
# (`models/eot/floor_selection.json`, `models.eot.select_floor`), added when that file exists.
FLOOR_RULES = ((0.7, 0.2), (0.9, 0.25), (0.98, 0.25))
FLOOR_PAIRS = ((0.5, 1.5), (0.5, 2.0), (1.0, 2.0))
BUDGETS = (0.02, 0.05, 0.10, 0.15, 0.20)
SELECTION = ROOT / "models" / "eot" / "floor_selection.json"

Row = tuple[str, float, dict[str, float], Outcome]


def fmt_row(name: str, setting: str, r: dict[str, float]) -> str:
    return (
        f"| {name:<22} | {setting:<10} | {r['cutoff'] * 100:6.1f} % | {r['turns_cut'] * 100:6.1f} % "
        f"| {r['median_ms']:6.0f} | {r['p95_ms']:6.0f} |"
    )


def best_under(rows: list[Row], budget: float) -> Row | None:
    """The setting with the lowest median latency among those with cut-offs <= budget."""
    ok = [r for r in rows if r[2]["cutoff"] <= budget + 1e-9]
    return min(ok, key=lambda r: (r[2]["median_ms"], r[2]["p95_ms"])) if ok else None


def baseline_model(rev: str) -> Path | None:
    """`models/eot/eot.onnx` as committed at git revision `rev` (None if git cannot give it)."""
    out = ROOT / "bench" / "out" / f"eot-{rev}.onnx"
    if not out.exists():
        try:
            blob = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{rev}:models/eot/eot.onnx"],
                check=True,
                capture_output=True,
            ).stdout
        except (subprocess.CalledProcessError, FileNotFoundError):
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=150, help="calls per engine")
    ap.add_argument(
        "--engines",
        nargs="+",
        default=list(ENGINES),
        choices=[*ENGINES, "real"],
        help="held-out engines; 'real' adds the held-out real speakers (models.eot.make_real_eot)",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--flat", type=float, default=0.0, help="share of hesitations spoken with a final fall")
    ap.add_argument("--model", type=Path, default=MODEL_PATH)
    ap.add_argument(
        "--baseline-rev", default="3b35c02", help="git revision of the baseline model ('' = none)"
    )
    ap.add_argument("--plot", type=Path, default=ROOT / "bench" / "out" / "eot_curves.png")
    ap.add_argument("--crosscheck", type=int, default=8, help="calls also run through Replayer")
    ap.add_argument("--cache", action="store_true", help="keep the rendered calls in bench/out/ for reruns")
    ap.add_argument(
        "--corrections", type=int, default=0, help="self-correction calls per synthetic engine (added)"
    )
    ap.add_argument("--no-floor", action="store_true", help="only the min/max rule (no early floor settings)")
    args = ap.parse_args(argv)

    silero = SileroModel()
    calls = cached_calls(args.turns, args.seed, args.flat, args.engines, args.cache, args.corrections)
    groups = [e for e in args.engines if e != "real"]
    if "real" in args.engines:
        groups += ["real", "real-allison", "real-codec2"]
    models: dict[str, BenchDetector] = {"model": BenchDetector(OnnxEndOfTurnDetector(args.model))}
    base_path = baseline_model(args.baseline_rev) if args.baseline_rev else None
    if base_path is not None:
        models["before"] = BenchDetector(OnnxEndOfTurnDetector(base_path))
    # results[engine][detector] = rows
    results: dict[str, dict[str, list[Row]]] = {}

    settings: list[tuple[str, str, float, TurnHandlingOptions, str | None, DetectorMode | None]] = []
    for d in VAD_TIMERS:
        settings.append(("vad", f"{d:.1f} s", d, base_options(min_endpointing_delay=d), None, None))
    for key in models:
        for words in (False, True):
            name = f"{key} ({'+words' if words else 'audio'})"
            for lo, hi in MODEL_PAIRS if key == "model" else BASELINE_PAIRS:
                opts = base_options(
                    turn_detection="model", min_endpointing_delay=lo, max_endpointing_delay=hi
                )
                settings.append((name, f"{lo:.1f}–{hi:.1f} s", hi, opts, key, DetectorMode(words)))
            if key != "model" or args.no_floor:
                continue
            floors: list[tuple[float, float, float | None, float | None]] = [
                (lo, hi, thr, fl) for thr, fl in FLOOR_RULES for lo, hi in FLOOR_PAIRS
            ]
            chosen = validation_choice("words" if words else "audio")
            # validation's choice (without a floor: only if the min/max pairs lack it)
            if chosen is not None and chosen not in floors and (chosen[2] or chosen[:2] not in MODEL_PAIRS):
                floors.append(chosen)
            for lo, hi, thr, fl in floors:
                opts = base_options(
                    turn_detection="model",
                    min_endpointing_delay=lo,
                    max_endpointing_delay=hi,
                    early_floor_threshold=thr,
                    early_floor_delay=0.25 if fl is None else fl,
                )
                label = floor_label(lo, hi, thr, fl)
                settings.append((name, label, hi, opts, key, DetectorMode(words)))

    for name, setting, x, opts, key, mode in tqdm(settings, desc="settings", file=sys.stderr):
        det = models[key] if key is not None else None
        if det is not None and mode is not None:
            det.mode = mode
        for engine, out in run_setting(calls, opts, det, silero).items():
            results.setdefault(engine, {}).setdefault(name, []).append((setting, x, out.row(), out))

    for engine in ["all", *groups]:
        res = results.get(engine)
        if not res:
            continue
        first = next(iter(res.values()))[0][3]
        print(f"\n## {engine}: {first.turns} held-out calls, {first.pauses} hesitation pauses (0.5–1.8 s)")
        print("pauses per family: " + ", ".join(f"{k} {v[0]}" for k, v in sorted(first.by_family.items())))
        print("\n| detector               | setting    | cut-offs | turns cut | median ms | p95 ms |")
        print("|---|---|---:|---:|---:|---:|")
        for name, rows in res.items():
            for setting, _, r, _ in rows:
                print(fmt_row(name, setting, r))
        print(f"\nBest median under a cut-off budget ({engine}; setting, cut-offs, median / p95 ms):")
        for budget in BUDGETS:
            cells = []
            for name, rows in res.items():
                b = best_under(rows, budget)
                cells.append(
                    f"{name}: "
                    + (
                        "none"
                        if b is None
                        else f"{b[0]} {b[2]['cutoff']:.1%} {b[2]['median_ms']:.0f}/{b[2]['p95_ms']:.0f}"
                    )
                )
            print(f"  ≤{budget:.0%}: " + "; ".join(cells))

    against_vad(results, groups)
    for group in ("all", "real"):
        if group in results:
            print(f"\n### {group}")
            per_family(results[group])
            per_base(results[group])
    main_det = models["model"]
    measure_cost(main_det.detector, calls[0])
    crosscheck(calls[: args.crosscheck], main_det, silero)
    plot(results, groups, args.plot)
    return 0


def floor_label(lo: float, hi: float, thr: float | None, floor: float | None) -> str:
    base = f"{lo:.1f}–{hi:.1f} s"
    return base if thr is None else f"{base} ≥{thr:g}@{floor:g}"


def validation_choice(mode: str) -> tuple[float, float, float | None, float | None] | None:
    """Validation's (min, max, threshold, floor) of a mode, from `models.eot.select_floor` (threshold
    None: validation chose no early floor)."""
    import json

    if not SELECTION.is_file():
        return None
    c = json.loads(SELECTION.read_text())[mode]["chosen"]
    return (c["min"], c["max"], c["threshold"], c["floor"])


def against_vad(results: dict[str, dict[str, list[Row]]], engines: Sequence[str]) -> None:
    """The issue's curve test: at each cut-off budget, the model's fastest setting against the fastest
    VAD timer (median latency; 'none' = no setting within the budget)."""
    print("\nModel vs VAD timers: fastest median within each cut-off budget (ms; win = model lower)")
    print("| engine | detector | " + " | ".join(f"≤{b:.0%}" for b in BUDGETS) + " |")
    print("|---|---|" + "---|" * len(BUDGETS))
    for engine in ["all", *engines]:
        res = results.get(engine, {})
        vad = res.get("vad", [])
        for name in ("model (audio)", "model (+words)"):
            cells = []
            for budget in BUDGETS:
                m, v = best_under(res.get(name, []), budget), best_under(vad, budget)
                mm = "none" if m is None else f"{m[2]['median_ms']:.0f} ({m[0]})"
                vv = "none" if v is None else f"{v[2]['median_ms']:.0f}"
                win = m is not None and (v is None or m[2]["median_ms"] < v[2]["median_ms"])
                cells.append(f"{mm} vs {vv} {'win' if win else 'lose'}")
            print(f"| {engine} | {name} | " + " | ".join(cells) + " |")
    for mode, name in (("audio", "model (audio)"), ("words", "model (+words)")):
        chosen = validation_choice(mode)
        if chosen is None:
            continue
        label = floor_label(*chosen)
        for engine in ["all", *engines]:
            row = next((r for r in results.get(engine, {}).get(name, []) if r[0] == label), None)
            if row is not None:
                r = row[2]
                print(
                    f"validation's choice, {name} {label}, {engine}: cut-offs {r['cutoff']:.1%}, "
                    f"median {r['median_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms"
                )


def per_family(res: dict[str, list[Row]]) -> None:
    picks = [
        ("model (audio)", "0.1–2.0 s"),
        ("model (+words)", "0.1–2.0 s"),
        ("before (audio)", "0.1–2.0 s"),
        ("before (+words)", "0.1–2.0 s"),
        ("vad", "1.5 s"),
    ]
    for mode, name in (("audio", "model (audio)"), ("words", "model (+words)")):
        chosen = validation_choice(mode)
        if chosen is not None:
            picks.append((name, floor_label(*chosen)))
    print("\nCut pauses per family (" + " / ".join(f"{n} {s}" for n, s in picks) + "):")
    outs = [next((o for s, _, _, o in res.get(n, []) if s == st), None) for n, st in picks]
    fams = sorted(next(o for o in outs if o is not None).by_family)
    for fam in fams:
        cells = [
            f"{o.by_family.get(fam, [0, 0])[1]}/{o.by_family.get(fam, [0, 0])[0]}" if o else "-" for o in outs
        ]
        print(f"  {fam:<10} " + "  ".join(cells))


def per_base(res: dict[str, list[Row]]) -> None:
    print("\nPer held-out voice: cut pauses, median/p95 ms")
    picks = [("model (audio)", "0.2–2.0 s"), ("model (+words)", "0.2–2.0 s"), ("vad", "1.5 s")]
    for mode, name in (("audio", "model (audio)"), ("words", "model (+words)")):
        chosen = validation_choice(mode)
        if chosen is not None:
            picks.append((name, floor_label(*chosen)))
    for name, setting in picks:
        o = next((o for s, _, _, o in res.get(name, []) if s == setting), None)
        if o is None:
            continue
        cells = []
        for base, (pc, lat) in sorted(o.by_base.items()):
            ms = np.array(lat) * 1000 if lat else np.array([np.nan])
            cells.append(f"{base} {pc[1]}/{pc[0]} {np.median(ms):.0f}/{np.percentile(ms, 95):.0f}")
        print(f"  {name} {setting}: " + "; ".join(cells))


def measure_cost(detector: OnnxEndOfTurnDetector, call: Call, reps: int = 300) -> None:
    """Time per decision: a new speech end (features + ONNX) and a repeated query (ONNX only)."""
    stream = detector.open_stream()
    line = call.rendered.line
    stream.push(line)
    end = call.rendered.segments[0].end
    first, again = [], []
    for k in range(reps):
        stream._cached = None  # force the features of a new speech end
        if stream._emb_stream is not None:
            stream._emb_stream._mel.clear()  # and its mel chunks
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
        b = [round(t, 3) for t in run_call(call, opts, detector, silero, stop_early=False)]
        same += a == b
    print(f"Replayer cross-check: {same}/{len(calls)} calls with identical end_of_turn times")


def _x_of(key: str, row: Row) -> float:
    return row[2][key]


def plot(results: dict[str, dict[str, list[Row]]], engines: Sequence[str], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = [e for e in ["all", *engines] if e in results]
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 9), squeeze=False)
    styles = {
        "vad": "o-",
        "model (audio)": "s-",
        "model (+words)": "^-",
        "before (audio)": "s:",
        "before (+words)": "^:",
    }
    for col, engine in enumerate(panels):
        for name, rows in results[engine].items():
            for row_i, key in enumerate(("median_ms", "p95_ms")):
                ax = axes[row_i][col]
                # the lower envelope: for each setting, sorted by latency (a curve from left to right)
                ordered = sorted(rows, key=functools.partial(_x_of, key))
                xs = [r[key] for _, _, r, _ in ordered]
                ys = [r["cutoff"] * 100 for _, _, r, _ in ordered]
                if name.startswith(("model", "before")):
                    # many (min, max) pairs: draw the Pareto front, the best cut-off at each latency
                    front_x, front_y, best = [], [], float("inf")
                    for x, y in zip(xs, ys, strict=True):
                        if y < best:
                            best = y
                            front_x.append(x)
                            front_y.append(y)
                    ax.plot(xs, ys, styles.get(name, "."), alpha=0.15, ls="none")
                    ax.plot(front_x, front_y, styles.get(name, ".-"), label=name)
                else:
                    ax.plot(xs, ys, styles.get(name, ".-"), label=name)
                    for (setting, _, _r, _), x, y in zip(ordered, xs, ys, strict=True):
                        ax.annotate(setting, (x, y), fontsize=6, alpha=0.7)
        for row_i, key in enumerate(("median", "p95")):
            ax = axes[row_i][col]
            ax.axhline(5, color="grey", lw=0.8, ls=":")
            ax.axvline(500 if key == "median" else 1200, color="grey", lw=0.8, ls=":")
            ax.set_xlabel(f"{key} end-of-turn latency after the last word (ms)")
            ax.set_ylabel("cut-offs in hesitation pauses (%)")
            ax.set_yscale("symlog", linthresh=1)
            ax.set_ylim(0, 110)
            ax.set_title(engine)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("End of turn on held-out engines: model (Pareto front over min/max) vs VAD silence timers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
