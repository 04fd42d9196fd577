"""Operators' endpoints: /metrics in Prometheus text format, /healthz with the writer's state."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from gateway.calls import CallInfo
from gateway.http.app import HEALTH_CHECKS_KEY, create_app, writer_health
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.writer import MetricsWriter
from gateway.turns.events import Backchannel, FalseInterruption, Interruption


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_endpoint_counts_calls_and_decisions(tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    sink: list[object] = []
    for n in range(3):
        rec = CallRecorder(CallInfo(f"c{n}", "sip", "a"), sink.append, metrics=metrics)
        rec.started()
        rec.on_event(Interruption(t=1.0, onset=0.8, latency_ms=200, mode="adaptive", probability=0.9))
        rec.on_event(Backchannel(t=2.5, onset=2.0, duration=0.5, mode="adaptive"))
        rec.on_event(FalseInterruption(t=3.0, resumed=True))
        if n < 2:
            rec.ended("caller_hangup" if n == 0 else "agent_hangup")
    metrics.frames_dropped("sip", 4)
    spool_depth = [7]
    metrics.watch_spool(lambda: spool_depth[0])

    async with TestClient(TestServer(create_app(metrics))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        samples = _samples(await response.text())

    assert samples[("gateway_active_calls", ())] == 1
    assert samples[("gateway_calls_total", (("end_reason", "caller_hangup"),))] == 1
    assert samples[("gateway_calls_total", (("end_reason", "agent_hangup"),))] == 1
    assert (
        samples[("gateway_interruption_decisions_total", (("kind", "interruption"), ("mode", "adaptive")))]
        == 3
    )
    assert (
        samples[("gateway_interruption_decisions_total", (("kind", "backchannel"), ("mode", "adaptive")))]
        == 3
    )
    assert samples[("gateway_interruption_decisions_total", (("kind", "resumed"), ("mode", "")))] == 3
    latency = (("kind", "interruption"), ("mode", "adaptive"))
    assert samples[("gateway_decision_latency_seconds_count", latency)] == 3
    assert (
        samples[("gateway_decision_latency_seconds_bucket", (*latency[:1], ("le", "0.2"), latency[1]))] == 3
    )
    assert (
        samples[("gateway_decision_latency_seconds_bucket", (*latency[:1], ("le", "0.15"), latency[1]))] == 0
    )
    assert samples[("gateway_frame_drops_total", (("edge", "sip"),))] == 4
    assert samples[("gateway_db_spool_depth", ())] == 7


async def test_healthz_reports_the_writer(tmp_path: Path) -> None:
    broken = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    writer = MetricsWriter(broken, tmp_path / "spool.jsonl", instance="t")
    checks = {"metrics_db": writer_health(writer)}
    app = create_app(GatewayMetrics(), checks)
    async with TestClient(TestServer(app)) as client:
        body = await (await client.get("/healthz")).json()
        assert body == {
            "status": "ok",
            "checks": {"metrics_db": {"ok": True, "database": "ok", "spool_depth": 0, "pending": 0}},
        }
        await writer.start()  # database unreachable: spooling, still healthy for audio
        body = await (await client.get("/healthz")).json()
        assert body["checks"]["metrics_db"]["database"] == "unavailable (spooling)"

        def failing() -> tuple[bool, dict[str, object]]:
            raise RuntimeError("sip front down")

        app[HEALTH_CHECKS_KEY]["sip"] = failing
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["checks"]["sip"] == {
            "ok": False,
            "error": "RuntimeError: sip front down",
        }
    await writer.stop()
