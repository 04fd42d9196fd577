"""The committed end-of-turn model on held-out engines (flite, festival): inference only.

The clips in `tests/fixtures/eot/` were rendered once by `models/eot/make_fixtures.py` with the held-out
engines (never used for training, calibration or model selection), so neither flite nor festival is
needed here. Checks: a stream fed frame by frame gives the model exactly the inputs computed from the
whole clip at once (as the training corpus computes them), a batch equals the items run one at a time,
and on every held-out voice the model ranks a fragment below a complete sentence.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.turns.eot_features import embedding_steps, embedding_window, window_features, word_features
from gateway.turns.eot_onnx import OnnxEndOfTurnDetector
from gateway.turns.speech_embedding import embed_clip, shared_front_end

FIXTURES = Path(__file__).parent / "fixtures" / "eot"
SR = 8000
FRAME = 160
CLIPS = json.loads((FIXTURES / "index.json").read_text())
VOICES = sorted({(c["engine"], c["voice"]) for c in CLIPS})


def load(clip: dict[str, object]) -> np.ndarray:
    with wave.open(str(FIXTURES / str(clip["file"]))) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()


@pytest.fixture(scope="module")
def detector() -> OnnxEndOfTurnDetector:
    return OnnxEndOfTurnDetector()


def streamed(det: OnnxEndOfTurnDetector, pcm: np.ndarray, end: float, silence: float = 0.5) -> object:
    stream = det.open_stream()
    upto = int((end + silence) * SR) // FRAME * FRAME
    for i in range(0, upto, FRAME):
        stream.push(pcm[i : i + FRAME])
    return stream


def test_committed_model_uses_the_speech_embedding(detector: OnnxEndOfTurnDetector) -> None:
    assert detector.model.uses_embedding


@pytest.mark.parametrize("clip", CLIPS, ids=[c["file"] for c in CLIPS])
def test_streaming_equals_the_whole_window(detector: OnnxEndOfTurnDetector, clip: dict[str, object]) -> None:
    pcm, end = load(clip), float(clip["end"])  # type: ignore[arg-type]
    feats, emb = streamed(detector, pcm, end).inputs(end)  # type: ignore[attr-defined]
    sample = round(end * SR)
    k0, k1 = embedding_steps(sample)
    whole = embed_clip(shared_front_end(), pcm)
    np.testing.assert_allclose(feats, window_features(pcm, 0, sample), atol=1e-5)
    np.testing.assert_allclose(emb, embedding_window(whole[max(k0, 0) : k1], k0), atol=1e-4)


def test_batched_equals_single(detector: OnnxEndOfTurnDetector) -> None:
    rows = []
    for k, clip in enumerate(CLIPS):
        end = float(clip["end"])
        feats, emb = streamed(detector, load(clip), end).inputs(end)  # type: ignore[attr-defined]
        words = word_features(str(clip["text"]).split()[: 2 + k % 4] if k % 2 else ())
        rows.append((feats, emb, words, 0.2 + 0.1 * k))
    a = np.stack([r[0] for r in rows])
    e = np.stack([r[1] for r in rows])
    w = np.stack([r[2] for r in rows])
    s = np.array([r[3] for r in rows], dtype=np.float32)
    batch = detector.model.run(a, w, s, e)
    one = [
        detector.model.run(a[i : i + 1], w[i : i + 1], s[i : i + 1], e[i : i + 1])[0]
        for i in range(len(rows))
    ]
    np.testing.assert_allclose(batch, one, atol=1e-5)


def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


@pytest.mark.parametrize("voice", VOICES, ids=[f"{e}-{v}" for e, v in VOICES])
def test_a_fragment_is_less_finished_than_a_complete_sentence(
    detector: OnnxEndOfTurnDetector, voice: tuple[str, str]
) -> None:
    """On every held-out voice, from the audio alone (in the logit domain: without words the model is
    rarely sure, see the model card) and with the words."""
    got = {}
    for clip in CLIPS:
        if (clip["engine"], clip["voice"]) != voice:
            continue
        end = float(clip["end"])
        stream = streamed(detector, load(clip), end)
        words = tuple(str(clip["text"]).rstrip(",.").split())
        got[clip["kind"]] = (stream.probability(end, ()), stream.probability(end, words))  # type: ignore[attr-defined]
    (frag_audio, frag_words), (done_audio, done_words) = got["fragment"], got["complete"]
    assert logit(frag_audio) < logit(done_audio) - 0.5, (frag_audio, done_audio)
    assert frag_words < 0.05, frag_words
    assert done_words > frag_words + 0.2, (frag_words, done_words)
