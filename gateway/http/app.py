"""The aiohttp application behind `gateway serve`'s HTTP port.

`create_app()` serves `/metrics` (Prometheus text format; restricted by `MetricsAccess`: source
networks and/or a bearer token) and `/healthz`; edges add their own routes
(WebRTC offer/answer, carrier media streams, the softphone page) to the returned app before it runs::

    app = create_app(metrics, health_checks={"metrics_db": writer_health(writer)})
    app.router.add_post("/webrtc/offer", webrtc.offer)
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.config.schema import MetricsAccessConfig
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.writer import MetricsWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read /metrics: source networks (empty: any) and a bearer token ("": none needed)."""

    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    token: str = ""

    @property
    def restricted(self) -> bool:
        return bool(self.allow or self.token)

    @classmethod
    def from_config(cls, section: MetricsAccessConfig, env: Mapping[str, str] | None = None) -> MetricsAccess:
        env = os.environ if env is None else env
        token = section.token.get_secret_value() if section.token is not None else ""
        return cls(
            allow=[ipaddress.ip_network(a, strict=False) for a in section.allow],
            token=token or env.get("GATEWAY_METRICS_TOKEN", ""),
        )

    def refusal(self, remote: str | None, authorization: str) -> str | None:
        """None when a request from `remote` with this Authorization header may read, else why not."""
        if self.allow:
            try:
                address = ipaddress.ip_address((remote or "").split("%")[0])
            except ValueError:
                return f"address {remote!r} is not in http.metrics.allow"
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if not any(address in net for net in self.allow):
                return f"address {remote} is not in http.metrics.allow"
        if self.token:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            ):
                return "missing or wrong bearer token"
        return None


# A health check returns (healthy, details). Unhealthy checks make /healthz answer 503.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]

METRICS_KEY = web.AppKey("metrics", GatewayMetrics)
HEALTH_CHECKS_KEY = web.AppKey("health_checks", dict[str, HealthCheck])
METRICS_ACCESS_KEY = web.AppKey("metrics_access", MetricsAccess)


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
    why = request.app[METRICS_ACCESS_KEY].refusal(request.remote, request.headers.get("Authorization", ""))
    if why is not None:
        log.warning("/metrics refused to %s: %s", request.remote, why)
        status = 403 if "address" in why else 401
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return web.Response(status=status, text=why + "\n", headers=headers)
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
    metrics: GatewayMetrics,
    health_checks: Mapping[str, HealthCheck] | None = None,
    metrics_access: MetricsAccess | None = None,
) -> web.Application:
    app = web.Application()
    app[METRICS_KEY] = metrics
    app[METRICS_ACCESS_KEY] = metrics_access or MetricsAccess()
    app[HEALTH_CHECKS_KEY] = dict(health_checks or {})
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


__all__ = [
    "HEALTH_CHECKS_KEY",
    "METRICS_ACCESS_KEY",
    "METRICS_KEY",
    "HealthCheck",
    "MetricsAccess",
    "create_app",
    "writer_health",
]
