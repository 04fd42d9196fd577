"""`gateway eval-bargein DIR`: score adaptive against VAD interruption mode on labelled scenario WAVs.

Each `NAME.wav` in DIR (stereo: caller, agent) has a sidecar `NAME.json` as written by
`python -m models.bargein.scenarios`: `agent_turns` [{start, end}] and `events` [{class, onset, end,
turn, in_start_cooldown}] with class interruption | backchannel | noise | silent. The files go through
`gateway replay`'s Replayer three times (`--set interruption.mode=adaptive` with
`interruption.lexical_check.enabled=false` ("adaptive": the acoustic model alone) and `=true`
("adaptive_lexical": with the lexical check), and `interruption.mode=vad`, plus any `--config` / `--set`
given here), and the emitted `interruption` events are matched to the labels:

* an interruption *matches* a labelled caller event when its onset lies in
  [event onset - ONSET_SLACK, event end + END_SLACK]; the first match counts, later ones are duplicates;
* an interruption matching no caller event is *line-triggered*: at its onset the caller channel carries
  only the agent's echo and background noise. Those inside the start cooldown (the first
  `--cooldown` seconds of an agent turn, where the engine lets VAD decide in both modes) are counted
  apart from those after it, where adaptive mode's model decides;
* precision = matched interruptions of class interruption / all interruptions with an onset after the
  start cooldown, recall = labelled interruptions after the cooldown that were interrupted, latency =
  interruption decision time - true onset (the label's onset).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.cli_args import add_set_option

ONSET_SLACK = 0.25
END_SLACK = 0.6
MODES = ("adaptive", "adaptive_lexical", "vad")
# replay settings per mode (before the caller's --set overrides)
MODE_SETS: dict[str, tuple[str, ...]] = {
    "adaptive": ("interruption.mode=adaptive", "interruption.lexical_check.enabled=false"),
    "adaptive_lexical": ("interruption.mode=adaptive", "interruption.lexical_check.enabled=true"),
    "vad": ("interruption.mode=vad",),
}


@dataclass
class ReplayCost:
    """CPU of the lexical checks' decodes in one mode's replay."""

    decode_seconds: list[float] = field(default_factory=list)
    overlap_seconds: list[float] = field(default_factory=list)  # per overlap with a decode
    call_seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        d = self.decode_seconds
        return {
            "decodes": len(d),
            "decode_median_ms": 1000 * _percentile(d, 50) if d else float("nan"),
            "decode_p95_ms": 1000 * _percentile(d, 95) if d else float("nan"),
            "overlaps": len(self.overlap_seconds),
            "overlap_median_ms": 1000 * _percentile(self.overlap_seconds, 50),
            "overlap_p95_ms": 1000 * _percentile(self.overlap_seconds, 95),
            "ms_per_call_second": 1000 * sum(d) / self.call_seconds if self.call_seconds else float("nan"),
            "call_seconds": self.call_seconds,
        }


@dataclass(frozen=True)
class Label:
    cls: str  # interruption | backchannel | noise | silent
    onset: float
    end: float
    turn: int
    in_start_cooldown: bool = False
    voice: str = ""  # "engine:voice" of the caller's speech, when the labels carry it

    @property
    def engine(self) -> str:
        return self.voice.split(":", 1)[0] if ":" in self.voice else self.voice


@dataclass(frozen=True)
class Turn:
    start: float
    end: float


@dataclass(frozen=True)
class Decision:
    """An `interruption` event from replay."""

    t: float
    onset: float
    mode: str = "adaptive"
    probability: float | None = None


@dataclass
class FileScore:
    """Outcome per labelled event (index -> decision time, or None) and the unmatched decisions."""

    fired: list[float | None] = field(default_factory=list)
    echo_triggered: int = 0  # unmatched, after the start cooldown
    echo_in_cooldown: int = 0  # unmatched, inside the start cooldown (VAD's decision in both modes)
    echo_silent_turns: int = 0  # unmatched, in agent turns where the caller says nothing at all


@dataclass(frozen=True)
class Metrics:
    precision: float
    recall: float
    recall_in_cooldown: float
    backchannel_false_rate: float
    noise_false_rate: float
    echo_triggered: int
    echo_in_cooldown: int
    echo_silent_turns: int
    silent_turns: int
    latency_median_ms: float
    latency_p95_ms: float
    interruptions: int
    backchannels: int
    noises: int
    decisions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_labels(path: Path) -> tuple[list[Turn], list[Label]]:
    data = json.loads(path.read_text())
    turns = [Turn(float(t["start"]), float(t["end"])) for t in data["agent_turns"]]
    labels = [
        Label(
            str(e["class"]),
            float(e["onset"]),
            float(e["end"]),
            int(e["turn"]),
            bool(e.get("in_start_cooldown")),
            str(e.get("voice", "")) if e["class"] in ("interruption", "backchannel") else "",
        )
        for e in data["events"]
    ]
    return turns, labels


def score_file(
    turns: Sequence[Turn], labels: Sequence[Label], decisions: Iterable[Decision], cooldown: float = 1.0
) -> FileScore:
    score = FileScore(fired=[None] * len(labels))
    for d in sorted(decisions, key=lambda d: d.t):
        match = None
        for i, lab in enumerate(labels):
            if lab.cls != "silent" and lab.onset - ONSET_SLACK <= d.onset <= lab.end + END_SLACK:
                match = i
                break
        if match is not None:
            if score.fired[match] is None:
                score.fired[match] = d.t
            continue
        turn = next((k for k, tr in enumerate(turns) if tr.start - 0.1 <= d.onset <= tr.end + 0.3), None)
        if turn is not None and d.onset < turns[turn].start + cooldown:
            score.echo_in_cooldown += 1
            continue
        score.echo_triggered += 1
        silent = next((i for i, lab in enumerate(labels) if lab.turn == turn and lab.cls == "silent"), None)
        if silent is not None:
            score.echo_silent_turns += 1
    return score


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def aggregate(files: Sequence[tuple[Sequence[Label], FileScore]]) -> Metrics:
    tp = fp = 0
    hits = total = hits_cd = total_cd = 0
    bc = bc_fired = noise = noise_fired = silent = echo = echo_cd = echo_silent = decisions = 0
    latencies: list[float] = []
    for labels, score in files:
        echo += score.echo_triggered
        echo_cd += score.echo_in_cooldown
        echo_silent += score.echo_silent_turns
        fp += score.echo_triggered
        decisions += score.echo_triggered + score.echo_in_cooldown
        for lab, fired in zip(labels, score.fired, strict=True):
            did = fired is not None
            if lab.cls == "interruption":
                if lab.in_start_cooldown:
                    total_cd += 1
                    hits_cd += did
                    decisions += did
                    continue
                total += 1
                hits += did
                tp += did
                decisions += did
                if fired is not None:
                    latencies.append((fired - lab.onset) * 1000)
            elif lab.cls == "backchannel":
                bc += 1
                bc_fired += did
                fp += did
                decisions += did
            elif lab.cls == "noise":
                noise += 1
                noise_fired += did
                fp += did
                decisions += did
            elif lab.cls == "silent":
                silent += 1

    def rate(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return Metrics(
        precision=rate(tp, tp + fp),
        recall=rate(hits, total),
        recall_in_cooldown=rate(hits_cd, total_cd),
        backchannel_false_rate=rate(bc_fired, bc),
        noise_false_rate=rate(noise_fired, noise),
        echo_triggered=echo,
        echo_in_cooldown=echo_cd,
        echo_silent_turns=echo_silent,
        silent_turns=silent,
        latency_median_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
        interruptions=total,
        backchannels=bc,
        noises=noise,
        decisions=decisions,
    )


def by_group(files: Sequence[tuple[Sequence[Label], FileScore]], key: str = "engine") -> dict[str, Metrics]:
    """Metrics of the caller's speech per engine (or per voice, `key="voice"`).

    Only the labelled speech events of each group count (interruptions and backchannels): line-triggered
    interruptions and noises belong to no voice, so a group's precision is over its own events alone.
    """
    groups: dict[str, list[tuple[Sequence[Label], FileScore]]] = {}
    for labels, score in files:
        picked: dict[str, tuple[list[Label], list[float | None]]] = {}
        for lab, fired in zip(labels, score.fired, strict=True):
            name = lab.engine if key == "engine" else lab.voice
            if lab.cls in ("interruption", "backchannel") and name:
                ls, fs = picked.setdefault(name, ([], []))
                ls.append(lab)
                fs.append(fired)
        for name, (ls, fs) in picked.items():
            groups.setdefault(name, []).append((ls, FileScore(fired=fs)))
    return {name: aggregate(g) for name, g in sorted(groups.items())}


def group_table(
    adaptive: dict[str, Metrics],
    vad: dict[str, Metrics],
    title: str,
    lexical: dict[str, Metrics] | None = None,
) -> str:
    """Rows per group: adaptive / vad, or adaptive / adaptive_lexical / vad when `lexical` is given."""
    cols = [adaptive] + ([lexical] if lexical is not None else []) + [vad]
    tag = "a / l / v" if lexical is not None else "a / v"

    def each(name: str, get: Any) -> str:
        return " / ".join(get(c[name]) for c in cols)

    head = (
        title,
        "int.",
        "bc.",
        f"precision {tag}",
        f"recall {tag}",
        f"bc false {tag}",
        f"median / p95 ms ({tag[:-4]})",
    )
    rows = [
        (
            name,
            str(a.interruptions),
            str(a.backchannels),
            each(name, lambda m: _fmt(m.precision)),
            each(name, lambda m: _fmt(m.recall)),
            each(name, lambda m: _fmt(m.backchannel_false_rate, True)),
            " / ".join(f"{c[name].latency_median_ms:.0f}-{c[name].latency_p95_ms:.0f}" for c in cols[:-1]),
        )
        for name, a in adaptive.items()
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def false_trigger_rejection(
    adaptive: Sequence[tuple[Sequence[Label], FileScore]], vad: Sequence[tuple[Sequence[Label], FileScore]]
) -> tuple[float, int]:
    """Fraction of VAD mode's false triggers adaptive avoids (after the start cooldown).

    False triggers are non-interruption events VAD mode interrupted on, plus its line-triggered
    interruptions (echo/noise only); for the latter, per file, the excess of VAD's count over adaptive's.
    """
    vad_false = rejected = 0
    for (labels, a), (_, v) in zip(adaptive, vad, strict=True):
        vad_false += v.echo_triggered
        rejected += max(0, v.echo_triggered - a.echo_triggered)
        for lab, fa, fv in zip(labels, a.fired, v.fired, strict=True):
            if lab.cls != "interruption" and fv is not None:
                vad_false += 1
                rejected += fa is None
    return (rejected / vad_false if vad_false else float("nan")), vad_false


def parse_replay(lines: Iterable[str]) -> dict[str, list[Decision]]:
    out: dict[str, list[Decision]] = {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        row = json.loads(line)
        out.setdefault(str(row["file"]), [])
        if row.get("type") == "interruption":
            prob = row.get("probability")
            out[str(row["file"])].append(
                Decision(
                    float(row["t"]),
                    float(row["onset"]),
                    str(row.get("mode", "")),
                    None if prob is None else float(prob),
                )
            )
    return out


def run_replay(
    files: Sequence[Path],
    mode: str,
    config: str | None,
    overrides: Sequence[str],
    cost: ReplayCost | None = None,
) -> list[str]:
    """The lines `gateway replay FILES --set ... [--config ...] [--set ...]` prints for MODE
    (`MODE_SETS`), from the same Replayer in this process (adaptive modes use the ONNX detector
    unless an override names another). `cost` collects the lexical checks' CPU."""
    from gateway.config.loader import load_agent_config
    from gateway.replay import Replayer

    sets = [*MODE_SETS.get(mode, (f"interruption.mode={mode}",)), *overrides]
    if mode.startswith("adaptive") and not any(o.startswith("interruption.detector=") for o in overrides):
        sets.append("interruption.detector=onnx")
    replayer = Replayer(load_agent_config(config, sets).config.turn_handling.to_options())
    lines: list[str] = []
    for path in files:
        result = replayer.replay_file(path, label=str(path))
        lines += [json.dumps(row) for row in result.contract_events()]
        if cost is not None:
            cost.decode_seconds += result.lexical_seconds
            cost.overlap_seconds += result.lexical_overlap_seconds
            cost.call_seconds += result.duration
    return lines


