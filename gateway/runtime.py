"""Assembles one `gateway serve` process; nothing in it registers itself on import.

    config ─► metrics: database writer (its own process) and Prometheus
           ─► AgentRunner: the sessions every edge hands its calls to
           ─► SIP service: SipService(plan, sessions), its calls' sessions in `sip.session_hosts`
              processes (`gateway session-host`, `run_session_host` below), each with its own
              AgentRunner, whose records come back here to the one writer and registry
           ─► HTTP app: /metrics, /healthz, then each HTTP edge installed explicitly,
              webrtc.install(app, sessions, settings), mediastream.install(app, sessions, settings)

An HTTP edge that is enabled but cannot be imported (an optional dependency missing, or broken)
stops the start with `EdgeUnavailable`, which names the edge, the cause and the way out.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from prometheus_client import Histogram

from gateway.agents.runner import AgentRunner, CallRecord
from gateway.backends.stt import pool as stt_pool
from gateway.backends.stt.batch import pending_utterances
from gateway.calls import CallInfo, RefusedAttempt, SessionFactory
from gateway.config.schema import GatewayConfig
from gateway.edges.sip.health import sip_health, watch_sip
from gateway.edges.sip.host import SessionHost
from gateway.edges.sip.host_child import Control, open_parent, run_child
from gateway.edges.sip.host_pool import HostProcesses
from gateway.edges.sip.service import SipPlan, SipService, load_session_factory
from gateway.http.app import HEALTH_CHECKS_KEY, MetricsAccess, create_app, writer_health
from gateway.metrics.attempts import record_refusal
from gateway.metrics.database import create_db_engine, redact_url, resolve_db_url
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import Record, UpdateRow
from gateway.metrics.schema import check_schema_current
from gateway.metrics.tables import utc_now
from gateway.metrics.writer import MetricsWriter, default_instance
from gateway.services import Service

log = logging.getLogger(__name__)


class EdgeUnavailable(RuntimeError):
    """An enabled edge cannot run in this installation."""

    def __init__(self, edge: str, cause: ImportError, extra: str | None = None) -> None:
        install = f"pip install 'voice-gateway[{extra}]'" if extra else "reinstall the gateway"
        super().__init__(
            f"the {edge} edge cannot start: {cause.name or cause} cannot be imported ({cause}); "
            f"{install}, or set {edge}.enabled: false"
        )
        self.edge = edge


class GatewayRuntime:
    def __init__(
        self, config: GatewayConfig, db_url: str | None = None, *, agent_overrides: tuple[str, ...] = ()
    ):
        self.config = config
        self.agent_overrides = agent_overrides
        self.db_url = resolve_db_url(db_url or config.database.url)
        self.metrics = GatewayMetrics()
        self.instance = default_instance()
        self.writer: MetricsWriter | None = None  # set when the metrics service starts
        self.runner = AgentRunner(
            config,
            record_call=self.record_call,
            record_refusal=self.record_refusal,
            agent_overrides=agent_overrides,
        )
        self.stt_latency = Histogram(
            "gateway_stt_latency_seconds",
            "Utterance handed to a local STT decoder to its words, queue wait included",
            buckets=STT_LATENCY_BUCKETS,
            registry=self.metrics.registry,
        )

    def configure_local_stt(self) -> None:
        """Decoder processes for local STT in this process, their latency into Prometheus."""
        configure_local_stt(self.config, self.stt_latency.observe)

    def record_call(self, info: CallInfo) -> CallRecord:
        """The runner's `record_call`: Prometheus, and database rows once the writer runs."""
        emit = self.writer.emit if self.writer is not None else _no_database
        recorder = CallRecorder(info, emit, instance=self.instance, metrics=self.metrics)
        recorder.started()
        recorder.answered()
        return recorder

    def record_refusal(self, attempt: RefusedAttempt) -> None:
        """The runner's `record_refusal`: a counter by edge and reason, and a database row."""
        emit = self.writer.emit if self.writer is not None else _no_database
        record_refusal(attempt, emit, self.metrics, self.instance)

    def metrics_service(self) -> MetricsService:
        return MetricsService(self)

    def http_service(self) -> HttpService:
        """The HTTP app with /metrics and /healthz only; `install_http_edges` adds the edges."""
        access = MetricsAccess.from_config(self.config.http.metrics)
        return HttpService(self, create_app(self.metrics, {}, metrics_access=access))

    def install_http_edges(self, app: web.Application) -> None:
        """The enabled HTTP edges, each installed explicitly on `app` with the runner's sessions."""
        if self.config.webrtc.enabled:
            try:
                from gateway.edges import webrtc
            except ImportError as exc:
                raise EdgeUnavailable("webrtc", exc, extra="webrtc") from exc
            webrtc.install(app, self.runner, webrtc.WebRtcSettings.from_config(self.config))
        if self.config.mediastream.enabled:
            try:
                from gateway.edges import mediastream
            except ImportError as exc:
                raise EdgeUnavailable("mediastream", exc) from exc
            mediastream.install(app, self.runner, mediastream.MediaStreamSettings.from_config(self.config))

    def agent_names(self) -> list[str]:
        """The agents the routes name, warmed up before the first call."""
        cfg = self.config
        return [r.agent for r in cfg.routes] + ([cfg.default_agent] if cfg.default_agent else [])

    def host_processes(self, plan: SipPlan) -> HostProcesses:
        """How the SIP service starts its session hosts: each builds its own AgentRunner from the
        same configuration and sends its calls' records back (`host_message`)."""
        init = {
            "config": self.config,
            "agent_overrides": self.agent_overrides,
            "agents": self.agent_names(),
            "instance": self.instance,
            "limits": plan.admission,
        }
        return HostProcesses(session_host_command(), init, self.host_message)

    def host_message(self, message: tuple[Any, ...]) -> None:
        """A record or a Prometheus observation from a session host's calls."""
        if message[0] == "record":
            if self.writer is not None:
                self.writer.emit(message[1])
        elif message[0] == "calls_lost":  # a session host died: its calls' rows end here
            _, uids, reason = message
            if self.writer is not None:
                end = {"ended_at": utc_now(), "end_reason": str(reason)}
                for uid in uids:
                    self.writer.emit(UpdateRow("calls", str(uid), end))
        elif message[0] == "stt_latency":
            self.stt_latency.observe(float(message[1]))
        elif message[0] == "metric":
            _, path, args = message
            if path not in FORWARDED_CALLS:
                raise ValueError(f"session host sent an unknown metric {path!r}")
            target: Any = self.metrics
            for name in str(path).split("."):
                target = getattr(target, name)
            target(*args)

    def sip_service(self, plan: SipPlan, http: HttpService) -> SipService:
        """The SIP edge on the runner's sessions, in /healthz and /metrics."""
        sip = SipService(
            plan,
            self.runner,
            on_frames_dropped=functools.partial(self.metrics.frames_dropped, "sip"),
            processes=self.host_processes(plan),
            probes={"stt": pending_utterances},
        )
        http.app[HEALTH_CHECKS_KEY]["sip"] = sip_health(sip.snapshot)
        watch_sip(self.metrics.registry, sip.snapshot)
        return sip

    def services(self, plan: SipPlan) -> list[Service]:
        """Everything `gateway serve` runs, in start order: metrics, SIP, HTTP."""
        http = self.http_service()
        self.install_http_edges(http.app)
        sip = self.sip_service(plan, http)
        return [self.metrics_service(), sip, http]


