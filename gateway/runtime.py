"""Assembles one `gateway serve` process; nothing in it registers itself on import.

    config ─► metrics: database writer (its own process) and Prometheus
           ─► AgentRunner: the sessions every edge hands its calls to
           ─► SIP service: SipService(plan, sessions)
           ─► HTTP app: /metrics, /healthz, then each HTTP edge installed explicitly,
              webrtc.install(app, sessions, settings), mediastream.install(app, sessions, settings)

An HTTP edge that is enabled but cannot be imported (an optional dependency missing, or broken)
stops the start with `EdgeUnavailable`, which names the edge, the cause and the way out.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.agents.runner import AgentRunner, CallRecord
from gateway.calls import CallInfo, RefusedAttempt
from gateway.config.schema import GatewayConfig
from gateway.edges.sip.health import sip_health, watch_sip
from gateway.edges.sip.service import SipPlan, SipService
from gateway.http.app import HEALTH_CHECKS_KEY, MetricsAccess, create_app, writer_health
from gateway.metrics.attempts import record_refusal
from gateway.metrics.database import create_db_engine, redact_url, resolve_db_url
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import Record
from gateway.metrics.schema import check_schema_current
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

    def sip_service(self, plan: SipPlan, http: HttpService) -> SipService:
        """The SIP edge on the runner's sessions, in /healthz and /metrics."""
        sip = SipService(
            plan, self.runner, on_frames_dropped=functools.partial(self.metrics.frames_dropped, "sip")
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
