"""Admission control's state machine and the frame-lateness histogram, fed explicit times."""

from __future__ import annotations

import pytest

from gateway.edges.sip.admission import Admission, Limits, Load
from gateway.edges.sip.lateness import FrameLateness

LIMITS = Limits(max_loop_lag=0.1, max_host_cpu=0.9, max_stt_queue=8, resume_below=0.8, hold=2.0)


def test_a_sample_over_any_limit_closes_the_door_at_once() -> None:
    for load, reason in (
        (Load(loop_lag=0.1), "loop_lag"),
        (Load(host_cpu=0.95), "host_cpu"),
        (Load(stt_queue=9), "stt_queue"),
    ):
        adm = Admission(LIMITS)
        assert adm.update(0.0, Load(loop_lag=0.05, host_cpu=0.5)) is True
        assert adm.update(0.25, load) is False
        assert (adm.reason, adm.refusals) == (reason, 1)


def test_the_door_opens_only_after_the_load_stayed_under_the_resume_level_for_hold_seconds() -> None:
    adm = Admission(LIMITS)
    adm.update(0.0, Load(loop_lag=0.2))
    assert adm.update(1.0, Load(loop_lag=0.085)) is False  # under the limit, not under 80 % of it
    assert adm.update(1.5, Load(loop_lag=0.05)) is False  # calm from here
    assert adm.update(3.0, Load(loop_lag=0.05)) is False
    assert adm.update(3.2, Load(host_cpu=0.8)) is False  # 89 % of the CPU limit: calm restarts
    assert adm.update(3.5, Load(loop_lag=0.01)) is False
    assert adm.update(5.4, Load(loop_lag=0.01)) is False
    assert adm.update(5.5, Load(loop_lag=0.01)) is True
    assert (adm.reason, adm.refusals) == ("", 1)


def test_unset_limits_are_not_checked() -> None:
    adm = Admission(Limits(max_loop_lag=None, max_host_cpu=None, max_stt_queue=None))
    assert adm.update(0.0, Load(loop_lag=5.0, host_cpu=4.0, machine_cpu=1.0, stt_queue=100)) is True


def test_machine_cpu_when_asked_for() -> None:
    adm = Admission(Limits(max_machine_cpu=0.9))
    assert adm.update(0.0, Load(machine_cpu=0.85)) is True
    assert adm.update(0.25, Load(machine_cpu=0.95)) is False
    assert adm.reason == "machine_cpu"


def test_lateness_counts_from_the_best_delivered_frame() -> None:
    late = FrameLateness()
    assert late.percentile(99) == 0.0
    # frames every 20 ms arrive on time from 100.0 s, except frame 10, which arrives 80 ms late
    for i in range(100):
        t = i * 0.02
        late.arrived(t, now=100.0 + t + (0.08 if i == 10 else 0.0))
    # the session takes frames 0-49 at once and frames 50-99 5 ms after they arrived
    for i in range(100):
        t = i * 0.02
        late.taken(t, now=100.0 + t + (0.005 if i >= 50 else 0.0) + (0.08 if i == 10 else 0.0))
    assert late.frames == 100
    assert late.percentile(40) == 0.0  # frames 0-49 but the late frame 10
    assert late.percentile(90) == 5.0
    assert late.percentile(100) == pytest.approx(80.0, abs=1.0)


def test_lateness_clips_at_two_seconds() -> None:
    late = FrameLateness()
    late.arrived(0.0, now=10.0)
    late.taken(0.0, now=25.0)
    assert late.percentile(100) == 2000.0


def test_a_session_host_may_only_call_the_recorders_metrics_on_the_parent() -> None:
    from gateway.config.schema import GatewayConfig
    from gateway.runtime import GatewayRuntime

    runtime = GatewayRuntime(GatewayConfig())
    runtime.host_message(("metric", "call_started", ()))
    runtime.host_message(("metric", "response_latency.observe", (0.4,)))
    runtime.host_message(("stt_latency", 0.3))
    text = runtime.metrics.exposition().decode()
    assert "gateway_active_calls 1.0" in text
    assert "gateway_response_latency_seconds_count 1.0" in text
    assert "gateway_stt_latency_seconds_count 1.0" in text
    for path in ("registry.clear", "_metrics", "frames_dropped", "response_latency.clear", "observe.x"):
        with pytest.raises(ValueError, match="unknown metric"):
            runtime.host_message(("metric", path, ()))
