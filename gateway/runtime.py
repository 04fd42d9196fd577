"""What one `gateway serve` process shares across edges: runner, metrics writer, HTTP app.

    runtime = GatewayRuntime(config, db_url)
    services = [runtime.metrics_service(), SipService(plan, runtime.runner), runtime.http_service()]

Edges that speak HTTP/WebSocket (WebRTC, carrier media streams, the softphone page) add their
routes with `HTTP_ROUTES` installers, each `install(app, runtime)`, so every edge hands its calls
to the same `AgentRunner` and every call lands in the same database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.agents.runner import AgentRunner
from gateway.config.schema import GatewayConfig
from gateway.http.app import HEALTH_CHECKS_KEY, create_app, writer_health
from gateway.metrics.database import create_db_engine, redact_url, resolve_db_url
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.schema import check_schema_current
from gateway.metrics.writer import MetricsWriter, default_instance

log = logging.getLogger(__name__)

RouteInstaller = Callable[[web.Application, "GatewayRuntime"], None]
# Filled by the HTTP edges' modules (imported by `gateway serve`).
HTTP_ROUTES: list[RouteInstaller] = []


def install_http_edges() -> None:
    """Register the HTTP edges (WebRTC, carrier media streams) that are installed in this build."""
    try:
        from gateway.edges import http_edges
    except ImportError:
        return
    http_edges.install_all()


class GatewayRuntime:
    def __init__(
        self, config: GatewayConfig, db_url: str | None = None, *, agent_overrides: tuple[str, ...] = ()
    ):
        self.config = config
        self.db_url = resolve_db_url(db_url or config.database.url)
        self.metrics = GatewayMetrics()
        self.instance = default_instance()
        self.writer: MetricsWriter | None = None
        self.runner = AgentRunner(
            config, metrics=self.metrics, instance=self.instance, agent_overrides=agent_overrides
        )

    def metrics_service(self) -> MetricsService:
        return MetricsService(self)

    def http_service(self) -> HttpService:
        app = create_app(self.metrics, {})
        for install in HTTP_ROUTES:
            install(app, self)
        return HttpService(self, app)


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
        rt.runner.emit = rt.writer.emit
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
