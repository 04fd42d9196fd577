"""Shared fixtures: a fresh database per test, on SQLite and on a real PostgreSQL.

`db_url` is parametrised over both dialects. For PostgreSQL each test gets its own database
(`gateway_test_<random>`, created through the `postgres` user and dropped afterwards), so tests never
see each other's rows and never touch anyone else's databases. The server is the local cluster
(`scripts/postgres.sh` starts it when it is down); `GATEWAY_TEST_PG_URL` points elsewhere.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url

from gateway.metrics import schema
from gateway.metrics.database import create_db_engine

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DIALECTS = ("sqlite", "postgresql")


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_reachable(url: str) -> bool:
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A superuser URL of the test PostgreSQL server, starting the local cluster if it is down."""
    if not _pg_reachable(PG_ADMIN_URL):
        subprocess.run([str(ROOT / "scripts" / "postgres.sh")], check=False, capture_output=True, timeout=120)
    if not _pg_reachable(PG_ADMIN_URL):
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (run scripts/postgres.sh)")
    return PG_ADMIN_URL


def create_pg_database(admin_url: str) -> str:
    name = f"gateway_test_{secrets.token_hex(6)}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each dialect, private to this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metrics.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    url = create_pg_database(admin)
    try:
        yield url
    finally:
        drop_pg_database(admin, url)


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """`db_url` with every migration applied."""
    schema.upgrade(db_url)
    return db_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = create_db_engine(migrated_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "metrics.jsonl"