def _fmt(value: float, pct: bool = False) -> str:
    if value != value:  # nan
        return "n/a"
    return f"{100 * value:.1f} %" if pct else f"{value:.3f}"


def table(
    results: dict[str, Metrics],
    rejection: dict[str, tuple[float, int]],
    cooldown: float = 1.0,
    cost: ReplayCost | None = None,
) -> str:
    """One column per mode of `results` (in `MODES` order), and the targets."""
    modes = [m for m in MODES if m in results]
    ms = [results[m] for m in modes]
    a = ms[0]

    def row(name: str, values: list[str], target: str) -> tuple[str, ...]:
        return (name, *values, target)

    rows = [
        row("precision (after cooldown)", [_fmt(m.precision) for m in ms], ">= 0.97"),
        row("recall (after cooldown)", [_fmt(m.recall) for m in ms], ">= 0.99"),
        row("recall inside start cooldown", [_fmt(m.recall_in_cooldown) for m in ms], ""),
        row(
            "false interruptions: backchannels", [_fmt(m.backchannel_false_rate, True) for m in ms], "<= 5 %"
        ),
        row("false interruptions: noises", [_fmt(m.noise_false_rate, True) for m in ms], "<= 2 %"),
        row(
            "VAD false triggers rejected",
            [f"{_fmt(rejection[m][0], True)} of {rejection[m][1]}" if m in rejection else "-" for m in modes],
            ">= 90 %",
        ),
        row("median latency from true onset", [f"{m.latency_median_ms:.0f} ms" for m in ms], "<= 300 ms"),
        row("p95 latency from true onset", [f"{m.latency_p95_ms:.0f} ms" for m in ms], "<= 600 ms"),
        row("line-triggered (echo/noise only), after cooldown", [str(m.echo_triggered) for m in ms], "0"),
        row("  of which in turns the caller is silent", [str(m.echo_silent_turns) for m in ms], "0"),
        row("line-triggered inside start cooldown (VAD)", [str(m.echo_in_cooldown) for m in ms], ""),
    ]
    if cost is not None and cost.decode_seconds:
        c = cost.to_dict()
        for label, value in (
            ("median / p95 per decode", f"{c['decode_median_ms']:.0f} / {c['decode_p95_ms']:.0f} ms"),
            (
                "median / p95 per overlap",
                f"{c['overlap_median_ms']:.0f} / {c['overlap_p95_ms']:.0f} ms ({c['overlaps']} overlaps)",
            ),
            ("per call-second", f"{c['ms_per_call_second']:.2f} ms ({c['decodes']} decodes)"),
        ):
            cells = [value if m == "adaptive_lexical" else "-" for m in modes]
            rows.append(row(f"lexical decodes: CPU {label}", cells, ""))
    head = ("metric", *modes, "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        f"labelled: {a.interruptions} interruptions after cooldown, {a.backchannels} backchannels, "
        f"{a.noises} noises, {a.silent_turns} silent agent turns (start cooldown {cooldown:g} s)",
        "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def evaluate(
    directory: Path,
    config: str | None = None,
    overrides: Sequence[str] = (),
    replay_out: Path | None = None,
    cooldown: float = 1.0,
    replay_in: Path | None = None,
    cost: ReplayCost | None = None,
) -> tuple[dict[str, Metrics], dict[str, tuple[float, int]], dict[str, dict[str, dict[str, Metrics]]]]:
    """Overall metrics per mode, VAD false-trigger rejection per adaptive mode, and per-group metrics
    (`groups[mode]["engine" | "voice"][name]`). `cost` collects the lexical checks' CPU."""
    wavs = sorted(p for p in directory.glob("*.wav") if p.with_suffix(".json").exists())
    if not wavs:
        raise FileNotFoundError(f"no labelled WAVs (NAME.wav + NAME.json) in {directory}")
    labelled = {str(p): load_labels(p.with_suffix(".json")) for p in wavs}
    per_mode: dict[str, list[tuple[Sequence[Label], FileScore]]] = {}
    modes = [m for m in MODES if replay_in is None or (replay_in / f"replay_{m}.jsonl").exists()]
    for mode in modes:
        if replay_in is not None:
            lines = (replay_in / f"replay_{mode}.jsonl").read_text().splitlines()
        else:
            lines = run_replay(wavs, mode, config, overrides, cost if mode == "adaptive_lexical" else None)
        if replay_out is not None:
            replay_out.mkdir(parents=True, exist_ok=True)
            (replay_out / f"replay_{mode}.jsonl").write_text("\n".join(lines) + "\n")
        decisions = parse_replay(lines)
        per_mode[mode] = [
            (labels, score_file(turns, labels, decisions.get(name, []), cooldown))
            for name, (turns, labels) in labelled.items()
        ]
    results = {mode: aggregate(per_mode[mode]) for mode in modes}
    groups = {mode: {k: by_group(per_mode[mode], k) for k in ("engine", "voice")} for mode in modes}
    rejection = {m: false_trigger_rejection(per_mode[m], per_mode["vad"]) for m in modes if m != "vad"}
    return results, rejection, groups


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "eval-bargein",
        help="score adaptive vs vad interruption mode on labelled stereo scenario WAVs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", type=Path, metavar="DIR")
    parser.add_argument("--config", help="agent YAML passed to gateway replay")
    add_set_option(parser)
    parser.add_argument(
        "--cooldown",
        type=float,
        default=1.0,
        help="start cooldown of the configuration (backchannel_boundary start)",
    )
    parser.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    parser.add_argument("--keep-replay", type=Path, help="write the raw replay JSON lines into this folder")
    parser.add_argument(
        "--from-replay",
        type=Path,
        help="score replay_{adaptive,vad}.jsonl saved by --keep-replay instead of running",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    cost = ReplayCost()
    results, rejection, groups = evaluate(
        args.directory, args.config, args.overrides, args.keep_replay, args.cooldown, args.from_replay, cost
    )
    print(table(results, rejection, args.cooldown, cost))
    for key in ("engine", "voice"):
        if groups["adaptive"][key]:
            print()
            lexical = groups["adaptive_lexical"][key] if "adaptive_lexical" in groups else None
            print(group_table(groups["adaptive"][key], groups["vad"][key], f"caller {key}", lexical))
    if args.json:
        data: dict[str, Any] = {m: r.to_dict() for m, r in results.items()}
        data["vad_false_triggers_rejected"] = {
            "fraction": rejection["adaptive"][0],
            "of": rejection["adaptive"][1],
            **{m: {"fraction": f, "of": n} for m, (f, n) in rejection.items()},
        }
        if cost.decode_seconds:
            data["lexical_cost"] = cost.to_dict()
        data["per_group"] = {
            mode: {k: {n: m.to_dict() for n, m in g.items()} for k, g in by_key.items()}
            for mode, by_key in groups.items()
        }
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0
