"""Commands `gateway db`, `gateway calls` and `gateway report`.

The database is `--db URL`, else `$GATEWAY_DB_URL`, else `sqlite:///gateway.db`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.metrics.database import DB_URL_ENV, DEFAULT_DB_URL, create_db_engine, redact_url, resolve_db_url

DB_HELP = f"database URL (default: ${DB_URL_ENV}, else {DEFAULT_DB_URL})"


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="metrics database schema: upgrade, downgrade, current")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (default: up to the latest)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations (default: the last one)")
    down.add_argument("revision", nargs="?", default="-1")
    current = db_sub.add_parser("current", help="show the database's revision and whether it is up to date")
    for p in (up, down, current):
        p.add_argument("--db", help=DB_HELP)
    up.set_defaults(func=_db_upgrade)
    down.set_defaults(func=_db_downgrade)
    current.set_defaults(func=_db_current)

    calls = subparsers.add_parser(
        "calls", help="list recorded calls, or `calls show ID` for one call's timeline"
    )
    calls.add_argument("--db", help=DB_HELP)
    calls.add_argument(
        "--since", help="calls started at or after: ISO date/time (UTC if no zone) or 30m, 24h, 7d"
    )
    calls.add_argument("--until", help="calls started before (same formats)")
    calls.add_argument("--agent")
    calls.add_argument("--edge", choices=("sip", "webrtc", "mediastream", "replay"))
    calls.add_argument("--end-reason")
    calls.add_argument(
        "--limit", type=int, default=100, help="at most this many calls, newest first (0: all)"
    )
    fmt = calls.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON array")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    calls.set_defaults(func=_calls_list)
    calls_sub = calls.add_subparsers(dest="calls_command", metavar="show")
    show = calls_sub.add_parser(
        "show", help="timeline of one call: who spoke when, overlaps, verdicts, latency"
    )
    show.add_argument("id", help="calls.id, `last`, or the edge's call id (SIP Call-ID)")
    show.add_argument("--db", help=DB_HELP, dest="show_db")
    show.set_defaults(func=_calls_show)

    report = subparsers.add_parser("report", help="HTML report with plots over a time range")
    report.add_argument("--db", help=DB_HELP)
    report.add_argument("--since", required=True, help="ISO date/time or 24h, 7d ...")
    report.add_argument("--until", help="default: now")
    report.add_argument("--out", type=Path, default=Path("report.html"))
    report.set_defaults(func=_report)


def _db_upgrade(args: argparse.Namespace) -> int:
    from gateway.metrics import schema

    url = resolve_db_url(args.db)
    schema.upgrade(url, args.revision)
    print(f"{redact_url(url)}: upgraded to {args.revision}")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from gateway.metrics import schema

    url = resolve_db_url(args.db)
    schema.downgrade(url, args.revision)
    print(f"{redact_url(url)}: downgraded to {args.revision}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from gateway.metrics import schema

    url = resolve_db_url(args.db)
    engine = create_db_engine(url)
    try:
        current = schema.current_revisions(engine)
        heads = schema.head_revisions()
    finally:
        engine.dispose()
    state = "up to date" if current == heads else f"out of date (head: {', '.join(sorted(heads))})"
    print(f"{redact_url(url)}: {', '.join(sorted(current)) or 'empty'} - {state}")
    return 0 if current == heads else 1


def _when(value: str | None) -> datetime | None:
    from gateway.metrics.queries import parse_when

    return parse_when(value) if value else None


def _calls_list(args: argparse.Namespace) -> int:
    from gateway.metrics.queries import CallFilter, list_calls

    engine = create_db_engine(resolve_db_url(args.db))
    try:
        flt = CallFilter(
            since=_when(args.since),
            until=_when(args.until),
            agent=args.agent,
            edge=args.edge,
            end_reason=args.end_reason,
            limit=args.limit or None,
        )
        rows = [c.to_dict() for c in list_calls(engine, flt)]
    finally:
        engine.dispose()
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif args.csv:
        from gateway.metrics.queries import CallSummary

        writer = csv.DictWriter(
            sys.stdout, fieldnames=list(CallSummary.__dataclass_fields__), lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_table(rows)
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns = [
        ("id", "id"),
        ("started_at", "started (UTC)"),
        ("edge", "edge"),
        ("agent", "agent"),
        ("caller", "caller"),
        ("duration_s", "dur s"),
        ("end_reason", "end"),
        ("interruptions", "intr"),
        ("backchannels", "bkch"),
        ("false_interruptions", "false"),
        ("turns", "turns"),
        ("avg_response_latency_ms", "resp ms"),
    ]

    def cell(row: dict[str, Any], key: str) -> str:
        value = row[key]
        if value is None:
            return "-"
        if key == "started_at":
            return str(value)[:19].replace("T", " ")
        if isinstance(value, float):
            return f"{value:.1f}" if key == "duration_s" else f"{value:.0f}"
        return str(value)

    table = [[title for _, title in columns]] + [[cell(r, key) for key, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    if not rows:
        print("(no calls)")


def _calls_show(args: argparse.Namespace) -> int:
    from gateway.metrics.queries import load_call
    from gateway.metrics.timeline import render_timeline

    engine = create_db_engine(resolve_db_url(args.show_db or args.db))
    try:
        detail = load_call(engine, args.id)
    finally:
        engine.dispose()
    if detail is None:
        print(f"no call {args.id!r}", file=sys.stderr)
        return 1
    sys.stdout.write(render_timeline(detail))
    return 0


def _report(args: argparse.Namespace) -> int:
    from gateway.metrics.report import collect, render_html

    since = _when(args.since)
    until = _when(args.until) or datetime.now(UTC)
    assert since is not None
    engine = create_db_engine(resolve_db_url(args.db))
    try:
        html = render_html(collect(engine, since, until))
    finally:
        engine.dispose()
    args.out.write_text(html, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


__all__ = ["register"]
