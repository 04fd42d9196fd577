"""The trained end-of-turn detector (`models/eot/eot.onnx`) through onnxruntime.

Theory of operation
-------------------
One `OnnxEndOfTurnDetector` per process holds the ONNX session (one intra-op thread); each call opens
an `OnnxEndOfTurnStream`, which keeps the last `HISTORY_S` seconds of the caller's line in a ring
buffer (absolute sample indices, so `speech_end` in stream seconds maps straight onto it).

When the engine asks `probability(speech_end, words)` (every 100 ms while the caller is silent and a
turn is pending), the stream cuts the model's window around `speech_end` (`eot_features`), computes its
features once per speech end (later queries in the same pause reuse them: only the silence so far and
the words change), and runs the model with the silence elapsed since `speech_end`. No words (no STT) is
a valid input: the model was trained with and without them.

The pipeline feeds the caller's frames at the call's rate; the model works at 8 kHz. A stream learns the
rate from its first frame (20 ms: 160 samples at 8 kHz, 320 at 16 kHz) unless it is told, and
resamples 16 kHz calls with the gateway's streaming resampler.

A model with an `emb` input (the second model) also sees the speech-embedding steps of the front end
learned from real speech (`gateway.turns.speech_embedding`: one 96-d vector per 80 ms) around the speech
end (`eot_features.embedding_steps`); the stream then keeps an `EmbeddingStream` of the call as well, and
computes those steps once per speech end, with the prosodic window. A model without it (the first one)
gets the prosodic window only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from gateway.audio.resample import StreamResampler
from gateway.audio.ringbuffer import RingBuffer
from gateway.turns.detectors import DetectorError, Pcm
from gateway.turns.eot_features import (
    CONTEXT_FRAMES,
    EMB_DIM,
    EMB_STEPS,
    HOP,
    LEFT_PAD,
    N_AUDIO,
    N_FRAMES,
    N_WORDS,
    SAMPLE_RATE,
    TAIL_FRAMES,
    embedding_steps,
    embedding_window,
    window_features,
    word_features,
)
from gateway.turns.model_files import model_file
from gateway.turns.speech_embedding import EmbeddingStream, FrontEnd, embed_steps, shared_front_end

MODEL_PATH = model_file("eot.onnx")
ENV_MODEL = "GATEWAY_EOT_MODEL"
HISTORY_S = 4.0
_FRAME_RATES = {160: 8000, 320: 16000}


def default_model_path() -> Path:
    return Path(os.environ.get(ENV_MODEL, str(MODEL_PATH)))


class OnnxEndOfTurnModel:
    """The ONNX session and its input contract (shared by all streams of a process)."""

    def __init__(self, path: str | Path | None = None, *, threads: int = 1) -> None:
        self.path = Path(path) if path is not None else default_model_path()
        if not self.path.is_file():
            raise FileNotFoundError(f"end-of-turn model not found: {self.path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a corrupt or incompatible file
            raise DetectorError(f"cannot load {self.path}: {exc}") from exc
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        expected = {"audio": [N_FRAMES, N_AUDIO], "words": [N_WORDS], "silence": [1]}
        self.uses_embedding = "emb" in shapes
        if self.uses_embedding:
            expected["emb"] = [EMB_STEPS, EMB_DIM]
        if any(shapes.get(name, [None])[1:] != dims for name, dims in expected.items()):
            raise DetectorError(f"{self.path}: inputs {shapes} do not match the feature code")
        self.front: FrontEnd | None = shared_front_end() if self.uses_embedding else None

    def run(
        self,
        audio: npt.NDArray[np.float32],
        words: npt.NDArray[np.float32],
        silence: npt.NDArray[np.float32],
        emb: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Batched: audio [B, N_FRAMES, N_AUDIO], words [B, N_WORDS], silence [B] (and, for a model
        with the embedding input, emb [B, EMB_STEPS, EMB_DIM]) -> P(finished) [B]."""
        feed = {
            "audio": np.ascontiguousarray(audio, dtype=np.float32),
            "words": np.ascontiguousarray(words, dtype=np.float32),
            "silence": np.asarray(silence, dtype=np.float32).reshape(-1, 1),
        }
        if self.uses_embedding:
            if emb is None:
                raise DetectorError(f"{self.path} needs the speech-embedding input")
            feed["emb"] = np.ascontiguousarray(emb, dtype=np.float32)
        out = self.session.run(["probability"], feed)[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)


