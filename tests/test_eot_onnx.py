"""The committed end-of-turn model (models/eot/eot.onnx): real inference on espeak-ng audio.

Audio comes from held-out voices of the recipe (never heard in training), through the telephony
channel of the barge-in recipe, as the corpus was made.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` is a folder of the repository

from gateway.turns.detectors import EndOfTurnDetector, EndOfTurnStream
from gateway.turns.eot_features import EMB_DIM, EMB_STEPS, N_AUDIO, N_FRAMES, N_WORDS, word_features
from gateway.turns.eot_onnx import MODEL_PATH, OnnxEndOfTurnDetector, OnnxEndOfTurnStream
from gateway.turns.registry import end_of_turn_detector
from models.bargein.channel import draw_params, simulate
from models.bargein.synth import speech

SR = 8000
FRAME = 160
# Held-out voices of the recipe's test split (base and variant both unseen in training).
HELDOUT_VOICES = ("en-us-nyc+m6", "en-gb-x-rp+f5", "en-029+john", "en-gb-x-gbcwmd+klatt4")
FRAGMENT = "I'd like to book an appointment for,"
COMPLETE = "I'd like Tuesday at three."


@pytest.fixture(scope="module")
def detector() -> OnnxEndOfTurnDetector:
    return OnnxEndOfTurnDetector()


def line(
    text: str, voice: str, seed: int = 0, lead: float = 0.4, tail: float = 1.0
) -> tuple[np.ndarray, float]:
    """Caller line audio (int16) of `text` and the time its voice ends."""
    rng = np.random.default_rng(seed)
    voiced = speech(text, voice)
    clean = np.concatenate(
        [np.zeros(int(lead * SR), np.float32), voiced, np.zeros(int(tail * SR), np.float32)]
    )
    params = draw_params(rng, echo_prob=0.0)
    params = type(params)(**{**params.to_dict(), "snr_db": 30.0, "loss_rate": 0.0, "echo": False})
    pcm, _, _ = simulate(clean, np.zeros_like(clean), rng, params)
    return pcm, lead + len(voiced) / SR


def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def probability(
    det: OnnxEndOfTurnDetector, pcm: np.ndarray, end: float, words: tuple[str, ...] = (), silence: float = 0.5
) -> float:
    stream = det.open_stream()
    upto = int((end + silence) * SR) // FRAME * FRAME
    for i in range(0, upto, FRAME):
        stream.push(pcm[i : i + FRAME])
    return stream.probability(end, words)


def test_committed_model_is_small_and_matches_the_feature_code(detector: OnnxEndOfTurnDetector) -> None:
    assert MODEL_PATH.is_file()
    assert MODEL_PATH.stat().st_size < 5 * 1024 * 1024
    inputs = {i.name: i.shape[1:] for i in detector.model.session.get_inputs()}
    assert inputs == {
        "audio": [N_FRAMES, N_AUDIO],
        "emb": [EMB_STEPS, EMB_DIM],
        "words": [N_WORDS],
        "silence": [1],
    }
    assert isinstance(detector, EndOfTurnDetector)
    assert isinstance(detector.open_stream(), EndOfTurnStream)


def test_answers_every_query_and_reuses_the_inputs_of_a_speech_end(detector: OnnxEndOfTurnDetector) -> None:
    pcm, end = line(COMPLETE, HELDOUT_VOICES[0])
    stream = detector.open_stream()
    for i in range(0, int((end + 0.4) * SR) // FRAME * FRAME, FRAME):
        stream.push(pcm[i : i + FRAME])
    stream.probability(end, ())  # warm up
    cached = stream._cached
    assert cached is not None and stream._cached_emb is not None
    for k in range(5):
        p = stream.probability(end, ("I'd", "like") if k % 2 else ())
        assert 0.0 <= p <= 1.0
        assert stream._cached is cached  # the same speech end: inputs computed once
    stream.probability(end + 0.05, ())
    assert stream._cached is not cached  # a new speech end: new inputs


def test_batched_model_agrees_with_one_at_a_time(detector: OnnxEndOfTurnDetector) -> None:
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.3, (3, N_FRAMES, N_AUDIO)).astype(np.float32)
    emb = rng.normal(0, 1.0, (3, EMB_STEPS, EMB_DIM)).astype(np.float32)
    words = np.stack([word_features(w) for w in ((), ("my", "number", "is"), ("thank", "you"))])
    silence = np.array([0.3, 0.8, 1.5], dtype=np.float32)
    batch = detector.model.run(audio, words, silence, emb)
    one = [
        detector.model.run(audio[i : i + 1], words[i : i + 1], silence[i : i + 1], emb[i : i + 1])[0]
        for i in range(3)
    ]
    np.testing.assert_allclose(batch, one, atol=1e-5)


@pytest.mark.parametrize("voice", HELDOUT_VOICES)
def test_fragment_is_less_finished_than_a_complete_sentence(
    detector: OnnxEndOfTurnDetector, voice: str
) -> None:
    frag, frag_end = line(FRAGMENT, voice, seed=1)
    done, done_end = line(COMPLETE, voice, seed=2)
    p_frag = probability(detector, frag, frag_end)
    p_done = probability(detector, done, done_end)
    assert p_frag < 0.1
    # From the audio alone the model ranks them right but is rarely sure (it was calibrated for at most
    # 4 % cut-offs on voices of several engines, most of which say a fragment with a final fall: see the
    # model card); West Midlands intonation ends statements high, so its margin is smaller.
    assert logit(p_frag) < logit(p_done) - (0.3 if "gbcwmd" in voice else 1.0), (p_frag, p_done)
    # With the words it is sure.
    w_frag = probability(detector, frag, frag_end, tuple(FRAGMENT.rstrip(",").split()))
    w_done = probability(detector, done, done_end, tuple(COMPLETE.rstrip(".").split()))
    assert w_frag < 0.05 and w_done > 0.8, (w_frag, w_done)


@pytest.mark.parametrize("voice", HELDOUT_VOICES[:2])
def test_words_shift_the_probability_the_right_way(detector: OnnxEndOfTurnDetector, voice: str) -> None:
    for text in ("my number is five five five,", "thank you."):
        pcm, end = line(text, voice, seed=3)
        unfinished = probability(detector, pcm, end, ("my", "number", "is"))
        finished = probability(detector, pcm, end, ("thank", "you"))
        # On the same audio, in the logit domain (the audio alone may already be near 0 or 1).
        assert logit(unfinished) < logit(finished) - 1.0, (text, unfinished, finished)
    # And words agreeing with the audio keep the model as sure as the audio alone (each mode has its
    # own calibration, so both may round to about 0).
    pcm, end = line("my number is,", voice, seed=4)
    assert probability(detector, pcm, end, ("my", "number", "is")) <= probability(detector, pcm, end) + 1e-3


def test_streams_keep_their_own_state(detector: OnnxEndOfTurnDetector) -> None:
    a_pcm, a_end = line(FRAGMENT, HELDOUT_VOICES[1], seed=5)
    b_pcm, _ = line(COMPLETE, HELDOUT_VOICES[2], seed=6, tail=1.5)
    alone = probability(detector, a_pcm, a_end)
    a, b = detector.open_stream(), detector.open_stream()
    upto = int((a_end + 0.5) * SR) // FRAME * FRAME
    for i in range(0, upto, FRAME):
        a.push(a_pcm[i : i + FRAME])
        b.push(b_pcm[i : i + FRAME])
        if i % (FRAME * 10) == 0 and i > SR:
            b.probability(i / SR - 0.3, ("yes",))  # another call's queries in between
    assert a.probability(a_end, ()) == pytest.approx(alone, abs=1e-6)
    assert a.samples == upto


def test_a_16k_call_is_resampled_to_the_model_rate(detector: OnnxEndOfTurnDetector) -> None:
    from gateway.audio.resample import resample

    pcm, end = line(FRAGMENT, HELDOUT_VOICES[0], seed=7)
    wide = resample(pcm, 8000, 16000)
    stream = detector.open_stream()
    upto = int((end + 0.5) * 16000) // 320 * 320
    for i in range(0, upto, 320):
        stream.push(wide[i : i + 320])
    assert stream.samples == upto // 2
    assert stream.probability(end, ()) == pytest.approx(probability(detector, pcm, end), abs=0.15)


def test_missing_model_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        OnnxEndOfTurnDetector(tmp_path / "nope.onnx")


def test_registry_picks_the_onnx_model() -> None:
    det = end_of_turn_detector("onnx")
    assert isinstance(det, OnnxEndOfTurnDetector)
    assert isinstance(det.open_stream(), OnnxEndOfTurnStream)
    assert isinstance(end_of_turn_detector("auto"), OnnxEndOfTurnDetector)
