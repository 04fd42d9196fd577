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

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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
            "session_hosts": len(snap.get("session_hosts", [])),
            "session_hosts_admitting": sum(1 for h in snap.get("session_hosts", []) if h["admitting"]),
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

    def _host_families(self) -> tuple[GaugeMetricFamily | CounterMetricFamily, ...]:
        return (
            CounterMetricFamily(
                "gateway_sip_worker_refusals_overload",
                "INVITEs a worker answered 503 because its session host was at its load limits "
                "(admission control; the front tries the next worker, so one refused call may count "
                "once per worker), counted by the workers running now",
            ),
            GaugeMetricFamily(
                "gateway_sip_session_host_admitting",
                "1 while this session host takes new calls",
                labels=["host"],
            ),
            CounterMetricFamily(
                "gateway_sip_session_host_door_closed",
                "Times this session host started refusing new calls (its load went over a limit)",
                labels=["host"],
            ),
            GaugeMetricFamily(
                "gateway_sip_session_host_loop_lag_seconds",
                "Event-loop lag of this session host, averaged over the last second",
                labels=["host"],
            ),
            GaugeMetricFamily(
                "gateway_sip_session_host_cpu_cores",
                "CPU this session host used over the last second",
                labels=["host"],
            ),
            GaugeMetricFamily(
                "gateway_sip_session_host_stt_queue",
                "Utterances of this session host's calls waiting for a local STT decoder",
                labels=["host"],
            ),
        )

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        # Names only: registering must not call the snapshot (the service may not be started).
        yield from self._families()
        yield from self._host_families()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
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
        refused, admitting, closed, lag, cpu, stt = self._host_families()
        refused.add_metric([], float(sum(w.get("refused", 0) for w in snap["per_worker"].values())))
        for h in snap.get("session_hosts", []):
            host, load = [str(h["index"])], h.get("load", {})
            admitting.add_metric(host, 1.0 if h["admitting"] else 0.0)
            closed.add_metric(host, float(h["refusals"]))
            lag.add_metric(host, float(load.get("loop_lag", 0.0)))
            cpu.add_metric(host, float(load.get("host_cpu", 0.0)))
            stt.add_metric(host, float(load.get("stt_queue", 0)))
        yield from (refused, admitting, closed, lag, cpu, stt)


def watch_sip(registry: CollectorRegistry, snapshot: Snapshot) -> SipCollector:
    """Add the SIP gauges to a Prometheus registry (the gateway's)."""
    collector = SipCollector(snapshot)
    registry.register(collector)
    return collector
