"""The committed barge-in model with its onnxruntime runtime: real inference on synthesised calls."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` is a folder of the repository

from gateway.turns.bargein_onnx import DEFAULT_MODEL, OnnxBargeInDetector, OnnxBargeInStream
from gateway.turns.detectors import BargeInDetector, BargeInStream
from models.bargein import synth
from models.bargein.channel import ChannelParams, simulate

SR = 8000
FRAME = 160
# A held-out test voice (base and variant never used in training) and held-out phrases.
VOICE = "en-gb-x-rp+f5"
AGENT_VOICE = "en-us+f4"
PARAMS = ChannelParams(
    caller_dbfs=-20.0,
    snr_db=25.0,
    background="pink",
    echo=True,
    echo_delay_s=0.08,
    echo_db=-15.0,
    echo_decay_s=0.02,
    band_lo=300.0,
    band_hi=3400.0,
    loss_rate=0.0,
    plc=False,
)
ONSET = 2.0


@pytest.fixture(scope="module")
def detector() -> OnnxBargeInDetector:
    return OnnxBargeInDetector()


def _call(event: np.ndarray, seed: int = 0, ref: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(caller line, agent playout, event end) of a 4.5 s call: agent talking, caller event at ONSET."""
    n = int(4.5 * SR)
    agent_speech = synth.speech(
        "I found an opening tomorrow at three o'clock, would that work for you? The parking is free.",
        AGENT_VOICE,
    )
    agent = np.zeros(n, dtype=np.float32)
    agent[int(0.3 * SR) :] = agent_speech[: n - int(0.3 * SR)]
    caller = np.zeros(n, dtype=np.float32)
    i = int(ONSET * SR)
    caller[i : i + len(event)] = event[: n - i]
    line, playout, _ = simulate(
        caller, agent, np.random.default_rng(seed), params=PARAMS, speech_level_ref=ref
    )
    return line, playout, ONSET + len(event) / SR


