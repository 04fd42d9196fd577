"""The SIP edge in `/healthz` and `/metrics`, read from `SipService.snapshot()` at request time.

    check = sip_health(service.snapshot)           # app[HEALTH_CHECKS_KEY]["sip"] = check
    watch_sip(registry, service.snapshot)          # gauges, collected at every scrape

Healthy means the edge can take a call: the Kamailio front runs and at least one worker is up.
Fewer workers up than configured is reported (`degraded`) but still healthy: the front sends calls
to the others while the supervisor restarts the missing ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

Snapshot = Callable[[], Mapping[str, Any]]


def sip_health(snapshot: Snapshot) -> Callable[[], tuple[bool, dict[str, Any]]]:
    """A `/healthz` check (`gateway.http.app.HealthCheck`) of the SIP edge."""

    def check() -> tuple[bool, dict[str, Any]]:
        snap = snapshot()
        up, total = int(snap["workers_up"]), int(snap["workers"])
        front = bool(snap["front_up"])
        details: dict[str, Any] = {
            "front": "up" if front else "down",
            "workers_up": up,
            "workers": total,
            "degraded": up < total,
            "active_calls": int(snap["active_calls"]),
            "max_calls": int(snap["max_calls"]),
            "worker_restarts": int(snap["restarts"]),
        }
        return front and up > 0, details

    return check


class SipCollector(Collector):
    """Gauges of the SIP edge, read from the snapshot at every scrape."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("gateway_sip_front_up", "1 while the Kamailio front runs"),
            GaugeMetricFamily("gateway_sip_workers_up", "pjsua2 workers running and linked to the host"),
            GaugeMetricFamily("gateway_sip_workers", "pjsua2 workers configured"),
            GaugeMetricFamily(
                "gateway_sip_worker_up",
                "1 while this worker runs and is linked to the host",
                labels=["worker"],
            ),
            GaugeMetricFamily(
                "gateway_sip_worker_calls", "Calls in progress on this worker", labels=["worker"]
            ),
            GaugeMetricFamily(
                "gateway_sip_worker_frames_dropped",
                "Inbound frames this worker dropped in the calls it has in progress (queue full)",
                labels=["worker"],
            ),
            GaugeMetricFamily(
                "gateway_sip_worker_restarts", "Times the supervisor restarted this worker", labels=["worker"]
            ),
            GaugeMetricFamily(
                "gateway_sip_frames_dropped",
                "Inbound frames dropped by ended SIP calls, by queue (worker: behind pjsua2; "
                'host: behind the session); their sum is gateway_frame_drops{edge="sip"}',
                labels=["queue"],
            ),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: registering must not call the snapshot (the service may not be started).
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot()
        front, up, total, worker_up, calls, dropped, restarts, ended_drops = self._families()
        front.add_metric([], 1.0 if snap["front_up"] else 0.0)
        up.add_metric([], float(snap["workers_up"]))
        total.add_metric([], float(snap["workers"]))
        for index, w in sorted(snap["per_worker"].items(), key=lambda kv: int(kv[0])):
            worker_up.add_metric([index], 1.0 if w["up"] else 0.0)
            calls.add_metric([index], float(w["calls"]))
            dropped.add_metric([index], float(w["frames_dropped"]))
            restarts.add_metric([index], float(w["restarts"]))
        for queue, n in sorted(snap["frames_dropped"].items()):
            ended_drops.add_metric([queue], float(n))
        yield from (front, up, total, worker_up, calls, dropped, restarts, ended_drops)


def watch_sip(registry: CollectorRegistry, snapshot: Snapshot) -> SipCollector:
    """Add the SIP gauges to a Prometheus registry (the gateway's)."""
    collector = SipCollector(snapshot)
    registry.register(collector)
    return collector
