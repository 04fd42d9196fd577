"""Operators' live view: Prometheus metrics of the running gateway (served at /metrics).

One `GatewayMetrics` per process, with its own registry (so tests and several gateways in one
process never collide). Sessions feed it through their CallRecorder; edges count dropped frames;
the metrics writer's spool depth is read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.turns.events import Backchannel, DetectorFallback, Event, FalseInterruption, Interruption

DECISION_LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0)
RESPONSE_LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.active_calls = Gauge("gateway_active_calls", "Calls in progress", registry=r)
        self.calls = Counter("gateway_calls", "Calls ended, by end reason", ["end_reason"], registry=r)
        self.decisions = Counter(
            "gateway_interruption_decisions",
            "Overlap verdicts and their outcomes (interruption, backchannel, false_interruption, resumed)",
            ["kind", "mode"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "gateway_decision_latency_seconds",
            "Overlap onset to verdict (interruption or backchannel)",
            ["kind", "mode"],
            buckets=DECISION_LATENCY_BUCKETS,
            registry=r,
        )
        self.response_latency = Histogram(
            "gateway_response_latency_seconds",
            "End of caller speech to first agent audio",
            buckets=RESPONSE_LATENCY_BUCKETS,
            registry=r,
        )
        self.detector_fallbacks = Counter(
            "gateway_detector_fallbacks", "Calls that fell back from adaptive to VAD mode", registry=r
        )
        self.frame_drops = Counter(
            "gateway_frame_drops", "Inbound audio frames dropped (queue full), by edge", ["edge"], registry=r
        )
        self.attempts_refused = Counter(
            "gateway_call_attempts_refused",
            "Call attempts refused or failed before their session ran, by edge and reason",
            ["edge", "reason"],
            registry=r,
        )
        self.spool_depth = Gauge(
            "gateway_db_spool_depth", "Metric records waiting in the local spool", registry=r
        )
        self.spool_full = Gauge(
            "gateway_db_spool_full",
            "1 while the spool cannot grow (disk full): metric records wait in memory",
            registry=r,
        )
        self.spool_errors = Gauge(
            "gateway_db_spool_write_errors", "Spool writes that failed (disk full, I/O error)", registry=r
        )
        self.records_dropped = Gauge(
            "gateway_db_records_dropped", "Metric records dropped: memory queue full", registry=r
        )

    def call_started(self) -> None:
        self.active_calls.inc()

    def call_ended(self, reason: str) -> None:
        self.active_calls.dec()
        self.calls.labels(end_reason=reason).inc()

    def frames_dropped(self, edge: str, n: int = 1) -> None:
        self.frame_drops.labels(edge=edge).inc(n)

    def attempt_refused(self, edge: str, reason: str) -> None:
        self.attempts_refused.labels(edge=edge, reason=reason).inc()

    def watch_spool(self, depth: Callable[[], int]) -> None:
        """Read the spool depth at every scrape: `watch_spool(lambda: writer.stats.spool_depth)`."""
        self.spool_depth.set_function(lambda: float(depth()))

    def watch_writer(self, stats: Callable[[], Any]) -> None:
        """The metrics writer's `stats` (spool depth, spool full, write errors, dropped records),
        read at every scrape."""
        self.spool_depth.set_function(lambda: float(stats().spool_depth))
        self.spool_full.set_function(lambda: float(stats().spool_full))
        self.spool_errors.set_function(lambda: float(stats().spool_errors))
        self.records_dropped.set_function(lambda: float(stats().dropped))

    def observe(self, event: Event) -> None:
        """Count a TurnEngine event (other event types are ignored)."""
        if isinstance(event, Interruption):
            mode = "fallback" if event.fallback else event.mode
            self.decisions.labels(kind="interruption", mode=mode).inc()
            self.decision_latency.labels(kind="interruption", mode=mode).observe(event.latency_ms / 1000.0)
        elif isinstance(event, Backchannel):
            self.decisions.labels(kind="backchannel", mode=event.mode).inc()
            self.decision_latency.labels(kind="backchannel", mode=event.mode).observe(
                max(0.0, event.t - event.onset)
            )
        elif isinstance(event, FalseInterruption):
            kind = "resumed" if event.resumed else "false_interruption"
            self.decisions.labels(kind=kind, mode="").inc()
        elif isinstance(event, DetectorFallback):
            self.detector_fallbacks.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["GatewayMetrics"]
