"""Migrations on SQLite and PostgreSQL: from empty to head, down to nothing, and up again."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from gateway.metrics import schema
from gateway.metrics.database import create_db_engine
from gateway.metrics.tables import Base

TABLES = {
    "calls",
    "interruption_events",
    "turns",
    "speech_segments",
    "usage",
    "call_events",
    "call_attempts_refused",
}
VIEWS = {"v_interruptions", "v_call_summary", "v_turn_latencies"}
DESIGN_COLUMNS = {
    "calls": {
        "id",
        "call_id",
        "edge",
        "agent",
        "caller",
        "callee",
        "started_at",
        "answered_at",
        "ended_at",
        "end_reason",
        "codec",
    },
    "interruption_events": {
        "id",
        "call_id",
        "occurred_at",
        "offset_s",
        "kind",
        "mode",
        "probability",
        "detection_delay_ms",
        "overlap_s",
        "agent_text_heard",
    },
    "call_events": {"id", "call_id", "occurred_at", "offset_s", "kind", "value", "detail"},
    "call_attempts_refused": {
        "id",
        "occurred_at",
        "edge",
        "reason",
        "status",
        "detail",
        "caller",
        "callee",
        "agent",
        "edge_call_id",
    },
}


def _tables_and_views(url: str) -> tuple[set[str], set[str]]:
    engine = create_db_engine(url)
    try:
        insp = inspect(engine)
        return set(insp.get_table_names()) - {"alembic_version"}, set(insp.get_view_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert _tables_and_views(db_url) == (set(), set())

    schema.upgrade(db_url)
    assert _tables_and_views(db_url) == (TABLES, VIEWS)

    schema.downgrade(db_url, "0002")
    assert _tables_and_views(db_url) == (TABLES - {"call_events", "call_attempts_refused"}, VIEWS)

    schema.downgrade(db_url, "0001")
    assert _tables_and_views(db_url) == (TABLES - {"call_events", "call_attempts_refused"}, set())

    schema.downgrade(db_url, "base")
    assert _tables_and_views(db_url) == (set(), set())

    schema.upgrade(db_url)
    assert _tables_and_views(db_url) == (TABLES, VIEWS)


def test_migrations_build_exactly_the_models(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_design_contract_columns_exist(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url)
    try:
        insp = inspect(engine)
        for table, columns in DESIGN_COLUMNS.items():
            assert columns <= {c["name"] for c in insp.get_columns(table)}
        fks = insp.get_foreign_keys("interruption_events")
        assert [(fk["referred_table"], fk["constrained_columns"]) for fk in fks] == [("calls", ["call_id"])]
    finally:
        engine.dispose()


def test_check_schema_current(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        with pytest.raises(schema.SchemaOutOfDate, match=r"no schema .*gateway db upgrade"):
            schema.check_schema_current(engine)
        schema.upgrade(db_url, "0001")
        with pytest.raises(schema.SchemaOutOfDate, match=r"revision 0001; this gateway needs 0003"):
            schema.check_schema_current(engine)
        schema.upgrade(db_url)
        schema.check_schema_current(engine)  # no exception at head
        assert schema.current_revisions(engine) == schema.head_revisions() == {"0003"}
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wal.db"
    schema.upgrade(url)
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