def _max_probability(
    detector: OnnxBargeInDetector, line: np.ndarray, playout: np.ndarray, end: float
) -> float:
    """The session's view: every 20 ms frame pushed, a query every 100 ms while the overlap is open."""
    stream = detector.open_stream()
    best = 0.0
    for k in range(len(line) // FRAME):
        stream.push(line[k * FRAME : (k + 1) * FRAME], playout[k * FRAME : (k + 1) * FRAME])
        t = (k + 1) * FRAME / SR
        if ONSET + 0.1 - 1e-9 <= t <= end + 0.3 and (k + 1) % 5 == 0:
            best = max(best, stream.probability(ONSET))
    return best


def test_model_file_is_committed_and_small() -> None:
    assert DEFAULT_MODEL.exists()
    assert DEFAULT_MODEL.stat().st_size < 3_000_000


def test_protocols(detector: OnnxBargeInDetector) -> None:
    assert isinstance(detector, BargeInDetector)
    assert isinstance(detector.open_stream(), BargeInStream)
    assert detector.sample_rate == 8000


def test_interruption_scores_above_backchannel_and_noise(detector: OnnxBargeInDetector) -> None:
    interruption = synth.speech("I think you misunderstood me", VOICE)
    backchannel = synth.speech("mm", VOICE)
    noise = synth.cough(np.random.default_rng(5))
    p_int = _max_probability(detector, *_call(interruption))
    p_bc = _max_probability(detector, *_call(backchannel))
    p_noise = _max_probability(detector, *_call(noise, ref=0.1))
    assert p_int >= 0.5, (p_int, p_bc, p_noise)
    assert p_int > p_bc and p_int > p_noise, (p_int, p_bc, p_noise)


def test_streaming_equals_one_shot_and_batch(detector: OnnxBargeInDetector) -> None:
    line, playout, _end = _call(synth.speech("stop please", VOICE))
    streaming = detector.open_stream()
    one_shot = detector.open_stream()
    batched = [detector.open_stream() for _ in range(3)]
    for k in range(len(line) // FRAME):
        c, a = line[k * FRAME : (k + 1) * FRAME], playout[k * FRAME : (k + 1) * FRAME]
        streaming.push(c, a)
        one_shot.push(c, a)
        for s in batched:
            s.push(c, a)
        if (k + 1) * FRAME / SR >= ONSET + 0.1 and (k + 1) % 5 == 0:
            p = streaming.probability(ONSET)
            fresh = detector.open_stream()
            fresh.push(line[: (k + 1) * FRAME], playout[: (k + 1) * FRAME])
            assert fresh.probability(ONSET) == pytest.approx(p, abs=1e-5)
            # Three calls in one run, two of them on the same overlap, one on a later onset.
            got = detector.probability_batch(
                [(batched[0], ONSET), (batched[1], ONSET), (batched[2], ONSET + 0.04)]
            )
            assert got[0] == pytest.approx(p, abs=1e-5) and got[1] == pytest.approx(p, abs=1e-5)
            assert got[2] == pytest.approx(batched[2].probability(ONSET + 0.04), abs=1e-6)
    assert one_shot.probability(ONSET) == pytest.approx(streaming.probability(ONSET), abs=1e-5)


def test_new_onset_restarts_the_window(detector: OnnxBargeInDetector) -> None:
    line, playout, _ = _call(synth.speech("wait a minute", VOICE))
    a = detector.open_stream()
    a.push(line, playout)
    a.probability(1.0)
    b = detector.open_stream()
    b.push(line, playout)
    assert a.probability(ONSET) == pytest.approx(b.probability(ONSET), abs=1e-6)


def test_sixteen_khz_input(detector: OnnxBargeInDetector) -> None:
    import soxr

    line, playout, _ = _call(synth.speech("wait a minute", VOICE))
    det16 = OnnxBargeInDetector(sample_rate=16000)
    s16 = det16.open_stream()
    up_c = np.asarray(soxr.resample(line, SR, 16000), dtype=np.int16)
    up_a = np.asarray(soxr.resample(playout, SR, 16000), dtype=np.int16)
    for k in range(len(up_c) // 320):
        s16.push(up_c[k * 320 : (k + 1) * 320], up_a[k * 320 : (k + 1) * 320])
    s8: OnnxBargeInStream = detector.open_stream()
    s8.push(line, playout)
    # soxr holds back its filter delay (~40 ms) until more input comes; the timeline itself is not shifted.
    assert s16.samples == pytest.approx(s8.samples, abs=400)
    assert s16.probability(ONSET) == pytest.approx(s8.probability(ONSET), abs=0.15)


def test_mismatched_frames_are_rejected(detector: OnnxBargeInDetector) -> None:
    with pytest.raises(ValueError):
        detector.open_stream().push(np.zeros(160, np.int16), np.zeros(80, np.int16))


HELDOUT = Path(__file__).parent / "fixtures" / "bargein"


def _clip_max_probability(detector: OnnxBargeInDetector, path: Path, onset: float, end: float) -> float:
    import soundfile as sf

    x, rate = sf.read(path, dtype="int16")
    assert rate == SR
    stream = detector.open_stream()
    best = 0.0
    for k in range(len(x) // FRAME):
        stream.push(x[k * FRAME : (k + 1) * FRAME, 0], x[k * FRAME : (k + 1) * FRAME, 1])
        t = (k + 1) * FRAME / SR
        if onset + 0.1 - 1e-9 <= t <= end + 0.3 and (k + 1) % 5 == 0:
            best = max(best, stream.probability(onset))
    return best


def _heldout_scores(detector: OnnxBargeInDetector) -> list[tuple[str, str, str, float]]:
    import json

    labels = json.loads((HELDOUT / "labels.json").read_text())
    return [
        (
            name.split("_")[0],
            lab["class"],
            lab["text"],
            _clip_max_probability(detector, HELDOUT / name, lab["onset"], lab["end"]),
        )
        for name, lab in labels.items()
    ]


def test_verdicts_on_held_out_engines(detector: OnnxBargeInDetector) -> None:
    """Callers in voices of engines (and real speakers) the model never trained on: committed clips from
    `python -m models.bargein.fixtures`. Per engine, at most one interruption missed and backchannels scored
    below interruptions on average; over both test engines, at least half of the backchannels let pass.
    (The card's held-out calls: recall 0.74-0.93, 46-60 % of backchannels still interrupt.)"""
    scores = _heldout_scores(detector)
    for engine in ("flite", "festival", "real"):
        ints = [p for e, c, _, p in scores if e == engine and c == "interruption"]
        bcs = [p for e, c, _, p in scores if e == engine and c == "backchannel"]
        assert len(ints) >= 4
        assert sum(p < 0.5 for p in ints) <= 1, (engine, scores)
        if bcs:
            assert np.mean(bcs) < np.mean(ints), (engine, scores)
    bcs = [p for e, c, _, p in scores if c == "backchannel"]
    assert len(bcs) >= 8 and sum(p < 0.5 for p in bcs) >= len(bcs) / 2, scores