def _no_database(record: Record) -> None:
    """Where rows go before the metrics service has started its writer (tests): nowhere."""


# -- a session host process (`gateway session-host`, started by the SIP service) ---------------------

STT_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def configure_local_stt(config: GatewayConfig, observe: Callable[[float], None]) -> None:
    stt_pool.configure(config.capacity.stt_processes, config.capacity.stt_max_queue)
    stt_pool.on_latency[:] = [observe]


# What a session host may call on the parent's GatewayMetrics (the CallRecorder's calls).
FORWARDED_METRICS = frozenset(
    {"call_started", "call_ended", "observe", "response_latency", "attempt_refused"}
)
FORWARDED_CALLS = frozenset(
    {"call_started", "call_ended", "observe", "response_latency.observe", "attempt_refused"}
)


def session_host_command() -> list[str]:
    """`gateway session-host` with this process's log level."""
    level = logging.getLogger().getEffectiveLevel()
    verbose = ["-vv"] if level <= logging.DEBUG else ["-v"] if level <= logging.INFO else []
    return [sys.executable, "-m", "gateway", *verbose, "session-host"]


class _ForwardedCall:
    def __init__(self, control: Control, path: str) -> None:
        self._control = control
        self._path = path

    def __call__(self, *args: Any) -> None:
        self._control.send("metric", self._path, args)

    def __getattr__(self, name: str) -> _ForwardedCall:
        if name.startswith("_"):
            raise AttributeError(name)
        return _ForwardedCall(self._control, f"{self._path}.{name}")


