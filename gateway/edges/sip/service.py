"""The SIP edge as one service of `gateway serve`: session host + worker supervisor + Kamailio front."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.calls import SessionFactory
from gateway.config.schema import GatewayConfig
from gateway.edges.sip.admission import Limits
from gateway.edges.sip.front_refusals import follow_front_refusals
from gateway.edges.sip.host import SessionHost
from gateway.edges.sip.host_pool import HostPool, HostProcesses
from gateway.edges.sip.kamailio import FrontOptions, KamailioFront
from gateway.edges.sip.ports import free_port
from gateway.edges.sip.probe import wait_for_sip
from gateway.edges.sip.supervisor import Supervisor, WorkerSpec
from gateway.edges.sip.worker_options import EndpointOptions, WorkerOptions

log = logging.getLogger(__name__)


@dataclass
class SipPlan:
    """Everything the SIP edge needs, resolved from the configuration (`plan_from_config`, where
    the defaults are the gateway file's) and the command line."""

    host: str
    port: int
    tcp: bool
    codecs: list[str]
    worker_caps: list[int]
    routes: list[tuple[str, str]]
    default_agent: str | None
    rtp_timeout: float
    max_duration: float
    ring_delay: float
    retry_after: int
    allow: list[str]
    invites_per_second: float
    burst: int
    auth_user: str
    auth_password: str = field(repr=False)
    auth_realm: str
    # TLS at the front: port and absolute PEM paths; tls_port 0 = no TLS listener.
    tls_port: int
    tls_certificate: str
    tls_private_key: str
    # RTP: bind address, address advertised in SDP ("" = the bound one), port range over all workers.
    rtp_host: str
    media_address: str
    rtp_ports: tuple[int, int] | None
    session_timer: str
    session_expires: int
    min_se: int
    drain_timeout: float
    srtp: str = "off"  # off | optional | required (sip.srtp)
    run_dir: Path | None = None  # generated configs, sockets and logs; None: a temporary directory
    # Session-host processes (host_pool.py); 0: sessions run in this process.
    session_hosts: int = 0
    admission: Limits | None = None  # None: no admission control

    @property
    def max_calls(self) -> int:
        return sum(self.worker_caps)


def rtp_ranges(low: int, high: int, caps: list[int]) -> list[tuple[int, int]]:
    """(first port, port count) per worker: [low, high] split evenly, each starting on an even port.

    Each call takes an even RTP port and the next odd one for RTCP, so a worker of `cap` calls needs
    at least 2 * cap ports (more leave room for ports still held by calls that just ended).
    """
    start = low + (low % 2)
    per = ((high + 1 - start) // max(len(caps), 1)) // 2 * 2
    need = 2 * max(caps, default=1)
    if per < need:
        raise ValueError(
            f"[{low}, {high}] gives each of the {len(caps)} workers {max(per, 0)} ports; "
            f"{need} are needed per worker (2 per call), so widen the range or use fewer workers"
        )
    return [(start + i * per, per) for i in range(len(caps))]


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
    """The plan for `cfg`; raises ValueError for sip.rtp_ports too narrow for the workers.

    TLS paths are made absolute (relative ones are from the working directory) but not checked
    here: `check_tls_files` does that, so `gateway serve` can name the file and line.
    """
    sip = cfg.sip
    n_workers = workers or sip.workers or (os.cpu_count() or 1)
    rate = sip.rate_limit
    tls = sip.tls if "tls" in sip.transports else None
    plan = SipPlan(
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
        tls_port=tls.port if tls else 0,
        tls_certificate=str(Path(tls.certificate).absolute()) if tls else "",
        tls_private_key=str(Path(tls.private_key).absolute()) if tls else "",
        rtp_host=sip.host,
        media_address=sip.media_address or "",
        rtp_ports=sip.rtp_ports,
        ring_delay=sip.ring_delay,
        retry_after=sip.retry_after,
        session_timer=sip.session_timers.mode,
        srtp=sip.srtp,
        session_expires=sip.session_timers.expires,
        min_se=sip.session_timers.min_se,
        drain_timeout=sip.drain_timeout,
        session_hosts=(os.cpu_count() or 1) if sip.session_hosts == "auto" else sip.session_hosts,
        admission=admission_limits(cfg),
    )
    if plan.rtp_ports is not None:
        rtp_ranges(*plan.rtp_ports, plan.worker_caps)
    return plan


def admission_limits(cfg: GatewayConfig) -> Limits | None:
    a = cfg.sip.admission
    if a is None:
        return None
    return Limits(
        max_loop_lag=a.max_loop_lag,
        max_host_cpu=a.max_host_cpu,
        max_machine_cpu=a.max_machine_cpu,
        max_stt_queue=a.max_stt_queue,
        max_calls=a.max_calls_per_host,
        resume_below=a.resume_below,
        hold=a.hold,
    )


def check_tls_files(plan: SipPlan) -> list[tuple[str, str]]:
    """(key under sip.tls, problem) for each TLS file that Kamailio could not load."""
    problems: list[tuple[str, str]] = []
    if not plan.tls_port:
        return problems
    for key, path, marker in (
        ("certificate", plan.tls_certificate, "CERTIFICATE-----"),
        ("private_key", plan.tls_private_key, "PRIVATE KEY-----"),
    ):
        try:
            text = Path(path).read_text(errors="replace")
        except OSError as exc:
            problems.append((key, f"cannot read {path}: {exc.strerror or exc}"))
            continue
        if "-----BEGIN " not in text or marker not in text:
            what = "certificate" if key == "certificate" else "private key"
            problems.append((key, f"{path} holds no PEM {what}"))
    return problems


def worker_options(plan: SipPlan, index: int, sip_port: int, control: str | None) -> WorkerOptions:
    """What worker `index` of `plan` is told: its loopback SIP port, its slice of RTP ports (20000 +
    (sip_port % 400) * 100 and up without sip.rtp_ports), the plan's codecs, routes and limits."""
    if plan.rtp_ports:
        rtp_port, rtp_range = rtp_ranges(*plan.rtp_ports, plan.worker_caps)[index]
    else:
        rtp_port, rtp_range = 20000 + (sip_port % 400) * 100, 1000
    return WorkerOptions(
        index=index,
        endpoint=EndpointOptions(
            host="127.0.0.1",  # behind the front
            sip_port=sip_port,
            rtp_port=rtp_port,
            rtp_port_range=rtp_range,
            rtp_host=plan.rtp_host,
            media_address=plan.media_address,
            codecs=tuple(plan.codecs),
            session_timer=plan.session_timer,
            session_expires=plan.session_expires,
            min_se=plan.min_se,
            srtp=plan.srtp,
            tcp=plan.tcp,
            max_calls=plan.worker_caps[index],
        ),
        control=control,
        routes=list(plan.routes),
        default_agent=plan.default_agent,
        ring_delay=plan.ring_delay,
        rtp_timeout=plan.rtp_timeout,
        max_duration=plan.max_duration,
        retry_after=plan.retry_after,
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

    def __init__(
        self,
        plan: SipPlan,
        session_factory: SessionFactory,
        on_frames_dropped: Callable[[int], None] | None = None,
        *,
        processes: HostProcesses | None = None,
        probes: dict[str, Callable[[], float]] | None = None,
    ) -> None:
        """`on_frames_dropped(n)`: frames a call lost (worker + host queues), told when it ends.

        With `processes` and `plan.session_hosts` >= 1, sessions run in that many session-host
        processes (host_pool.py) and `session_factory` is not used here; otherwise they run in this
        process, whose load `probes` (e.g. the STT queue) join admission control."""
        self.plan = plan
        self.session_factory = session_factory  # the front's own refusals are reported to it
        self._own_run_dir = plan.run_dir is None
        self.run_dir = plan.run_dir or Path(tempfile.mkdtemp(prefix="gateway-sip-"))
        self.host: SessionHost | HostPool
        if processes is not None and plan.session_hosts >= 1:
            self.host = HostPool(
                plan.session_hosts,
                self.run_dir,
                processes.command,
                processes.init,
                processes.on_message,
                on_frames_dropped,
            )
            socket_for: Callable[[int], str] = self.host.socket_for
        else:
            host = SessionHost(
                str(self.run_dir / "host.sock"),
                session_factory,
                on_frames_dropped,
                limits=plan.admission,
                probes=probes,
            )
            self.host = host
            socket_for = lambda _: host.socket_path  # noqa: E731
        specs = [
            WorkerSpec(worker_options(plan, i, free_port("127.0.0.1"), socket_for(i)))
            for i in range(len(plan.worker_caps))
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
                tls_port=plan.tls_port,
                tls_certificate=plan.tls_certificate,
                tls_private_key=plan.tls_private_key,
            ),
            self.run_dir,
            [("127.0.0.1", s.sip_port) for s in specs],
        )
        self.supervisor.on_worker_lost = self.front.end_dialogs_of  # BYE to a dead worker's callers

        self._stopping = False
        self._front_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await self.host.start()
        await self.supervisor.start()
        await self._start_front()
        self._front_watch = asyncio.create_task(self._watch_front())
        log_path = self.run_dir / "kamailio.log"  # what the front refuses: a log line, a count, a row
        self._refusals = asyncio.create_task(follow_front_refusals(log_path, self.session_factory))
        log.info(
            "SIP edge up: front %s:%d, %d workers, max %d calls, sessions in %s, run dir %s",
            self.plan.host,
            self.plan.port,
            len(self.plan.worker_caps),
            self.plan.max_calls,
            f"{len(self.host.children)} session-host processes"
            if isinstance(self.host, HostPool)
            else "this process",
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

    def snapshot(self) -> dict[str, Any]:
        """The edge's state for /healthz and /metrics (`health.py`); never raises.

        A worker is up when its process runs and its link to the host is connected (the supervisor
        kills a worker whose heartbeat stops, so a hung one does not stay up for long).
        """
        front = self.front.proc
        links = self.host.workers
        per_worker: dict[str, dict[str, Any]] = {}
        for wp in self.supervisor.workers:
            index = wp.spec.index
            link = links.get(index)
            alive = wp.proc is not None and wp.proc.returncode is None
            per_worker[str(index)] = {
                "up": alive and link is not None,
                "calls": link.call_count if link is not None else 0,
                "max_calls": self.plan.worker_caps[index],
                "frames_dropped": int(link.stats.get("frames_dropped", 0)) if link is not None else 0,
                "refused": int(link.stats.get("admission_refused", 0)) if link is not None else 0,
                "restarts": wp.restarts,
            }
        return {
            "front_up": front is not None and front.returncode is None,
            "workers_up": sum(1 for w in per_worker.values() if w["up"]),
            "workers": len(per_worker),
            "max_calls": self.plan.max_calls,
            "active_calls": self.host.active_calls,
            "calls_started": self.host.calls_started,
            "calls_ended": dict(self.host.calls_ended),
            "frames_dropped": dict(self.host.frames_dropped),
            "restarts": sum(w["restarts"] for w in per_worker.values()),
            "per_worker": per_worker,
            "session_hosts": self._hosts(),
        }

    def _hosts(self) -> list[dict[str, Any]]:
        """Per session host: up, admitting new calls, times it closed the door, its load."""
        if isinstance(self.host, HostPool):
            return self.host.hosts()
        h = self.host
        return [
            {
                "index": 0,
                "up": True,
                "pid": os.getpid(),
                "admitting": h.admitting,
                "refusals": h.admission.refusals if h.admission is not None else 0,
                "load": vars(h.meter.last),
                "restarts": 0,
            }
        ]

    def status(self) -> dict[str, Any]:
        """`snapshot()`, but raises RuntimeError when the edge cannot take calls."""
        snap = self.snapshot()
        if not snap["front_up"]:
            raise RuntimeError("sip front down")
        if not snap["workers_up"]:
            raise RuntimeError("no sip worker connected")
        return snap

    async def drain(self, timeout: float) -> None:
        await self.supervisor.drain(timeout)

    async def stop(self) -> None:
        self._stopping = True
        if getattr(self, "_refusals", None) is not None:
            self._refusals.cancel()
        if self._front_watch is not None:
            self._front_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._front_watch
        await self.front.stop()
        await self.supervisor.stop()
        await self.host.stop()
        if self._own_run_dir and not os.environ.get("GATEWAY_KEEP_RUN_DIR"):
            shutil.rmtree(self.run_dir, ignore_errors=True)
