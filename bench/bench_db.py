"""Metrics database benchmark: insert throughput per database, and the writer's effect on frame timing.

    .venv/bin/python bench/bench_db.py [--events 20000] [--seconds 5] [--rate 2000] [--runs 1] [--pg URL]

1. Inserted events per second: N interruption events emitted, then written by MetricsWriter (batched,
   ON CONFLICT DO NOTHING) into a fresh SQLite file and a fresh PostgreSQL database.
2. Frame timing: an asyncio loop ticks every 20 ms (like a call's audio loop) for a few seconds while
   sessions emit `--rate` events per second and the writer flushes them every 0.5 s. Tick lateness
   percentiles with and without the writer, and their ratio (baseline = no writer, same run). The
   writer's database work runs in its own process (gateway.metrics.dbworker); this process only pickles
   batches and writes them to a pipe. `--runs N` repeats the three timing runs N times, interleaved.
   The last column counts this process's garbage collections during the run and the longest one: a
   full collection over a big heap is a tick's worth of lateness, whoever made the garbage.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import make_url

from gateway.metrics import schema
from gateway.metrics.records import InsertRow
from gateway.metrics.writer import MetricsWriter

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TICK_S = 0.020


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Databases:
    """A fresh SQLite file and a fresh PostgreSQL database, dropped afterwards."""

    def __init__(self, pg_admin: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_db_"))
        self.pg_admin = pg_admin
        self.pg_name = f"gateway_bench_{secrets.token_hex(4)}"

    def __enter__(self) -> dict[str, str]:
        with psycopg.connect(_libpq(self.pg_admin), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        urls = {
            "sqlite": f"sqlite:///{self.tmp / 'bench.db'}",
            "postgresql": make_url(self.pg_admin)
            .set(database=self.pg_name)
            .render_as_string(hide_password=False),
        }
        for url in urls.values():
            schema.upgrade(url)
        return urls

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(_libpq(self.pg_admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def _call() -> InsertRow:
    return InsertRow(
        "calls", {"call_id": secrets.token_hex(8), "edge": "sip", "agent": "bench", "started_at": T0}
    )


def _event(call: InsertRow, i: int) -> InsertRow:
    return InsertRow(
        "interruption_events",
        {
            "occurred_at": T0,
            "offset_s": i * 0.1,
            "onset_s": i * 0.1 - 0.3,
            "kind": "backchannel" if i % 3 else "interruption",
            "mode": "adaptive",
            "probability": 0.5,
            "detection_delay_ms": 300.0,
            "requests": 3,
            "overlap_s": 0.3,
            "agent_action": "continued",
        },
        call_uid=call.uid,
    )


async def insert_rate(url: str, n: int, spool_dir: Path) -> tuple[float, float]:
    writer = MetricsWriter(url, spool_dir / f"{make_url(url).get_backend_name()}.jsonl", instance="bench")
    call = _call()
    writer.emit(call)
    await writer.flush()  # starts the database process
    for i in range(n):
        writer.emit(_event(call, i))
    start = time.perf_counter()
    stats = await writer.flush()
    elapsed = time.perf_counter() - start
    await writer.stop()
    assert stats.written == n + 1 and stats.spooled == 0, stats
    return n / elapsed, elapsed


class GcPauses:
    """Garbage collections in this process while it is active: how many, and the longest (ms)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._start) * 1000.0)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


async def frame_timing(
    url: str | None, seconds: float, rate: int, spool_dir: Path
) -> tuple[list[float], list[float]]:
    """Tick lateness (ms) of a 20 ms loop, and the GC pauses (ms) meanwhile; with `url`, sessions emit
    `rate` events/s to a live writer."""
    writer = None
    call = _call()
    if url:
        writer = MetricsWriter(url, spool_dir / f"timing-{secrets.token_hex(3)}.jsonl", instance="bench")
        await writer.start()
        writer.emit(call)
    per_tick = max(1, round(rate * TICK_S))
    lateness: list[float] = []
    start = time.perf_counter()
    ticks = int(seconds / TICK_S)
    with GcPauses() as gc_pauses:
        for k in range(1, ticks + 1):
            due = start + k * TICK_S
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            lateness.append((time.perf_counter() - due) * 1000.0)
            if writer:
                for i in range(per_tick):
                    writer.emit(_event(call, k * per_tick + i))
    if writer:
        await writer.stop()
        stats = writer.stats
        assert stats.spooled == 0 and stats.worker_restarts == 0, stats
        assert stats.written == stats.emitted, stats
    return lateness, gc_pauses.pauses


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p / 100))]


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rate", type=int, default=2000, help="events per second emitted during the timing run"
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat the timing runs (noisy machines)")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    spool_dir = Path(tempfile.mkdtemp(prefix="bench_spool_"))
    with Databases(args.pg) as urls:
        rows = []
        for name, url in urls.items():
            rate, elapsed = await insert_rate(url, args.events, spool_dir)
            rows.append([name, str(args.events), f"{elapsed:.2f}", f"{rate:,.0f}"])
        table(
            "Inserted events per second (one writer flush: chunks of 200 rows, one transaction each)",
            ["database", "events", "seconds", "events/s"],
            rows,
        )

        rows = []
        for run in range(1, args.runs + 1):
            runs = {"no writer (baseline)": await frame_timing(None, args.seconds, args.rate, spool_dir)}
            for name, url in urls.items():
                runs[f"writer -> {name}"] = await frame_timing(url, args.seconds, args.rate, spool_dir)
            base_p99 = pct(runs["no writer (baseline)"][0], 99)
            for name, (lat, pauses) in runs.items():
                rows.append(
                    [
                        *([str(run)] if args.runs > 1 else []),
                        name,
                        f"{statistics.median(lat):.2f}",
                        f"{pct(lat, 95):.2f}",
                        f"{pct(lat, 99):.2f}",
                        f"{max(lat):.2f}",
                        f"{pct(lat, 99) / base_p99:.2f}" if base_p99 > 0 else "-",
                        f"{len(pauses)} / {max(pauses, default=0.0):.1f}",
                    ]
                )
        table(
            f"20 ms tick lateness (ms) over {args.seconds:.0f} s, {args.rate} events/s, 0.5 s batches",
            [
                *(["#"] if args.runs > 1 else []),
                "run",
                "p50",
                "p95",
                "p99",
                "max",
                "p99 ratio",
                "GCs / longest ms",
            ],
            rows,
        )


if __name__ == "__main__":
    asyncio.run(main())
