"""Admission control of a session host: refuse new calls before the calls in progress degrade.

Two parts, kept apart:

- `Admission`, a pure state machine fed a timestamped `Load` sample about every 250 ms. While
  admitting, a sample over any limit closes the door at once; while refusing, the door opens again
  only after every measure has stayed under `resume_below` × its limit for `hold` seconds.
- `LoadMeter`, the I/O side inside the host's event loop: the loop's lag (how late a 50 ms sleep
  wakes, averaged over the last second: one slow turn, a call set-up or a collection, is not
  overload; a loop that is late all the time is), the host process's CPU and the machine's (from
  `/proc/stat`) over the last second, plus probes the host is given (utterances queued for a local
  STT).

The host tells its workers (wire `ADMIT`); a worker whose host refuses answers new INVITEs 503 with
Retry-After, so the Kamailio front tries a worker of another host and, when every host refuses,
the caller gets the 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    max_loop_lag: float | None = 0.05
    max_host_cpu: float | None = 0.9
    max_machine_cpu: float | None = None
    max_stt_queue: int | None = 8
    max_calls: int | None = None  # a cap, shared out among the host's workers (not a load measure)
    resume_below: float = 0.8
    hold: float = 2.0


@dataclass(frozen=True)
class Load:
    loop_lag: float = 0.0  # seconds
    host_cpu: float = 0.0  # cores
    machine_cpu: float = 0.0  # 0-1
    stt_queue: int = 0
    calls: int = 0

    def ratios(self, limits: Limits) -> dict[str, float]:
        """Each checked measure over its limit (1.0: at the limit)."""
        pairs = (
            ("loop_lag", self.loop_lag, limits.max_loop_lag),
            ("host_cpu", self.host_cpu, limits.max_host_cpu),
            ("machine_cpu", self.machine_cpu, limits.max_machine_cpu),
            ("stt_queue", self.stt_queue, limits.max_stt_queue),
        )
        return {name: value / limit for name, value, limit in pairs if limit}


@dataclass
class Admission:
    limits: Limits
    admitting: bool = True
    reason: str = ""  # the measure that closed the door
    refusals: int = 0  # times the door closed
    _calm_since: float | None = field(default=None, repr=False)

    def update(self, now: float, load: Load) -> bool:
        """Feed a sample taken at `now`; returns whether new calls are admitted."""
        ratios = load.ratios(self.limits)
        over = [name for name, r in ratios.items() if r >= 1.0]
        if self.admitting:
            if over:
                self.admitting = False
                self.reason = over[0]
                self.refusals += 1
                self._calm_since = None
            return self.admitting
        calm = all(r < self.limits.resume_below for r in ratios.values())
        if not calm:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = now
        if self._calm_since is not None and now - self._calm_since >= self.limits.hold:
            self.admitting = True
            self.reason = ""
        return self.admitting


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot; (0, 0) where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


class LoadMeter:
    """Measures the load of the process it runs in (start it inside the event loop)."""

    def __init__(self, probes: dict[str, Callable[[], float]] | None = None, interval: float = 0.05) -> None:
        self.probes = probes or {}
        self.interval = interval
        self._lags: deque[tuple[float, float]] = deque()  # (when, lag) of the last second
        self._task: asyncio.Task[None] | None = None
        self._cpu = (time.monotonic(), time.process_time(), *_machine_ticks())
        self.last = Load()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch_lag())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch_lag(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)  # the probe itself: how late does the loop wake us?
            now = time.monotonic()
            self._lags.append((now, max(0.0, now - before - self.interval)))
            while self._lags and self._lags[0][0] < now - 1.0:
                self._lags.popleft()

    def sample(self, calls: int = 0) -> Load:
        """The load since the previous sample (CPU) and over the last second (lag)."""
        now, cpu = time.monotonic(), time.process_time()
        busy, total = _machine_ticks()
        t0, cpu0, busy0, total0 = self._cpu
        self._cpu = (now, cpu, busy, total)
        stt = 0.0
        for probe in self.probes.values():
            with contextlib.suppress(Exception):
                stt += float(probe())
        self.last = Load(
            loop_lag=sum(lag for _, lag in self._lags) / len(self._lags) if self._lags else 0.0,
            host_cpu=(cpu - cpu0) / (now - t0) if now > t0 else 0.0,
            machine_cpu=(busy - busy0) / (total - total0) if total > total0 else 0.0,
            stt_queue=int(stt),
            calls=calls,
        )
        return self.last


def cpu_count() -> int:
    return os.cpu_count() or 1
