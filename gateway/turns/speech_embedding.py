"""Speech embeddings learned from real speech: openWakeWord's front end (`models/frontend/`), in onnxruntime.

Theory of operation
-------------------
Two networks, converted once from their TFLite originals (`models/frontend/convert.py`, Apache-2.0):

* the **mel network** turns 1,760 samples of 16 kHz audio (int16 scale, as float) into 8 frames of 32 log-mel
  bands (10 ms hop, 32 ms window, a top-dB floor taken over those 1,760 samples);
* the **embedding network** (Google's speech embedding, trained on real speech) turns 76 mel frames
  (0.775 s) into one 96-dimensional vector.

Both are run in their streaming form: every **step** of 80 ms (640 samples at 8 kHz, 1,280 at 16 kHz) the
mel network sees the newest 1,760 samples and yields 8 new frames, and the embedding network sees the newest
76 frames. Step ``k`` therefore ends at 8 kHz sample ``(k + 1) * 640`` and its embedding summarises the
0.775 s before that. The mel network's top-dB floor depends on which samples it is given, so running it over
a whole clip gives other numbers than the streaming form; training clips go through this very module, step
by step, so the model never sees features the runtime would not produce.

Calls arrive at 8 kHz. A fixed polyphase FIR doubles the rate (`Upsampler2x`, streaming, state carried
from frame to frame), so a clip upsampled in one piece equals the same clip upsampled frame by frame.

Nothing is computed when a frame is pushed: an `EmbeddingStream` only keeps the last seconds of 16 kHz
audio. `embed_steps` computes the steps that a caller asks for (the barge-in detector asks only while an
overlap is open), for many streams at once: one mel run for every missing mel chunk of every stream, then
one embedding run for every requested step. Mel chunks are cached per stream, so consecutive queries reuse
them. Each batch item is computed exactly as it would be alone (the converted mel graph takes its top-dB
floor per item), so batched equals single.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.turns.model_files import model_file

F32 = npt.NDArray[np.float32]

SAMPLE_RATE = 8000
STEP = 640  # 8 kHz samples per step (80 ms)
STEP_SECONDS = STEP / SAMPLE_RATE
MEL_WINDOW = 1760  # 16 kHz samples the mel network sees per step
MEL_HOP = 1280  # 16 kHz samples per step
MEL_FRAMES_PER_STEP = 8
N_MELS = 32
EMB_FRAMES = 76
EMB_DIM = 96
# Mel chunks (steps) an embedding reaches back: 76 frames = the newest 9.5 chunks.
EMB_CHUNKS = -(-EMB_FRAMES // MEL_FRAMES_PER_STEP)
BUFFER_SECONDS = 8.0

# The networks, read as package data (in a checkout: links to models/frontend/, with their recipe).
FRONTEND_DIR = model_file("melspectrogram.onnx").parent


def _lowpass_taps(n_taps: int = 96, cutoff: float = 0.24) -> F32:
    """Kaiser-windowed sinc for 2x interpolation: passes the telephone band (to 3.4 kHz), stops the images
    above 4.3 kHz (cutoff as a fraction of the 16 kHz rate); gain 2, so each polyphase branch has gain 1."""
    n = np.arange(n_taps) - (n_taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(n_taps, 8.0)
    return (2 * h / h.sum()).astype(np.float32)


class Upsampler2x:
    """8 kHz -> 16 kHz, causal polyphase FIR with carried state (streaming == one-shot)."""

    TAPS = _lowpass_taps()

    def __init__(self) -> None:
        self._even = self.TAPS[0::2].astype(np.float64)
        self._odd = self.TAPS[1::2].astype(np.float64)
        self._hist = np.zeros(len(self._even) - 1, dtype=np.float64)

    def process(self, x: npt.NDArray[np.generic]) -> F32:
        if len(x) == 0:
            return np.zeros(0, dtype=np.float32)
        buf = np.concatenate([self._hist, np.asarray(x, dtype=np.float64)])
        self._hist = buf[len(buf) - len(self._hist) :]
        out = np.empty(2 * len(x), dtype=np.float64)
        out[0::2] = np.convolve(buf, self._even, mode="valid")
        out[1::2] = np.convolve(buf, self._odd, mode="valid")
        return out.astype(np.float32)


class FrontEnd:
    """The mel and embedding networks (onnxruntime, one thread each, shared by every stream)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        import onnxruntime as ort

        d = Path(directory or os.environ.get("GATEWAY_FRONTEND_DIR") or FRONTEND_DIR)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._mel = ort.InferenceSession(
            str(d / "melspectrogram.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._emb = ort.InferenceSession(
            str(d / "embedding_model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    def mel(self, chunks: F32) -> F32:
        """[B, 1760] 16 kHz samples -> [B, 8, 32] mel frames, scaled as the embedding network expects."""
        with self._lock:
            out = self._mel.run(None, {"input": np.ascontiguousarray(chunks, dtype=np.float32)})[0]
        return (out.reshape(len(chunks), MEL_FRAMES_PER_STEP, N_MELS) / 10.0 + 2.0).astype(np.float32)

    def embed(self, windows: F32) -> F32:
        """[B, 76, 32] mel frames -> [B, 96]."""
        x = np.ascontiguousarray(windows, dtype=np.float32)[..., None]
        with self._lock:
            out = self._emb.run(None, {"input": x})[0]
        return out.reshape(len(windows), EMB_DIM).astype(np.float32)


@functools.cache
def shared_front_end() -> FrontEnd:
    """One `FrontEnd` per process (its sessions are thread-safe behind its lock)."""
    return FrontEnd()


class EmbeddingStream:
    """One call's audio for the front end: 16 kHz history, mel chunks cached by step index."""

    def __init__(self) -> None:
        self._up = Upsampler2x()
        self._cap = int(BUFFER_SECONDS * 2 * SAMPLE_RATE)
        self._buf = np.zeros(2 * self._cap, dtype=np.float32)
        self._start = 0  # absolute 16 kHz index of _buf[0]
        self._fill = 0
        self._mel: dict[int, F32] = {}

    @property
    def steps(self) -> int:
        """Complete steps so far (step k is complete once (k + 1) * 640 samples at 8 kHz arrived)."""
        return (self._start + self._fill) // MEL_HOP

    def push(self, pcm: npt.NDArray[np.generic]) -> None:
        """Append 8 kHz audio (int16, or float in int16 scale)."""
        self.push_16k(self._up.process(pcm))

    def push_16k(self, x: F32) -> None:
        """Append audio that is already at 16 kHz (int16 scale)."""
        if self._fill + len(x) > len(self._buf):
            keep = max(0, self._cap - len(x))
            self._buf[:keep] = self._buf[self._fill - keep : self._fill]
            self._start += self._fill - keep
            self._fill = keep
            # Mel chunks whose audio is gone can never be asked for again.
            first = self._start // MEL_HOP
            for c in [c for c in self._mel if c < first]:
                del self._mel[c]
        self._buf[self._fill : self._fill + len(x)] = x
        self._fill += len(x)

    def forget_before(self, step: int) -> None:
        """Drop cached mel chunks before `step - EMB_CHUNKS` (no query will reach them)."""
        for c in [c for c in self._mel if c < step - EMB_CHUNKS]:
            del self._mel[c]

    def _chunk_audio(self, c: int) -> F32:
        a, b = (c + 1) * MEL_HOP - MEL_WINDOW, (c + 1) * MEL_HOP
        out = np.zeros(b - a, dtype=np.float32)
        lo, hi = max(a, self._start), min(b, self._start + self._fill)
        if hi > lo:
            out[lo - a : hi - a] = self._buf[lo - self._start : hi - self._start]
        return out

    def _window(self, k: int) -> F32:
        frames = np.concatenate([self._mel[c] for c in range(k - EMB_CHUNKS + 1, k + 1)])
        return frames[-EMB_FRAMES:]


def embed_steps(front: FrontEnd, requests: Sequence[tuple[EmbeddingStream, int, int]]) -> list[F32]:
    """Embeddings of steps [k0, k1) for each (stream, k0, k1): [k1 - k0, 96] each; batched across streams.

    Steps must be complete (`k1 <= stream.steps`). Steps before the stream's first sample see silence.
    """
    missing: list[tuple[EmbeddingStream, int]] = []
    for stream, k0, k1 in requests:
        if k1 > stream.steps:
            raise ValueError(f"step {k1 - 1} is not complete (stream has {stream.steps} steps)")
        missing += [(stream, c) for c in range(k0 - EMB_CHUNKS + 1, k1) if c not in stream._mel]
    if missing:
        mels = front.mel(np.stack([s._chunk_audio(c) for s, c in missing]))
        for (s, c), m in zip(missing, mels, strict=True):
            s._mel[c] = m
    windows = [s._window(k) for s, k0, k1 in requests for k in range(k0, k1)]
    if not windows:
        return [np.zeros((0, EMB_DIM), dtype=np.float32) for _ in requests]
    emb = front.embed(np.stack(windows))
    out, i = [], 0
    for _, k0, k1 in requests:
        out.append(emb[i : i + (k1 - k0)])
        i += k1 - k0
    return out


def embed_clip(front: FrontEnd, pcm: npt.NDArray[np.generic], chunk: int = 160) -> F32:
    """Every step's embedding of a whole 8 kHz clip, pushed `chunk` samples at a time as a live call would."""
    stream = EmbeddingStream()
    for i in range(0, len(pcm), chunk):
        stream.push(pcm[i : i + chunk])
    return embed_steps(front, [(stream, 0, stream.steps)])[0]
