"""The local adaptive barge-in detector: the ONNX model of `models/bargein/`, run with onnxruntime.

Theory of operation
-------------------
A stream keeps the last seconds of caller line audio and of the agent playout (8 kHz int16; a 16 kHz call
is resampled on the way in). Pushing a frame only copies it. While an overlap is open the session asks
`probability(onset)`. The model reads one vector per 80 ms step (`bargein_features`): the caller's speech
embedding from the front end learned from real speech (`speech_embedding`), and the mean log-mel energies
of the caller line and of the agent playout. Its window starts at the step that holds `PRE_ONSET_S`
(0.24 s) before the onset and grows with the overlap up to `MAX_STEPS`. The network is causal (a GRU, one
output per step), so the stream keeps the GRU state between queries and each query computes only the
steps that completed since the last one (one or two per 100 ms query; the first query of an overlap
also computes the steps before the onset). Nothing is computed outside overlaps.

`OnnxBargeInDetector.probability_batch` answers the queries of many streams together: one front-end run
(mel, then embedding) for all their new steps, and one model run per distinct number of new steps. Same
numbers as the per-stream path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.turns.bargein_features import HOP, SAMPLE_RATE, STEP, WIN, step_logmel
from gateway.turns.detectors import DetectorError, Pcm
from gateway.turns.model_files import model_file
from gateway.turns.speech_embedding import EmbeddingStream, FrontEnd, embed_steps, shared_front_end

DEFAULT_MODEL = model_file("bargein.onnx")
# The model's window starts at the step holding this long before the onset, and is capped at MAX_STEPS.
PRE_ONSET_S = 0.24
MAX_STEPS = 40
# Audio kept per stream (the front end keeps its own 16 kHz copy of the caller line).
BUFFER_SECONDS = 6.0

F32 = npt.NDArray[np.float32]


class _Ring:
    """The newest `capacity` samples of one channel, addressed by absolute sample index."""

    def __init__(self, capacity: int) -> None:
        self.buf = np.zeros(2 * capacity, dtype=np.int16)
        self.capacity = capacity
        self.start = 0  # absolute index of buf[0]
        self.fill = 0  # samples in buf

    @property
    def end(self) -> int:
        return self.start + self.fill

    def append(self, x: npt.NDArray[np.int16]) -> None:
        if len(x) > self.capacity:
            self.start += self.fill + len(x) - self.capacity
            self.buf[: self.capacity] = x[-self.capacity :]
            self.fill = self.capacity
            return
        if self.fill + len(x) > len(self.buf):
            keep = self.capacity - len(x)
            self.buf[:keep] = self.buf[self.fill - keep : self.fill]
            self.start += self.fill - keep
            self.fill = keep
        self.buf[self.fill : self.fill + len(x)] = x
        self.fill += len(x)

    def read(self, a: int, b: int) -> npt.NDArray[np.int16]:
        """Samples [a, b) (absolute); zeros where they are before the stream or no longer kept."""
        out = np.zeros(b - a, dtype=np.int16)
        lo, hi = max(a, self.start), min(b, self.end)
        if hi > lo:
            out[lo - a : hi - a] = self.buf[lo - self.start : hi - self.start]
        return out


@dataclass
class _Overlap:
    onset: float
    first_step: int  # first step of the window
    steps: int = 0
    h: F32 | None = None
    prob: float = 0.0


@dataclass
class _Job:
    """One stream's query: the steps [k0, k1) to compute."""

    stream: OnnxBargeInStream
    overlap: _Overlap
    k0: int
    k1: int

    @property
    def steps(self) -> int:
        return self.k1 - self.k0


