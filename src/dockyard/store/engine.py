"""Engines for the metadata store, and migrations applied on first use.

SQLite (the default) runs in WAL mode with a busy timeout, and every write transaction starts
with ``BEGIN IMMEDIATE`` so that several processes writing the same file queue for the lock
instead of failing with "database is locked" on a read-to-write upgrade. Reads use a second
engine whose transactions are deferred, so readers never wait for writers.

PostgreSQL goes through psycopg 3. Migrations run under a lock (a file lock beside the SQLite
file, an advisory lock on PostgreSQL) so that many processes opening a fresh store at once
migrate it exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from dockyard.core.errors import InvalidInput, Unavailable

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x646F636B  # "dock"
#: The newest migration. Kept here so that opening an up-to-date store never imports Alembic
#: (a sixth of the server's start-up); a test checks it against Alembic's own view.
HEAD_REVISION = "0008"


@dataclass(frozen=True)
class Engines:
    """The writer and reader engines of one store (the same engine outside SQLite)."""

    writer: Engine
    reader: Engine
    url: str

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def redact_url(url: str) -> str:
    """The URL with any password hidden, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable url>"


def _sqlite_engine(url: str, busy_timeout: float, *, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        # The server runs sync routes on up to 40 threads; SQLite connections are cheap, so
        # let each one get a connection instead of queueing on the pool.
        pool_size=8,
        max_overflow=56,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" event below issues BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def create_engines(url: str, *, busy_timeout: float = 60.0) -> Engines:
    """Create the engines for ``url``; a bad URL or a missing driver is a clear error."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(
            f"metadata store URL {url!r} is not a valid SQLAlchemy URL "
            "(e.g. sqlite:///path/to/dockyard.db or postgresql+psycopg://user@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            writer = _sqlite_engine(url, busy_timeout, immediate=True)
            reader = _sqlite_engine(url, busy_timeout, immediate=False)
            return Engines(writer=writer, reader=reader, url=url)
        if backend == "postgresql":
            engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
            return Engines(writer=engine, reader=engine, url=url)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise Unavailable(
            f"the database driver for {redact_url(url)} is not installed ({exc}); "
            "for PostgreSQL run: pip install 'dockyard[postgres]'"
        ) from None
    raise InvalidInput(
        f"metadata store URL {redact_url(url)} uses {backend!r}; supported: sqlite, postgresql"
    )


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engines: Engines) -> str | None:
    with engines.reader.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])


@contextlib.contextmanager
def _migration_lock(engines: Engines) -> Iterator[Any]:
    """Yield a connection to migrate on, holding a lock that only one process gets at once."""
    if engines.dialect == "sqlite":
        db = make_url(engines.url).database
        lock_path = Path(f"{db}.migrate.lock") if db and db != ":memory:" else None
        fd = None
        if lock_path is not None:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with engines.writer.connect() as conn:
                yield conn
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
    else:
        with engines.writer.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()


def upgrade(engines: Engines, revision: str = "head") -> tuple[str | None, str]:
    """Apply migrations up to ``revision``; returns (before, after) revisions."""
    from alembic import command

    try:
        before = current_revision(engines)
        with _migration_lock(engines) as conn:
            command.upgrade(_alembic_config(conn), revision)
            conn.commit()
        return before, current_revision(engines) or ""
    except OperationalError as exc:
        raise Unavailable(
            f"cannot reach the metadata store at {redact_url(engines.url)}: {exc.orig}"
        ) from None


def ensure_migrated(engines: Engines) -> None:
    """Bring the schema to the head revision if it is behind (cheap when it is not)."""
    try:
        current = current_revision(engines)
    except OperationalError as exc:
        raise Unavailable(
            f"cannot reach the metadata store at {redact_url(engines.url)}: {exc.orig}"
        ) from None
    if current != HEAD_REVISION:
        if current is None and _create_fresh(engines):
            return
        upgrade(engines)


#: The table Alembic keeps its revision in, as Alembic itself creates it.
_ALEMBIC_VERSION_DDL = (
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)


def _create_fresh(engines: Engines) -> bool:
    """Build an empty database straight from the table definitions and stamp it at the head
    revision -- what Alembic's documentation recommends for a new database -- so that a new
    store never imports Alembic (with its templating, a fifth of a fresh server's start-up).

    The schema is the one the migrations build: a test compares the two. This only works
    while the migrations hold nothing but schema changes; one that also writes rows must be
    run here too. Returns True when the store is at the head revision afterwards, False (having
    changed nothing) when the database already has tables, so the migrations run as usual.
    """
    from dockyard.store.schema import metadata

    try:
        with _migration_lock(engines) as conn:
            # Under the lock: another process may have built the store while we waited.
            names = inspect(conn).get_table_names()
            if names:
                fresh = False
                if "alembic_version" in names:
                    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
                    fresh = row is not None and str(row[0]) == HEAD_REVISION
                conn.rollback()
                return fresh
            metadata.create_all(conn)
            conn.execute(text(_ALEMBIC_VERSION_DDL))
            conn.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
            )
            conn.commit()
            return True
    except OperationalError as exc:
        raise Unavailable(
            f"cannot reach the metadata store at {redact_url(engines.url)}: {exc.orig}"
        ) from None