class ForwardedMetrics:
    """The CallRecorder's GatewayMetrics in a session host: every call goes to the parent's."""

    def __init__(self, control: Control) -> None:
        self._control = control

    def __getattr__(self, name: str) -> _ForwardedCall:
        if name not in FORWARDED_METRICS:
            raise AttributeError(name)
        return _ForwardedCall(self._control, name)


async def run_session_host(control_fd: int, socket_path: str, index: int) -> int:
    """One session host: its sessions (an AgentRunner, or a `--session` coroutine) behind a
    SessionHost on `socket_path`, told what to build by the parent's first control message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (a terminal's ^C reaches it)
    control = await open_parent(control_fd)
    message = await control.recv()
    if message is None or message[0] != "init":
        log.error("session host %d: no init message from gateway serve", index)
        return 2
    init: dict[str, Any] = message[1]
    probes: dict[str, Any] = {}
    factory: SessionFactory
    if "session" in init:
        factory = load_session_factory(str(init["session"]))
    else:
        config: GatewayConfig = init["config"]
        instance = str(init["instance"])
        metrics = cast(GatewayMetrics, ForwardedMetrics(control))

        def record_call(info: CallInfo) -> CallRecord:
            emit = functools.partial(control.send, "record")
            recorder = CallRecorder(info, emit, instance=instance, metrics=metrics)
            recorder.started()
            recorder.answered()
            return recorder

        def refused(attempt: RefusedAttempt) -> None:  # a worker's refusal: counter and row, in the parent
            record_refusal(attempt, functools.partial(control.send, "record"), metrics, instance)

        runner = AgentRunner(
            config,
            record_call=record_call,
            record_refusal=refused,
            agent_overrides=tuple(init["agent_overrides"]),
        )
        configure_local_stt(config, functools.partial(control.send, "stt_latency"))
        await asyncio.to_thread(runner.warm_up, list(init["agents"]))
        gc.collect()
        gc.freeze()  # models and configs live as long as the process: out of the collector's way
        factory = runner
        probes["stt"] = pending_utterances
    host = SessionHost(
        socket_path,
        factory,
        on_frames_dropped=functools.partial(control.send, "dropped"),
        limits=init.get("limits"),
        probes=probes,
        index=index,
    )
    await run_child(control, host)
    return 0


class MetricsService:
    """Checks the schema (refusing to start when it is out of date), runs the batched writer."""

    name = "metrics"

    def __init__(self, runtime: GatewayRuntime) -> None:
        self.runtime = runtime

    async def start(self) -> None:
        rt = self.runtime
        engine = create_db_engine(rt.db_url)
        try:
            check_schema_current(engine)  # raises SchemaOutOfDate with the command to run
        finally:
            engine.dispose()
        spool_dir = Path(rt.config.database.spool_dir)
        spool_dir.mkdir(parents=True, exist_ok=True)
        rt.writer = MetricsWriter(  # the database work runs in its own process, with its own engine
            rt.db_url,
            spool_dir / f"{rt.instance}.jsonl",
            batch_interval_s=rt.config.database.batch_interval,
            instance=rt.instance,
        )
        writer = rt.writer
        rt.metrics.watch_writer(lambda: writer.stats)  # spool depth, spool full, dropped records
        await rt.writer.start()
        log.info("metrics to %s", redact_url(rt.db_url))

    async def drain(self, timeout: float) -> None:
        return None

    async def stop(self) -> None:
        if self.runtime.writer is not None:
            await self.runtime.writer.stop()


class HttpService:
    name = "http"

    def __init__(self, runtime: GatewayRuntime, app: web.Application) -> None:
        self.runtime = runtime
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port: int = 0

    async def start(self) -> None:
        http = self.runtime.config.http
        if self.runtime.writer is not None:
            self.app[HEALTH_CHECKS_KEY]["database"] = writer_health(self.runtime.writer)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, http.host, http.port)
        await site.start()
        server: Any = site._server  # the bound port, when 0 was asked for
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else http.port
        log.info("HTTP on %s:%d", http.host, self.port)

    async def drain(self, timeout: float) -> None:
        return None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
