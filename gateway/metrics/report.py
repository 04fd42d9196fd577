"""`gateway report`: aggregates and plots over a time range, as one self-contained HTML file.

Every number in the report comes from one of the SQL statements listed at its end (portable SQL
that runs unchanged on SQLite and PostgreSQL, so analysts can paste it into their own tools).
Bucketing by time and percentiles are computed in Python, the same way on both databases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import Engine, TextClause, bindparam, text

from gateway.metrics.svg import bar_chart
from gateway.metrics.tables import UTCDateTime

SQL: dict[str, str] = {
    "calls_by_end_reason": """
SELECT COALESCE(end_reason, 'open') AS end_reason, COUNT(*) AS calls
FROM calls
WHERE started_at >= :since AND started_at < :until
GROUP BY COALESCE(end_reason, 'open')
ORDER BY calls DESC""",
    "verdicts": """
SELECT e.occurred_at, e.kind, e.mode, e.detection_delay_ms
FROM interruption_events e
WHERE e.occurred_at >= :since AND e.occurred_at < :until
  AND e.kind IN ('interruption', 'backchannel')
ORDER BY e.occurred_at""",
    "false_interruptions_per_agent": """
SELECT c.agent,
       SUM(CASE WHEN e.kind = 'interruption' THEN 1 ELSE 0 END) AS interruptions,
       SUM(CASE WHEN e.kind IN ('false_interruption', 'resumed') THEN 1 ELSE 0 END) AS false_interruptions
FROM interruption_events e
JOIN calls c ON c.id = e.call_id
WHERE e.occurred_at >= :since AND e.occurred_at < :until
GROUP BY c.agent
ORDER BY c.agent""",
    "turn_latencies": """
SELECT t.eou_delay_ms, t.stt_final_latency_ms, t.llm_ttft_ms, t.tts_first_audio_ms, t.response_latency_ms
FROM turns t
WHERE t.occurred_at >= :since AND t.occurred_at < :until""",
}

LATENCY_COLUMNS = (
    "eou_delay_ms",
    "stt_final_latency_ms",
    "llm_ttft_ms",
    "tts_first_audio_ms",
    "response_latency_ms",
)
PERCENTILES = (50, 90, 95, 99)


def _statement(name: str) -> TextClause:
    stmt = text(SQL[name]).bindparams(
        bindparam("since", type_=UTCDateTime), bindparam("until", type_=UTCDateTime)
    )
    if name == "verdicts":
        stmt = stmt.columns(occurred_at=UTCDateTime)  # type: ignore[assignment]
    return stmt


def percentile(values: list[float], p: float) -> float | None:
    """Linear-interpolated percentile (the 'linear' method of numpy), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass
class ReportData:
    since: datetime
    until: datetime
    calls_by_end_reason: list[tuple[str, int]] = field(default_factory=list)
    bucket: timedelta = timedelta(hours=1)
    buckets: list[datetime] = field(default_factory=list)
    interruptions_per_bucket: list[int] = field(default_factory=list)
    backchannels_per_bucket: list[int] = field(default_factory=list)
    decision_latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    false_rate_per_agent: list[tuple[str, int, int]] = field(default_factory=list)
    latency_percentiles: dict[str, dict[int, float | None]] = field(default_factory=dict)


def _bucket_size(since: datetime, until: datetime) -> timedelta:
    span = until - since
    for size in (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=6)):
        if span / size <= 48:
            return size
    return timedelta(days=1)


def collect(engine: Engine, since: datetime, until: datetime) -> ReportData:
    data = ReportData(since=since, until=until, bucket=_bucket_size(since, until))
    params: dict[str, Any] = {"since": since, "until": until}
    with engine.connect() as conn:
        data.calls_by_end_reason = [
            (r, int(n)) for r, n in conn.execute(_statement("calls_by_end_reason"), params).all()
        ]
        verdicts = conn.execute(_statement("verdicts"), params).all()
        data.false_rate_per_agent = [
            (agent, int(i or 0), int(f or 0))
            for agent, i, f in conn.execute(_statement("false_interruptions_per_agent"), params).all()
        ]
        turns = conn.execute(_statement("turn_latencies"), params).all()

    n_buckets = max(1, math.ceil((until - since) / data.bucket))
    data.buckets = [since + i * data.bucket for i in range(n_buckets)]
    data.interruptions_per_bucket = [0] * n_buckets
    data.backchannels_per_bucket = [0] * n_buckets
    data.decision_latencies_ms = {"interruption": [], "backchannel": []}
    for occurred_at, kind, _mode, delay in verdicts:
        index = min(n_buckets - 1, int((occurred_at - since) / data.bucket))
        counts = data.interruptions_per_bucket if kind == "interruption" else data.backchannels_per_bucket
        counts[index] += 1
        if delay is not None:
            data.decision_latencies_ms[kind].append(float(delay))
    for i, column in enumerate(LATENCY_COLUMNS):
        values = [float(row[i]) for row in turns if row[i] is not None]
        data.latency_percentiles[column] = {p: percentile(values, p) for p in PERCENTILES}
    return data


