"""Local STT decoders in processes of their own, behind a bounded queue.

PocketSphinx holds the GIL while it decodes: run in a thread of the session host, one utterance
(a second or more of CPU) stops that host's event loop, and with it every other call's frames,
barge-in decisions and replies. So a `BatchEngine` that can be rebuilt from a `Recipe` (a
module-level factory and picklable arguments) decodes in a `DecoderPool`: `processes` spawned
processes (each builds an engine once per recipe and keeps it), fed at most `max_queue`
utterances at a time per session-host process. An utterance beyond that fails at once with a
`BackendError` (that call loses that transcript, the others keep theirs) instead of queueing
behind work it cannot catch up with. Each decode's latency goes to the `on_latency` hooks
(Prometheus `gateway_stt_latency_seconds`, via the runtime).

`configure(processes=0)` decodes in the engine's thread instead (the behaviour before the pool).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.audio.frames import Pcm
from gateway.audio.resample import resample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """How a decoder process builds an engine: `factory(*args)`; `key` names the configuration."""

    factory: Callable[..., Any]
    args: tuple[Any, ...]
    key: str


class QueueFull(Exception):
    pass


# -- in the decoder processes --------------------------------------------------------------------
_ENGINES: dict[str, Any] = {}


def _engine(recipe: Recipe) -> Any:
    engine = _ENGINES.get(recipe.key)
    if engine is None:
        engine = _ENGINES[recipe.key] = recipe.factory(*recipe.args)
    return engine


def _decode(recipe: Recipe, pcm: Pcm, sample_rate: int, language: str) -> list[Any]:
    engine = _engine(recipe)
    audio = resample(pcm, sample_rate, engine.rate) if sample_rate != engine.rate else pcm
    return list(engine.transcribe(audio, language))


def _build(recipe: Recipe, hold: float) -> None:
    _engine(recipe)
    time.sleep(hold)  # keep this process busy so the pool hands the next build to another one


# -- in the session host ------------------------------------------------------------------------
class DecoderPool:
    def __init__(self, processes: int = 1, max_queue: int = 16) -> None:
        self.processes = processes
        self.max_queue = max_queue
        self.pending = 0
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.processes, mp_context=multiprocessing.get_context("spawn")
            )
            atexit.register(self.shutdown)  # before the interpreter tears the modules down
        return self._executor

    def warm(self, recipe: Recipe) -> None:
        """Build `recipe`'s engine in every decoder process now (models load in seconds)."""
        jobs = [self._pool().submit(_build, recipe, 0.5 if self.processes > 1 else 0.0)]
        jobs += [self._pool().submit(_build, recipe, 0.5) for _ in range(self.processes - 1)]
        concurrent.futures.wait(jobs)
        for job in jobs:
            job.result()  # a model that cannot load fails the start, not the first call

    async def decode(self, recipe: Recipe, pcm: Pcm, sample_rate: int, language: str) -> list[Any]:
        if self.pending >= self.max_queue:
            raise QueueFull(f"{self.pending} utterances already wait for a decoder (stt_max_queue)")
        self.pending += 1
        started = time.monotonic()
        try:
            job = self._pool().submit(_decode, recipe, pcm, sample_rate, language)
            return await asyncio.wrap_future(job)
        finally:
            self.pending -= 1
            for hook in on_latency:
                hook(time.monotonic() - started)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


# Called with each decode's seconds (queue wait included); the runtime exports them.
on_latency: list[Callable[[float], None]] = []
_POOL: DecoderPool | None = DecoderPool()


def configure(processes: int, max_queue: int) -> None:
    """Decoder processes per session host (0: decode in a thread, no pool) and the queue bound."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown()
    _POOL = DecoderPool(processes, max_queue) if processes > 0 else None


def pool() -> DecoderPool | None:
    return _POOL
