"""Schema versions: Alembic driven from code (no alembic.ini needed) and the start-up check for `serve`."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from gateway.metrics.database import normalize_db_url, redact_url

MIGRATIONS_ENV = "GATEWAY_MIGRATIONS_DIR"


class SchemaOutOfDate(RuntimeError):
    """The database's schema revision is not the one this code was written for."""


def migrations_dir() -> Path:
    override = os.environ.get(MIGRATIONS_ENV)
    path = Path(override) if override else Path(str(files("gateway.metrics") / "migrations"))
    if not (path / "env.py").is_file():
        raise FileNotFoundError(f"Alembic environment not found at {path} (set {MIGRATIONS_ENV})")
    return path


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation would eat '%' in passwords.
    config.set_main_option("sqlalchemy.url", normalize_db_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def check_schema_current(engine: Engine) -> None:
    """Raise SchemaOutOfDate, with the command that fixes it, unless the database is at the code's head."""
    current = current_revisions(engine)
    heads = head_revisions()
    if current == heads:
        return
    where = redact_url(engine.url.render_as_string(hide_password=False))
    found = ", ".join(sorted(current)) or "no schema (empty database)"
    raise SchemaOutOfDate(
        f"metrics database {where} is at revision {found}; this gateway needs {', '.join(sorted(heads))}. "
        f"Run: gateway db upgrade --db '{where}'"
    )


__all__ = [
    "SchemaOutOfDate",
    "alembic_config",
    "check_schema_current",
    "current_revisions",
    "downgrade",
    "head_revisions",
    "migrations_dir",
    "upgrade",
]
