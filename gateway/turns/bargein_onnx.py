"""The local adaptive barge-in detector: the ONNX model of `models/bargein/`, run with onnxruntime.

Theory of operation
-------------------
A stream keeps the last few seconds of caller line audio and of the agent playout (8 kHz int16; a 16 kHz
call is resampled on the way in). While an overlap is open the session asks `probability(onset)`. The
model's window starts `PRE_ONSET_FRAMES` (1.0 s) before the onset and grows with the overlap up to
`MAX_FRAMES`; the network is causal (strided convolutions, then a GRU, one output per 40 ms step), so the
stream keeps the GRU state between queries and each query only computes the steps that are new since
the last one (about 2-3 steps per 100 ms). The first query of an overlap computes the 1.0 s before the
onset as well. Features are log-mel energies of both channels (`bargein_features`), computed from the
buffered audio only for the frames the model needs, so pushing a frame is just a copy.

`OnnxBargeInDetector.probability_batch` answers the queries of many streams with one onnxruntime run per
distinct number of new steps (calls sharing a process share the run): same numbers as the per-stream path.
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

from gateway.turns.bargein_features import (
    HOP,
    MAX_FRAMES,
    PRE_ONSET_FRAMES,
    SAMPLE_RATE,
    TIME_STRIDE,
    WIN,
    logmel,
)
from gateway.turns.detectors import DetectorError, Pcm
from gateway.turns.model_files import model_file

DEFAULT_MODEL = model_file("bargein.onnx")
# Frames of left context the first convolution needs before the first step of a window.
CONTEXT_FRAMES = 6
MAX_STEPS = (MAX_FRAMES - CONTEXT_FRAMES) // TIME_STRIDE
# Audio kept per stream; a window never reaches further back than onset - 1.06 s and is capped at
# MAX_FRAMES, so this only matters for queries that come very late.
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
    onset_frame: int
    first_frame: int  # first frame of the window (onset - 1.0 s)
    steps: int = 0
    h: F32 | None = None
    prob: float = 0.0


@dataclass
class _Job:
    """The model input for one stream's query."""

    stream: OnnxBargeInStream
    overlap: _Overlap
    steps: int
    x_caller: F32
    x_agent: F32


class OnnxBargeInStream:
    def __init__(self, detector: OnnxBargeInDetector) -> None:
        self._det = detector
        cap = int(BUFFER_SECONDS * SAMPLE_RATE)
        self._caller = _Ring(cap)
        self._agent = _Ring(cap)
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

    def probability(self, onset: float) -> float:
        job = self._prepare(onset)
        if job is not None:
            self._det.run([job])
        assert self._overlap is not None
        return self._overlap.prob

    # -- internals ---------------------------------------------------------------------------------

    def _prepare(self, onset: float) -> _Job | None:
        onset_frame = round(onset * SAMPLE_RATE / HOP)
        ov = self._overlap
        if ov is None or ov.onset_frame != onset_frame:
            ov = self._overlap = _Overlap(onset_frame, onset_frame - PRE_ONSET_FRAMES)
        frames_avail = self.samples // HOP  # frame i is complete once (i + 1) * HOP samples arrived
        total = min((frames_avail - ov.first_frame) // TIME_STRIDE, MAX_STEPS)
        steps = total - ov.steps
        if steps <= 0:
            return None
        f0 = ov.first_frame + ov.steps * TIME_STRIDE - CONTEXT_FRAMES
        f1 = ov.first_frame + total * TIME_STRIDE
        a, b = f0 * HOP - (WIN - HOP), f1 * HOP
        x_c = logmel(self._caller.read(a, b), first_frame=1)
        x_a = logmel(self._agent.read(a, b), first_frame=1)
        return _Job(self, ov, steps, x_c, x_a)


class OnnxBargeInDetector:
    """`BargeInDetector` backed by `models/bargein/bargein.onnx` (onnxruntime, one thread).

    The model path defaults to the committed file, or `$GATEWAY_BARGEIN_MODEL` when that is set.
    """

    name = "bargein-onnx"

    def __init__(self, model_path: str | Path | None = None, sample_rate: int = SAMPLE_RATE) -> None:
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
        self._hidden = int(self._session.get_inputs()[2].shape[2])
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
        by_steps: dict[int, list[_Job]] = {}
        for job in jobs:
            by_steps.setdefault(job.steps, []).append(job)
        for group in by_steps.values():
            xc = np.stack([j.x_caller for j in group])
            xa = np.stack([j.x_agent for j in group])
            h0 = np.stack(
                [
                    j.overlap.h if j.overlap.h is not None else np.zeros((1, self._hidden), dtype=np.float32)
                    for j in group
                ],
                axis=1,
            )
            try:
                with self._lock:
                    prob, h = self._session.run(None, {"x_caller": xc, "x_agent": xa, "h0": h0})
            except Exception as exc:  # onnxruntime raises its own exception types
                raise DetectorError(f"barge-in model failed: {exc}") from exc
            for i, job in enumerate(group):
                job.overlap.h = np.ascontiguousarray(h[:, i, :])
                job.overlap.steps += job.steps
                job.overlap.prob = float(prob[i, -1])
