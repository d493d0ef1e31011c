"""Shared fixtures: a fresh metadata store per test, on SQLite and on PostgreSQL.

The ``db_url`` fixture is parametrized over both backends. PostgreSQL tests use a fresh schema
in the ``test`` database of the server on 127.0.0.1:5432 (override with
DOCKYARD_TEST_PG_URL). Without a server they skip with the reason — except when
DOCKYARD_REQUIRE_POSTGRES=1 (set by .ci/run), where a missing server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.backend import Backend
from dockyard.core.config import Settings, load_settings
from dockyard.governance.audit import Actor
from dockyard.tracking.service import TrackingService

PG_URL = os.environ.get("DOCKYARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_error: str | None = None
_pg_checked = False


def _postgres_problem() -> str | None:
    """None when the PostgreSQL server answers, else why not (checked once per session)."""
    global _pg_checked, _pg_error
    if not _pg_checked:
        _pg_checked = True
        try:
            from sqlalchemy import create_engine, text

            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:
            _pg_error = f"PostgreSQL at {PG_URL} does not answer: {type(exc).__name__}: {exc}"
    return _pg_error


def make_pg_schema() -> tuple[str, str]:
    """Create a fresh schema; returns (url with search_path, schema name)."""
    from sqlalchemy import create_engine, text

    problem = _postgres_problem()
    if problem:
        if os.environ.get("DOCKYARD_REQUIRE_POSTGRES") == "1":
            pytest.fail(problem + " (DOCKYARD_REQUIRE_POSTGRES=1)")
        pytest.skip(problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dockyard.db'}"
        return
    url, schema = make_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(overrides={"home": str(tmp_path), "db_url": db_url}, environ={})


@pytest.fixture
def backend(settings: Settings) -> Iterator[Backend]:
    b = Backend.open(settings)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def service(backend: Backend) -> TrackingService:
    return backend.tracking(Actor("tester"))


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A bare SQLite-only store for tests that need no PostgreSQL variant."""
    return load_settings(overrides={"home": str(tmp_path)}, environ={})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Local mode on a fresh DOCKYARD_HOME, with the fluent SDK's process state reset."""
    import dockyard.client.fluent as fluent

    monkeypatch.setenv("DOCKYARD_HOME", str(tmp_path))
    for var in ("DOCKYARD_TRACKING_URI", "DOCKYARD_DB_URL", "DOCKYARD_ARTIFACT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(fluent, "_client", None)
    monkeypatch.setattr(fluent, "_buffer", None)
    monkeypatch.setattr(fluent, "_stack", [])
    return tmp_path


@pytest.fixture
def sdk_store(home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Local mode on a fresh home whose metadata store is SQLite or PostgreSQL."""
    import dockyard as dy
    from dockyard.client import client as client_module

    monkeypatch.setenv("DOCKYARD_DB_URL", db_url)
    yield home
    dy.end_run()
    # Close the process-wide backend of this store (its pool) before the schema is dropped.
    for key in [k for k in client_module._backends if k[0] == db_url]:
        client_module._backends.pop(key).close()