class OnnxBargeInStream:
    def __init__(self, detector: OnnxBargeInDetector) -> None:
        self._det = detector
        cap = int(BUFFER_SECONDS * SAMPLE_RATE)
        self._caller = _Ring(cap)
        self._agent = _Ring(cap)
        self._front = EmbeddingStream()
        self._overlap: _Overlap | None = None
        self._resamplers: tuple[Any, Any] | None = None
        if detector.sample_rate != SAMPLE_RATE:
            import soxr

            self._resamplers = (
                soxr.ResampleStream(detector.sample_rate, SAMPLE_RATE, 1, dtype="int16"),
                soxr.ResampleStream(detector.sample_rate, SAMPLE_RATE, 1, dtype="int16"),
            )

    @property
    def samples(self) -> int:
        """8 kHz samples pushed so far."""
        return self._caller.end

    def push(self, caller: Pcm, agent: Pcm) -> None:
        if len(caller) != len(agent):
            raise ValueError(f"caller and agent frames differ in length ({len(caller)} != {len(agent)})")
        c = np.asarray(caller, dtype=np.int16)
        a = np.asarray(agent, dtype=np.int16)
        if self._resamplers is not None:
            c = self._resamplers[0].resample_chunk(c)
            a = self._resamplers[1].resample_chunk(a)
            n = min(len(c), len(a))
            c, a = c[:n], a[:n]
        self._caller.append(c)
        self._agent.append(a)
        self._front.push(c)

    def probability(self, onset: float) -> float:
        job = self._prepare(onset)
        if job is not None:
            self._det.run([job])
        assert self._overlap is not None
        return self._overlap.prob

    # -- internals ---------------------------------------------------------------------------------

    def _prepare(self, onset: float) -> _Job | None:
        ov = self._overlap
        if ov is None or abs(ov.onset - onset) > 1e-6:
            first = int(np.floor((onset - PRE_ONSET_S) * SAMPLE_RATE / STEP))
            ov = self._overlap = _Overlap(onset, max(first, 0))
            self._front.forget_before(ov.first_step)
        total = min(self.samples // STEP - ov.first_step, MAX_STEPS)
        if total <= ov.steps:
            return None
        return _Job(self, ov, ov.first_step + ov.steps, ov.first_step + total)

    def _levels(self, k0: int, k1: int) -> tuple[F32, F32]:
        """Mean log-mel energies of the caller line and the agent playout for steps [k0, k1)."""
        a, b = k0 * STEP - (WIN - HOP), k1 * STEP
        return (
            step_logmel(self._caller.read(a, b), with_context=True)[: k1 - k0],
            step_logmel(self._agent.read(a, b), with_context=True)[: k1 - k0],
        )


class OnnxBargeInDetector:
    """`BargeInDetector` backed by `models/bargein/bargein.onnx` (onnxruntime, one thread).

    The model path defaults to the committed file, or `$GATEWAY_BARGEIN_MODEL` when that is set.
    """

    name = "bargein-onnx"

    def __init__(
        self,
        model_path: str | Path | None = None,
        sample_rate: int = SAMPLE_RATE,
        front: FrontEnd | None = None,
    ) -> None:
        import onnxruntime as ort

        if model_path is None:
            # An override for evaluating candidate models through `gateway replay` / `eval-bargein`.
            model_path = os.environ.get("GATEWAY_BARGEIN_MODEL") or DEFAULT_MODEL
        path = Path(model_path)
        if not path.exists():
            raise DetectorError(f"barge-in model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._hidden = int(self._session.get_inputs()[1].shape[2])
        try:
            self._front = front or shared_front_end()
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DetectorError(f"speech front end could not be loaded: {exc}") from exc
        self._lock = threading.Lock()
        self.sample_rate = sample_rate
        self.model_path = path

    @classmethod
    def from_path(cls, path: str | Path, sample_rate: int = SAMPLE_RATE) -> OnnxBargeInDetector:
        return cls(path, sample_rate)

    def open_stream(self) -> OnnxBargeInStream:
        return OnnxBargeInStream(self)

    def probability_batch(self, queries: Sequence[tuple[OnnxBargeInStream, float]]) -> list[float]:
        """Answer `stream.probability(onset)` for many streams at once (one run per step count)."""
        jobs = [j for j in (s._prepare(onset) for s, onset in queries) if j is not None]
        self.run(jobs)
        out = []
        for stream, _ in queries:
            assert stream._overlap is not None
            out.append(stream._overlap.prob)
        return out

    def run(self, jobs: Sequence[_Job]) -> None:
        try:
            embs = embed_steps(self._front, [(j.stream._front, j.k0, j.k1) for j in jobs])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DetectorError(f"speech front end failed: {exc}") from exc
        by_steps: dict[int, list[tuple[_Job, F32]]] = {}
        for job, emb in zip(jobs, embs, strict=True):
            caller, agent = job.stream._levels(job.k0, job.k1)
            by_steps.setdefault(job.steps, []).append((job, np.concatenate([emb, caller, agent], axis=1)))
        for group in by_steps.values():
            x = np.stack([f for _, f in group]).astype(np.float32)
            h0 = np.stack(
                [
                    j.overlap.h if j.overlap.h is not None else np.zeros((1, self._hidden), dtype=np.float32)
                    for j, _ in group
                ],
                axis=1,
            )
            try:
                with self._lock:
                    prob, h = self._session.run(None, {"x": x, "h0": h0})
            except Exception as exc:  # onnxruntime raises its own exception types
                raise DetectorError(f"barge-in model failed: {exc}") from exc
            for i, (job, _) in enumerate(group):
                job.overlap.h = np.ascontiguousarray(h[:, i, :])
                job.overlap.steps += job.steps
                job.overlap.prob = float(prob[i, -1])