def _histogram(
    values: dict[str, list[float]], bin_ms: float = 50.0
) -> tuple[list[str], dict[str, Sequence[float]]]:
    everything = [v for vs in values.values() for v in vs]
    if not everything:
        return [], {}
    n_bins = min(40, int(max(everything) // bin_ms) + 1)
    labels = [f"{int(i * bin_ms)}" for i in range(n_bins)]
    series: dict[str, Sequence[float]] = {}
    for name, vs in values.items():
        counts = [0.0] * n_bins
        for v in vs:
            counts[min(n_bins - 1, int(v // bin_ms))] += 1
        series[name] = counts
    return labels, series


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_html(data: ReportData) -> str:
    hist_labels, hist_series = _histogram(data.decision_latencies_ms)
    fmt = "%Y-%m-%d %H:%M" if data.bucket < timedelta(days=1) else "%Y-%m-%d"
    time_labels = [b.strftime(fmt) for b in data.buckets]
    charts = [
        bar_chart(
            "Interruptions and backchannels over time",
            time_labels,
            {"interruption": data.interruptions_per_bucket, "backchannel": data.backchannels_per_bucket},
            y_label=f"verdicts per {data.bucket}",
        ),
        bar_chart(
            "Decision latency (overlap onset to verdict)",
            hist_labels,
            dict(hist_series),
            y_label="verdicts per 50 ms bin (ms)",
        ),
        bar_chart(
            "False-interruption rate per agent",
            [agent for agent, _, _ in data.false_rate_per_agent],
            {"false / interruptions": [f / i if i else 0.0 for _, i, f in data.false_rate_per_agent]},
            y_label="rate",
            value_format="{:.1%}",
        ),
        bar_chart(
            "Turn latency percentiles",
            [c.removesuffix("_ms") for c in LATENCY_COLUMNS],
            {f"p{p}": [data.latency_percentiles[c][p] or 0.0 for c in LATENCY_COLUMNS] for p in PERCENTILES},
            y_label="ms",
            value_format="{:.0f} ms",
        ),
    ]
    total_calls = sum(n for _, n in data.calls_by_end_reason)
    reasons = "".join(f"<tr><td>{escape(r)}</td><td>{n}</td></tr>" for r, n in data.calls_by_end_reason)
    agents = "".join(
        f"<tr><td>{escape(a)}</td><td>{i}</td><td>{f}</td><td>{(f / i if i else 0):.1%}</td></tr>"
        for a, i, f in data.false_rate_per_agent
    )
    pct_rows = "".join(
        f"<tr><td>{c}</td>"
        + "".join(f"<td>{_ms(data.latency_percentiles[c][p])}</td>" for p in PERCENTILES)
        + "</tr>"
        for c in LATENCY_COLUMNS
    )
    sql = "".join(f"<h3>{escape(name)}</h3><pre>{escape(stmt.strip())}</pre>" for name, stmt in SQL.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Gateway report {escape(data.since.isoformat())} to {escape(data.until.isoformat())}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 980px; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; }}
pre {{ background: #f6f6f6; padding: 8px; overflow-x: auto; }} svg {{ display: block; margin: 1.5em 0; }}
</style></head><body>
<h1>Gateway report</h1>
<p>From {escape(data.since.isoformat())} to {escape(data.until.isoformat())} (UTC). {total_calls} calls.</p>
<table><tr><th>end reason</th><th>calls</th></tr>{reasons}</table>
{"".join(charts)}
<h2>False interruptions per agent</h2>
<table><tr><th>agent</th><th>interruptions</th><th>false</th><th>rate</th></tr>{agents}</table>
<h2>Turn latency percentiles (ms)</h2>
<table><tr><th>stage</th>{"".join(f"<th>p{p}</th>" for p in PERCENTILES)}</tr>{pct_rows}</table>
<h2>SQL</h2>
<p>Parameters: <code>:since</code> = {escape(data.since.isoformat())},
<code>:until</code> = {escape(data.until.isoformat())}.</p>
{sql}
</body></html>
"""


__all__ = ["SQL", "ReportData", "collect", "percentile", "render_html"]
