"""Refused call attempts into metrics: a Prometheus counter by edge and reason, and a row in
`call_attempts_refused` (`gateway.calls.report_refusal` has already logged the attempt)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateway.calls import RefusedAttempt
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.records import InsertRow, Record
from gateway.metrics.tables import utc_now


def refused_row(attempt: RefusedAttempt, instance: str = "", at: datetime | None = None) -> InsertRow:
    return InsertRow(
        "call_attempts_refused",
        {
            "occurred_at": at or utc_now(),
            "edge": attempt.edge,
            "reason": attempt.reason,
            "status": attempt.status,
            "detail": attempt.detail[:2000],
            "caller": attempt.caller[:255],
            "callee": attempt.callee[:255],
            "agent": attempt.agent[:128],
            "edge_call_id": attempt.call_id[:255],
            "instance": instance,
        },
    )


def record_refusal(
    attempt: RefusedAttempt, emit: Callable[[Record], None], metrics: GatewayMetrics, instance: str = ""
) -> None:
    metrics.attempt_refused(attempt.edge, attempt.reason)
    emit(refused_row(attempt, instance))


__all__ = ["record_refusal", "refused_row"]
