"""The worker supervisor: spawn pjsua2 worker processes, watch their health, restart, drain.

Each worker runs in its own process group (so a kill takes its threads and children with it), on
a fixed loopback SIP port (the front's dispatcher list names these ports, so a restarted worker
comes back where the front expects it). Health: a worker must send a STATS heartbeat over its
link at least every `heartbeat_timeout` seconds, or it is killed and restarted. A worker that dies
cannot hang up its calls: `on_worker_lost` (the front's `end_dialogs_of`) ends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.edges.sip.host import SessionHost, WorkerLink
from gateway.edges.sip.host_pool import HostPool, LinkView
from gateway.edges.sip.procs import die_with_parent
from gateway.edges.sip.worker_options import WorkerOptions

log = logging.getLogger(__name__)


@dataclass
class WorkerSpec:
    options: WorkerOptions  # everything the worker is told (its SIP port included)

    @property
    def index(self) -> int:
        return self.options.index

    @property
    def sip_port(self) -> int:
        return self.options.endpoint.sip_port


@dataclass
class WorkerProcess:
    spec: WorkerSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0


class Supervisor:
    def __init__(
        self,
        specs: Sequence[WorkerSpec],
        host: SessionHost | HostPool,
        run_dir: Path,
        start_timeout: float = 20.0,
        heartbeat_timeout: float = 5.0,
    ) -> None:
        self.workers = [WorkerProcess(spec) for spec in specs]
        self.host = host
        self.run_dir = run_dir
        self.start_timeout = start_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        # SIP port of a worker that died -> the Call-IDs the front ended
        self.on_worker_lost: Callable[[int], Awaitable[list[str]]] | None = None

    def command(self, spec: WorkerSpec) -> list[str]:
        return [sys.executable, "-m", "gateway.edges.sip.worker", "--options", spec.options.to_json()]

    async def _spawn(self, wp: WorkerProcess) -> None:
        log_path = self.run_dir / f"worker{wp.spec.index}.log"
        with open(log_path, "ab") as log_file:
            wp.proc = await asyncio.create_subprocess_exec(
                *self.command(wp.spec),
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                preexec_fn=die_with_parent,
            )
        wp.started_at = time.monotonic()
        assert wp.proc.stdout is not None
        try:
            line = await asyncio.wait_for(wp.proc.stdout.readline(), self.start_timeout)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY"):
            self._kill(wp)
            raise RuntimeError(f"worker {wp.spec.index} did not start; see {log_path}")
        log.info("worker %d ready on port %d (pid %d)", wp.spec.index, wp.spec.sip_port, wp.proc.pid)

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(*(self._spawn(wp) for wp in self.workers))
        self._tasks = [asyncio.create_task(self._watch(wp)) for wp in self.workers]
        self._tasks.append(asyncio.create_task(self._health()))

    async def _watch(self, wp: WorkerProcess) -> None:
        backoff = 0.5
        while not self.stopping:
            assert wp.proc is not None
            code = await wp.proc.wait()
            if self.stopping:
                return
            log.error("worker %d exited with %s; restarting", wp.spec.index, code)
            # Its link is gone too: the host ends that worker's calls with reason "worker_lost".
            await self._end_calls_of(wp)
            if time.monotonic() - wp.started_at > 30:
                backoff = 0.5
            await asyncio.sleep(backoff)  # restart back-off, not synchronisation
            backoff = min(backoff * 2, 10.0)
            try:
                await self._spawn(wp)
                wp.restarts += 1
            except RuntimeError:
                log.exception("restart of worker %d failed", wp.spec.index)

    async def _end_calls_of(self, wp: WorkerProcess) -> None:
        """The BYEs a dead worker could not send: its callers would hear dead air otherwise."""
        if self.on_worker_lost is None:
            return
        try:
            ended = await self.on_worker_lost(wp.spec.sip_port)
        except Exception:
            log.exception("ending the calls of worker %d failed", wp.spec.index)
            return
        if ended:
            log.warning(
                "worker %d died in %d calls; the front ended them (BYE, or 503 while ringing): %s",
                wp.spec.index,
                len(ended),
                ", ".join(ended),
            )

    async def _health(self) -> None:
        while True:
            await asyncio.sleep(1.0)  # periodic check
            if self.stopping:
                # Draining workers close their links and take a while to exit: that is not a
                # missed heartbeat (stop() kills whatever is left when the drain is over).
                return
            now = time.monotonic()
            for wp in self.workers:
                if wp.proc is None or wp.proc.returncode is not None:
                    continue
                link = self.host.workers.get(wp.spec.index)
                seen = link.seen(now) if link is not None else wp.started_at
                if now - max(seen, wp.started_at) > self.heartbeat_timeout:
                    log.error("worker %d missed its heartbeat; killing it", wp.spec.index)
                    self._kill(wp)

    def _kill(self, wp: WorkerProcess, sig: int = signal.SIGKILL) -> None:
        if wp.proc is not None and wp.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(wp.proc.pid, sig)

    def kill_worker(self, index: int) -> None:
        """Kill one worker outright (tests, operators): the supervisor restarts it."""
        self._kill(self.workers[index])

    async def drain(self, timeout: float) -> None:
        """New calls get 503; calls in progress may finish within `timeout`; then workers exit."""
        self.stopping = True
        links: list[WorkerLink | LinkView] = list(self.host.workers.values())
        for link in links:
            link.drain(timeout)
        await self._wait_all(timeout + 3.0)

    async def stop(self) -> None:
        self.stopping = True
        for wp in self.workers:
            self._kill(wp, signal.SIGINT)
        await self._wait_all(3.0)
        for wp in self.workers:
            self._kill(wp)
        await self._wait_all(2.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait_all(self, timeout: float) -> None:
        procs = [wp.proc for wp in self.workers if wp.proc is not None and wp.proc.returncode is None]
        if procs:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=timeout)
