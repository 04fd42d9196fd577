"""Which database, and engines configured for it (SQLite in WAL mode, PostgreSQL through psycopg 3)."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

DEFAULT_DB_URL = "sqlite:///gateway.db"
DB_URL_ENV = "GATEWAY_DB_URL"


def resolve_db_url(cli_value: str | None = None) -> str:
    """`--db`, else `$GATEWAY_DB_URL`, else the embedded SQLite file; `postgresql://` means psycopg 3."""
    url = cli_value or os.environ.get(DB_URL_ENV) or DEFAULT_DB_URL
    return normalize_db_url(url)


def normalize_db_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def create_db_engine(url: str, *, connect_timeout_s: float = 3.0, busy_timeout_ms: int = 5000) -> Engine:
    """An engine for metrics. SQLite: WAL journal, foreign keys on, a bounded busy wait. PostgreSQL:
    a short connect timeout and pre-ping, so an unreachable server fails fast and the writer spools."""
    url = normalize_db_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": max(1, round(connect_timeout_s))}
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()


__all__ = [
    "DB_URL_ENV",
    "DEFAULT_DB_URL",
    "create_db_engine",
    "normalize_db_url",
    "redact_url",
    "resolve_db_url",
]
