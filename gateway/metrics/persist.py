"""Blocking database work of the writer: apply records idempotently, close calls left open by a crash.

Everything here runs in the writer's database process (`gateway.metrics.dbworker`) with a SQLAlchemy
Connection; nothing touches asyncio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from gateway.metrics.records import InsertRow, Record, UpdateRow
from gateway.metrics.tables import TABLES_BY_NAME, Call, InterruptionEvent, SpeechSegment, Turn

log = logging.getLogger(__name__)

GATEWAY_RESTART = "gateway_restart"


class UnknownCall(LookupError):
    """A row names a call whose row is not in the database."""


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached or did not answer (spool and retry), False when the
    records themselves were refused (retrying them would fail again)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, OSError | TimeoutError)


def _table(name: str) -> Table:
    table = TABLES_BY_NAME[name].__table__
    assert isinstance(table, Table)
    return table


def _groups(records: Sequence[Record]) -> Iterable[list[Record]]:
    """Consecutive records with the same operation, table and columns (one executemany each)."""
    group: list[Record] = []
    key: tuple[Any, ...] | None = None
    for record in records:
        has_call = isinstance(record, InsertRow) and record.call_uid is not None
        k = (record.op, record.table, frozenset(record.values), has_call)
        if group and k != key:
            yield group
            group = []
        key = k
        group.append(record)
    if group:
        yield group


def _resolve_calls(conn: Connection, uids: set[str], cache: dict[str, int]) -> None:
    missing = [u for u in uids if u not in cache]
    if missing:
        rows = conn.execute(select(Call.uid, Call.id).where(Call.uid.in_(missing)))
        cache.update({uid: id_ for uid, id_ in rows})


def _insert(conn: Connection, group: list[InsertRow], call_ids: dict[str, int]) -> None:
    table = _table(group[0].table)
    needs_call = group[0].call_uid is not None
    if needs_call:
        _resolve_calls(conn, {r.call_uid for r in group if r.call_uid}, call_ids)
    params: list[dict[str, Any]] = []
    for record in group:
        row = dict(record.values, uid=record.uid)
        if record.call_uid is not None:
            if record.call_uid not in call_ids:
                raise UnknownCall(f"{record.table} row {record.uid} names unknown call {record.call_uid}")
            row["call_id"] = call_ids[record.call_uid]
        params.append(row)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=["uid"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["uid"])
    else:  # pragma: no cover - only the two supported dialects are tested
        raise NotImplementedError(f"metrics writer does not support {dialect}")
    conn.execute(stmt, params)


def _update(conn: Connection, group: list[UpdateRow]) -> None:
    table = _table(group[0].table)
    columns = sorted(group[0].values)
    stmt = (
        update(table)
        .where(table.c.uid == bindparam("b_uid"))
        .values({c: bindparam(f"b_{c}", type_=table.c[c].type) for c in columns})
    )
    params = [{"b_uid": r.uid, **{f"b_{c}": r.values[c] for c in columns}} for r in group]
    conn.execute(stmt, params)


def apply_records(
    conn: Connection, records: Sequence[Record], call_ids: dict[str, int] | None = None
) -> None:
    """Apply records in order inside the caller's transaction. Safe to repeat (idempotent)."""
    cache: dict[str, int] = {} if call_ids is None else call_ids
    for group in _groups(records):
        if isinstance(group[0], InsertRow):
            _insert(conn, [r for r in group if isinstance(r, InsertRow)], cache)
        else:
            _update(conn, [r for r in group if isinstance(r, UpdateRow)])


def last_alive(
    conn: Connection, call_pk: int, started_at: datetime, answered_at: datetime | None
) -> datetime:
    """The last moment a call is known to have been alive: its start, answer, latest event or turn, or
    the end of its latest speech segment."""
    origin: datetime = answered_at or started_at
    candidates: list[datetime] = [started_at] + ([answered_at] if answered_at else [])
    for model in (InterruptionEvent, Turn):
        last = conn.execute(select(func.max(model.occurred_at)).where(model.call_id == call_pk)).scalar()
        if last is not None:
            candidates.append(last)
    last_speech = conn.execute(
        select(func.max(SpeechSegment.end_s)).where(SpeechSegment.call_id == call_pk)
    ).scalar()
    if last_speech is not None:
        candidates.append(origin + timedelta(seconds=float(last_speech)))
    return max(candidates)


def close_open_calls(conn: Connection, instance: str, keep: set[str]) -> list[int]:
    """Close this instance's calls that have no end (left open by a crash or kill), except `keep` (calls
    live in this process). `ended_at` is the last moment the call is known to have been alive."""
    open_calls = conn.execute(
        select(Call.id, Call.uid, Call.started_at, Call.answered_at).where(
            Call.ended_at.is_(None), Call.instance == instance
        )
    ).all()
    closed: list[int] = []
    for call_pk, uid, started_at, answered_at in open_calls:
        if uid in keep:
            continue
        conn.execute(
            update(Call)
            .where(Call.id == call_pk, Call.ended_at.is_(None))
            .values(ended_at=last_alive(conn, call_pk, started_at, answered_at), end_reason=GATEWAY_RESTART)
        )
        closed.append(call_pk)
    if closed:
        log.warning("closed %d call(s) left open by a previous run: %s", len(closed), closed)
    return closed


__all__ = [
    "GATEWAY_RESTART",
    "UnknownCall",
    "apply_records",
    "close_open_calls",
    "is_unavailable",
    "last_alive",
]
