"""The speech front end (openWakeWord's mel + embedding networks, converted to ONNX): real inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.turns.speech_embedding import (
    EMB_DIM,
    FRONTEND_DIR,
    MEL_HOP,
    MEL_WINDOW,
    EmbeddingStream,
    FrontEnd,
    Upsampler2x,
    embed_clip,
    embed_steps,
)

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "frontend" / "reference.npz"


@pytest.fixture(scope="module")
def front() -> FrontEnd:
    return FrontEnd()


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """8 kHz int16: voiced bursts (harmonics of a gliding f0) with pauses and a noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 8000)) / 8000
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 8000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = (np.sin(2 * np.pi * 1.3 * t) > -0.2).astype(float)
    x = 6000 * voiced * envelope + rng.normal(0, 60, len(t))
    return np.clip(x, -32768, 32767).astype(np.int16)


def test_models_are_committed_and_small() -> None:
    for name in ("melspectrogram.onnx", "embedding_model.onnx"):
        assert (FRONTEND_DIR / name).stat().st_size < 2_000_000
    assert REFERENCE.exists()


def test_onnx_equals_the_tflite_original(front: FrontEnd) -> None:
    """`reference.npz` holds what the package's own TFLite streaming code gives for a sentence
    (`models/frontend/convert.py --check` writes it). Its phase: each mel window ends 800 samples before
    the newest audio and each embedding reads 76 frames ending 4 frames before the newest."""
    ref = np.load(REFERENCE)
    audio, expected = ref["audio16"].astype(np.float32), ref["embeddings"]
    y = np.concatenate([np.zeros(MEL_WINDOW + 800, np.float32), audio])
    n_chunks = (len(y) - MEL_WINDOW) // MEL_HOP + 1
    chunks = np.stack([y[c * MEL_HOP : c * MEL_HOP + MEL_WINDOW] for c in range(n_chunks)])
    frames = front.mel(chunks).reshape(-1, 32)
    silence = front.mel(np.zeros((1, MEL_WINDOW), np.float32))[0]
    frames = np.concatenate([np.tile(silence, (12, 1)), frames])
    got = front.embed(np.stack([frames[e - 80 : e - 4] for e in range(96, len(frames) + 1, 8)]))
    k = min(len(got), len(expected))
    got, expected = got[-k:], expected[-k:]
    assert k >= 40
    # TFLite and onnxruntime differ in float rounding through 20 convolutions: tiny against the range.
    assert np.max(np.abs(got - expected)) < 0.01 * np.max(np.abs(expected))
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.9999


def test_upsampler_streaming_equals_one_shot_and_passes_the_band() -> None:
    x = _speechlike(1.0).astype(np.float32)
    one = Upsampler2x().process(x)
    up = Upsampler2x()
    parts = np.concatenate([up.process(x[i : i + 160]) for i in range(0, len(x), 160)])
    np.testing.assert_array_equal(one, parts)
    tone = 10000 * np.sin(2 * np.pi * 1000 * np.arange(8000) / 8000)
    y = Upsampler2x().process(tone)[200:]
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    passband = spec[np.argmin(np.abs(freqs - 1000))]
    image = spec[np.argmin(np.abs(freqs - 7000))]
    assert np.std(y) == pytest.approx(np.std(tone), rel=0.05)
    assert 20 * np.log10(passband / image) > 40


def test_streaming_equals_whole_clip_and_queries_in_pieces(front: FrontEnd) -> None:
    x = _speechlike(3.0)
    framewise = embed_clip(front, x, chunk=160)
    whole = embed_clip(front, x, chunk=len(x))
    assert framewise.shape == (len(x) // 640, EMB_DIM)
    np.testing.assert_allclose(framewise, whole, atol=1e-4)
    s = EmbeddingStream()
    s.push(x)
    pieces = np.concatenate(
        [embed_steps(front, [(s, k, min(k + 3, s.steps))])[0] for k in range(10, s.steps, 3)]
    )
    np.testing.assert_allclose(pieces, whole[10:], atol=1e-4)


def test_batched_equals_single(front: FrontEnd) -> None:
    clips = [_speechlike(2.0, seed) for seed in range(3)]
    streams = []
    for c in clips:
        s = EmbeddingStream()
        s.push(c)
        streams.append(s)
    ranges = [(5, 12), (0, 25), (20, 21)]
    batched = embed_steps(front, [(s, a, b) for s, (a, b) in zip(streams, ranges, strict=True)])
    for c, (a, b), got in zip(clips, ranges, batched, strict=True):
        alone = EmbeddingStream()
        alone.push(c)
        np.testing.assert_allclose(got, embed_steps(front, [(alone, a, b)])[0], atol=1e-4)


def test_embedding_tells_speech_from_silence_and_rejects_incomplete_steps(front: FrontEnd) -> None:
    s = EmbeddingStream()
    s.push(np.zeros(8000, np.int16))
    s.push(_speechlike(1.0))
    e = embed_steps(front, [(s, 0, s.steps)])[0]
    quiet, speech = e[:3], e[-3:]
    assert np.linalg.norm(speech - quiet[0], axis=1).min() > 5 * np.linalg.norm(quiet[1] - quiet[0]) + 1e-3
    with pytest.raises(ValueError):
        embed_steps(front, [(s, 0, s.steps + 1)])


def test_old_mel_chunks_are_dropped() -> None:
    s = EmbeddingStream()
    s.push(np.zeros(8000 * 12, np.int16))  # more than the stream keeps
    front = FrontEnd(Path(FRONTEND_DIR))
    embed_steps(front, [(s, s.steps - 2, s.steps)])
    s.forget_before(s.steps)
    assert all(c >= s.steps - 10 for c in s._mel)
