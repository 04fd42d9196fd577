"""The aiohttp application behind `gateway serve`'s HTTP port.

`create_app()` serves `/metrics` (Prometheus text format) and `/healthz`; edges add their own routes
(WebRTC offer/answer, carrier media streams, the softphone page) to the returned app before it runs::

    app = create_app(metrics, health_checks={"metrics_db": writer_health(writer)})
    app.router.add_post("/webrtc/offer", webrtc.offer)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.writer import MetricsWriter

# A health check returns (healthy, details). Unhealthy checks make /healthz answer 503.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]

METRICS_KEY = web.AppKey("metrics", GatewayMetrics)
HEALTH_CHECKS_KEY = web.AppKey("health_checks", dict[str, HealthCheck])


def writer_health(writer: MetricsWriter) -> HealthCheck:
    """The metrics database as a health check: spooling is reported but still healthy (audio is fine)."""

    def check() -> tuple[bool, dict[str, Any]]:
        stats = writer.stats
        return True, {
            "database": "ok" if stats.db_available else "unavailable (spooling)",
            "spool_depth": stats.spool_depth,
            "pending": writer.pending,
        }

    return check


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    healthy = True
    checks: dict[str, Any] = {}
    for name, check in request.app[HEALTH_CHECKS_KEY].items():
        try:
            ok, details = check()
        except Exception as exc:
            ok, details = False, {"error": f"{type(exc).__name__}: {exc}"}
        healthy = healthy and ok
        checks[name] = {"ok": ok, **details}
    return web.json_response(
        {"status": "ok" if healthy else "unhealthy", "checks": checks}, status=200 if healthy else 503
    )


def create_app(
    metrics: GatewayMetrics, health_checks: Mapping[str, HealthCheck] | None = None
) -> web.Application:
    app = web.Application()
    app[METRICS_KEY] = metrics
    app[HEALTH_CHECKS_KEY] = dict(health_checks or {})
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


__all__ = ["HEALTH_CHECKS_KEY", "METRICS_KEY", "HealthCheck", "create_app", "writer_health"]