class OnnxEndOfTurnStream:
    """One call's state: the recent caller audio at 8 kHz and the features of the last speech end."""

    def __init__(self, model: OnnxEndOfTurnModel, input_rate: int | None = None) -> None:
        self.model = model
        self._rate = input_rate
        self._resampler: StreamResampler | None = None
        self._ring = RingBuffer(int(HISTORY_S * SAMPLE_RATE), dtype=np.int16)
        self._received = 0  # input samples, at the input rate
        self._cached_end: int | None = None
        self._cached: npt.NDArray[np.float32] | None = None
        self._cached_emb: npt.NDArray[np.float32] | None = None
        self._emb_stream = EmbeddingStream() if model.uses_embedding else None

    @property
    def samples(self) -> int:
        """The stream's clock, in 8 kHz samples (audio received so far, whatever its rate).

        With a 16 kHz call the resampler holds back a few ms of output: the ring buffer then ends a
        little before the clock, and a window's tail is only complete (and cached) once it is in.
        """
        rate = self._rate or SAMPLE_RATE
        return self._received * SAMPLE_RATE // rate

    def push(self, caller: Pcm) -> None:
        if self._rate is None:
            self._rate = _FRAME_RATES.get(len(caller), SAMPLE_RATE)
        self._received += len(caller)
        if self._rate != SAMPLE_RATE:
            if self._resampler is None:
                self._resampler = StreamResampler(self._rate, SAMPLE_RATE)
            caller = self._resampler.process(caller)
        self._ring.write(caller)
        if self._emb_stream is not None:
            self._emb_stream.push(caller)

    def features(self, speech_end: float) -> npt.NDArray[np.float32]:
        """The audio window of the speech end at `speech_end` seconds (cached per speech end)."""
        return self.inputs(speech_end)[0]

    def inputs(self, speech_end: float) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
        """The prosodic window and (for a model with the embedding input) the embedding steps of the
        speech end at `speech_end` seconds; cached per speech end once both are complete."""
        end = round(speech_end * SAMPLE_RATE) // HOP * HOP
        if self._cached is None or self._cached_end != end:
            lo = max(self._ring.available_from, end - CONTEXT_FRAMES * HOP - LEFT_PAD)
            hi = min(self._ring.total_written, end + TAIL_FRAMES * HOP)
            audio = self._ring.read(lo, hi) if hi > lo else np.zeros(0, dtype=np.int16)
            feats = window_features(audio, lo, end)
            complete = hi >= end + TAIL_FRAMES * HOP
            emb = None
            if self._emb_stream is not None:
                assert self.model.front is not None
                k0, k1 = embedding_steps(round(speech_end * SAMPLE_RATE))
                first, last = max(k0, 0), min(k1, self._emb_stream.steps)
                if last <= first:  # no step yet (a speech end in the call's first 80 ms)
                    steps = np.zeros((1, EMB_DIM), dtype=np.float32)
                else:
                    steps = embed_steps(self.model.front, [(self._emb_stream, first, last)])[0]
                emb = embedding_window(steps, k0)
                complete = complete and last == k1
            if not complete:
                return feats, emb  # the tail is not complete yet: do not cache a partial window
            self._cached, self._cached_emb, self._cached_end = feats, emb, end
        assert self._cached is not None
        return self._cached, self._cached_emb

    def probability(self, speech_end: float, words: Sequence[str]) -> float:
        silence = max(0.0, self.samples / SAMPLE_RATE - speech_end)
        feats, emb = self.inputs(speech_end)
        p = self.model.run(
            feats[None],
            word_features(words)[None],
            np.array([silence], dtype=np.float32),
            None if emb is None else emb[None],
        )
        return float(p[0])


class OnnxEndOfTurnDetector:
    """`turn_detection: model` with the committed model (loaded once; streams are cheap)."""

    name = "onnx"
    sample_rate = SAMPLE_RATE

    def __init__(self, path: str | Path | None = None) -> None:
        self.model = OnnxEndOfTurnModel(path)

    def open_stream(self) -> OnnxEndOfTurnStream:
        return OnnxEndOfTurnStream(self.model)
