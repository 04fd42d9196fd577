"""Local STT decoding in the decoder pool: another process, a bounded queue, latency reported."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import numpy as np
import pytest

from gateway.backends.base import BackendError
from gateway.backends.stt import pool
from gateway.backends.stt.batch import BatchEngine, BatchStt, EngineWord, PooledEngine


class PidEngine(BatchEngine):
    """Says which process decoded, and how many samples it got (at its own rate)."""

    name = "pid"
    rate = 16000

    def transcribe(self, pcm: np.ndarray, language: str) -> list[EngineWord]:
        return [EngineWord(str(os.getpid()), 0.0, 0.1), EngineWord(str(len(pcm)), 0.1, 0.2)]


@pytest.fixture
def decoders() -> Iterator[list[float]]:
    latencies: list[float] = []
    pool.configure(processes=1, max_queue=1)
    pool.on_latency[:] = [latencies.append]
    try:
        yield latencies
    finally:
        pool.on_latency[:] = []
        pool.configure(processes=1, max_queue=16)


def pid_stt() -> BatchStt:
    recipe = pool.Recipe(PidEngine, (), "pid")
    return BatchStt(PooledEngine(recipe, "pid", "test", PidEngine.rate))


async def test_utterances_decode_in_another_process_at_the_engines_rate(decoders: list[float]) -> None:
    stt = pid_stt()
    words = await stt.run(np.zeros(8000, np.int16), 8000, "en")
    assert int(words[0].text) != os.getpid()
    assert words[1].text == "16000"  # 1 s of 8 kHz audio, resampled in the decoder process
    assert stt.usage().requests == 1 and stt.usage().audio_seconds == 1.0
    assert len(decoders) == 1 and decoders[0] > 0


async def test_an_utterance_beyond_the_queue_bound_fails_at_once_and_the_others_go_on(
    decoders: list[float],
) -> None:
    stt = pid_stt()
    pcm = np.zeros(800, np.int16)
    first, second = await asyncio.gather(
        stt.run(pcm, 8000, "en"), stt.run(pcm, 8000, "en"), return_exceptions=True
    )
    assert isinstance(first, list) and first[1].text == "1600"
    assert isinstance(second, BackendError) and "not transcribed" in str(second)
    words = await stt.run(pcm, 8000, "en")  # the queue has room again
    assert words[1].text == "1600"


async def test_without_decoder_processes_the_engine_runs_here() -> None:
    pool.configure(processes=0, max_queue=1)
    try:
        words = await pid_stt().run(np.zeros(800, np.int16), 8000, "en")
        assert int(words[0].text) == os.getpid()
    finally:
        pool.configure(processes=1, max_queue=16)
