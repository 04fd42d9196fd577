"""What sessions emit: row inserts and row updates, each keyed by a `uid` made at emit time.

Two record shapes cover the whole schema. An insert is idempotent through its unique `uid`; an update
sets columns of the row with that `uid` to fixed values, so applying it twice changes nothing. Rows that
belong to a call name it by the call's `uid` (`call_uid`); the writer resolves it to `calls.id`, which
is only known once the call row is in the database.

Records serialise to one JSON object per line for the spool; datetimes travel as {"$dt": ISO-8601}.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gateway.metrics.tables import TABLES_BY_NAME

_COLUMNS: dict[str, frozenset[str]] = {
    name: frozenset(model.__table__.columns.keys()) for name, model in TABLES_BY_NAME.items()
}
_NEEDS_CALL = frozenset(name for name, cols in _COLUMNS.items() if name != "calls" and "call_id" in cols)


def new_uid() -> str:
    return str(uuid.uuid4())


def _check_columns(table: str, values: dict[str, Any], *, insert: bool) -> None:
    columns = _COLUMNS.get(table)
    if columns is None:
        raise ValueError(f"unknown metrics table {table!r}")
    forbidden = {"id", "uid"} | ({"call_id"} if table in _NEEDS_CALL else set())
    unknown = set(values) - columns
    if unknown or forbidden & set(values):
        raise ValueError(f"bad columns for {table}: {sorted(unknown | (forbidden & set(values)))}")
    if not insert and not values:
        raise ValueError("an update must set at least one column")


@dataclass(frozen=True)
class InsertRow:
    table: str
    values: dict[str, Any]
    call_uid: str | None = None
    uid: str = field(default_factory=new_uid)
    op: Literal["insert"] = "insert"

    def __post_init__(self) -> None:
        _check_columns(self.table, self.values, insert=True)
        if (self.table in _NEEDS_CALL) != (self.call_uid is not None):
            raise ValueError(
                f"{self.table} rows need call_uid" if self.call_uid is None else "calls: no call_uid"
            )


@dataclass(frozen=True)
class UpdateRow:
    table: str
    uid: str
    values: dict[str, Any]
    op: Literal["update"] = "update"

    def __post_init__(self) -> None:
        _check_columns(self.table, self.values, insert=False)


Record = InsertRow | UpdateRow


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    return value


def record_to_json(record: Record) -> str:
    data: dict[str, Any] = {
        "op": record.op,
        "table": record.table,
        "uid": record.uid,
        "values": {k: _encode_value(v) for k, v in record.values.items()},
    }
    if isinstance(record, InsertRow) and record.call_uid is not None:
        data["call_uid"] = record.call_uid
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def record_from_json(line: str) -> Record:
    data = json.loads(line)
    values = {k: _decode_value(v) for k, v in data["values"].items()}
    if data["op"] == "insert":
        return InsertRow(table=data["table"], values=values, call_uid=data.get("call_uid"), uid=data["uid"])
    if data["op"] == "update":
        return UpdateRow(table=data["table"], uid=data["uid"], values=values)
    raise ValueError(f"unknown record op {data['op']!r}")


__all__ = ["InsertRow", "Record", "UpdateRow", "new_uid", "record_from_json", "record_to_json"]
