"""The SIP edge as one service of `gateway serve`: session host + worker supervisor + Kamailio front."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.schema import GatewayConfig
from gateway.edges.sip.host import SessionFactory, SessionHost
from gateway.edges.sip.kamailio import FrontOptions, KamailioFront
from gateway.edges.sip.ports import free_port
from gateway.edges.sip.probe import wait_for_sip
from gateway.edges.sip.supervisor import Supervisor, WorkerSpec

log = logging.getLogger(__name__)


@dataclass
class SipPlan:
    """Everything the SIP edge needs, resolved from the configuration and the command line."""

    host: str = "127.0.0.1"
    port: int = 5060
    tcp: bool = True
    codecs: list[str] = field(default_factory=lambda: ["PCMU", "PCMA", "G722"])
    worker_caps: list[int] = field(default_factory=lambda: [4])
    routes: list[tuple[str, str]] = field(default_factory=list)
    default_agent: str | None = None
    rtp_timeout: float = 30.0
    max_duration: float = 3600.0
    ring_delay: float = 0.0
    retry_after: int = 5
    allow: list[str] = field(default_factory=list)
    invites_per_second: float = 0.0
    burst: int = 10
    auth_user: str = ""
    auth_password: str = field(default="", repr=False)
    auth_realm: str = ""
    run_dir: Path | None = None

    @property
    def max_calls(self) -> int:
        return sum(self.worker_caps)


def worker_caps(workers: int, calls_per_worker: int, max_calls: int | None) -> list[int]:
    """Calls each worker takes: `max_calls` spread evenly, never more than `calls_per_worker`."""
    per = min(max(calls_per_worker, 1), 4)
    if max_calls is None:
        return [per] * max(workers, 1)
    n = max(1, math.ceil(max_calls / per)) if workers <= 0 else max(1, workers)
    n = max(n, math.ceil(max_calls / per))
    base, extra = divmod(max_calls, n)
    caps = [min(per, base + (1 if i < extra else 0)) for i in range(n)]
    return [c for c in caps if c > 0] or [1]


def plan_from_config(cfg: GatewayConfig, workers: int | None = None, max_calls: int | None = None) -> SipPlan:
    sip = cfg.sip
    n_workers = workers or sip.workers or (os.cpu_count() or 1)
    rate = sip.rate_limit
    return SipPlan(
        host=sip.host,
        port=sip.port,
        tcp="tcp" in sip.transports,
        codecs=list(sip.codecs),
        worker_caps=worker_caps(n_workers, sip.calls_per_worker, max_calls or sip.max_calls),
        routes=[(r.match, r.agent) for r in cfg.routes],
        default_agent=cfg.default_agent,
        rtp_timeout=cfg.limits.rtp_timeout,
        max_duration=cfg.limits.max_call_duration,
        allow=list(sip.allow),
        invites_per_second=rate.invites_per_second if rate else 0.0,
        burst=rate.burst if rate else 10,
        auth_user=sip.auth.username if sip.auth else "",
        auth_password=sip.auth.password.get_secret_value() if sip.auth else "",
        auth_realm=(sip.auth.realm or "") if sip.auth else "",
    )


def load_session_factory(spec: str) -> SessionFactory:
    """`package.module:function` -> the session coroutine function."""
    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "session")
    if not callable(factory):
        raise TypeError(f"{spec} is not callable")
    return factory


class SipService:
    name = "sip"

    def __init__(self, plan: SipPlan, session_factory: SessionFactory) -> None:
        self.plan = plan
        self._own_run_dir = plan.run_dir is None
        self.run_dir = plan.run_dir or Path(tempfile.mkdtemp(prefix="gateway-sip-"))
        self.host = SessionHost(str(self.run_dir / "host.sock"), session_factory)
        specs = [
            WorkerSpec(index=i, sip_port=free_port(plan.host), args=self._worker_args(cap))
            for i, cap in enumerate(plan.worker_caps)
        ]
        self.supervisor = Supervisor(specs, self.host, self.run_dir)
        self.front = KamailioFront(
            FrontOptions(
                host=plan.host,
                port=plan.port,
                tcp=plan.tcp,
                retry_after=plan.retry_after,
                allow=plan.allow,
                invites_per_second=plan.invites_per_second,
                burst=plan.burst,
                auth_user=plan.auth_user,
                auth_password=plan.auth_password,
                auth_realm=plan.auth_realm,
            ),
            self.run_dir,
            [("127.0.0.1", s.sip_port) for s in specs],
        )

        self._stopping = False
        self._front_watch: asyncio.Task[None] | None = None

    def _worker_args(self, cap: int) -> list[str]:
        p = self.plan
        args = [
            "--max-calls", str(cap),
            "--codecs", ",".join(p.codecs),
            "--routes", json.dumps(p.routes),
            "--rtp-timeout", str(p.rtp_timeout),
            "--max-duration", str(p.max_duration),
            "--ring-delay", str(p.ring_delay),
            "--retry-after", str(p.retry_after),
        ]  # fmt: skip
        if p.default_agent is not None:
            args += ["--default-agent", p.default_agent]
        if not p.tcp:
            args.append("--no-tcp")
        return args

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await self.host.start()
        await self.supervisor.start()
        await self._start_front()
        self._front_watch = asyncio.create_task(self._watch_front())
        log.info(
            "SIP edge up: front %s:%d, %d workers, max %d calls, run dir %s",
            self.plan.host,
            self.plan.port,
            len(self.plan.worker_caps),
            self.plan.max_calls,
            self.run_dir,
        )

    async def _start_front(self) -> None:
        await self.front.start()
        if not await wait_for_sip(self.plan.host, self.plan.port, 10.0):
            raise RuntimeError(f"the SIP front did not answer on {self.plan.host}:{self.plan.port}")

    async def _watch_front(self) -> None:
        """Restart Kamailio if it exits on its own (calls in progress keep their RTP meanwhile)."""
        while not self._stopping:
            proc = self.front.proc
            if proc is None:
                return
            code = await proc.wait()
            if self._stopping:
                return
            log.error("the SIP front exited with %s; restarting it", code)
            await self.front.stop()  # its children may still hold the port
            await asyncio.sleep(1.0)  # restart back-off
            try:
                await self._start_front()
            except (RuntimeError, OSError):
                log.exception("restarting the SIP front failed")

    def status(self) -> dict[str, Any]:
        """For /healthz and /metrics: raises RuntimeError when the edge cannot take calls."""
        front = self.front.proc
        if front is None or front.returncode is not None:
            raise RuntimeError("sip front down")
        workers = self.host.workers
        if not workers:
            raise RuntimeError("no sip worker connected")
        return {
            "workers": len(workers),
            "workers_expected": len(self.plan.worker_caps),
            "max_calls": self.plan.max_calls,
            "active_calls": self.host.active_calls,
            "calls_started": self.host.calls_started,
            "calls_ended": dict(self.host.calls_ended),
            "frames_dropped_worker": sum(int(w.stats.get("frames_dropped", 0)) for w in workers.values()),
            "restarts": sum(w.restarts for w in self.supervisor.workers),
        }

    async def drain(self, timeout: float) -> None:
        await self.supervisor.drain(timeout)

    async def stop(self) -> None:
        self._stopping = True
        if self._front_watch is not None:
            self._front_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._front_watch
        await self.front.stop()
        await self.supervisor.stop()
        await self.host.stop()
        if self._own_run_dir and not os.environ.get("GATEWAY_KEEP_RUN_DIR"):
            shutil.rmtree(self.run_dir, ignore_errors=True)
