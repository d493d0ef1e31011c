"""A new store is built from the table definitions and stamped, not migrated step by step:
it must end up exactly like a migrated one, and later migrations must apply to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from dockyard.store.engine import (
    HEAD_REVISION,
    create_engines,
    current_revision,
    ensure_migrated,
    upgrade,
)
from dockyard.store.schema import metadata


def test_a_fresh_store_is_at_head_with_the_schema_the_code_defines(db_url: str) -> None:
    engines = create_engines(db_url)
    try:
        ensure_migrated(engines)
        assert current_revision(engines) == HEAD_REVISION
        with engines.writer.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"the fresh store differs from schema.py: {diff}"
        # Alembic agrees that nothing is left to apply; opening it again changes nothing.
        assert upgrade(engines) == (HEAD_REVISION, HEAD_REVISION)
        ensure_migrated(engines)
        assert current_revision(engines) == HEAD_REVISION
    finally:
        engines.dispose()


def _shape(url: str) -> dict[str, Any]:
    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            insp = inspect(conn)
            return {
                name: {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)
                    ],
                    "pk": insp.get_pk_constraint(name)["constrained_columns"],
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in insp.get_indexes(name)
                    ),
                    "uniques": sorted(
                        tuple(u["column_names"]) for u in insp.get_unique_constraints(name)
                    ),
                    "fks": sorted(
                        (tuple(f["constrained_columns"]), f["referred_table"])
                        for f in insp.get_foreign_keys(name)
                    ),
                }
                for name in sorted(insp.get_table_names())
            }
    finally:
        engines.dispose()


def test_fresh_and_migrated_sqlite_stores_have_the_same_tables(tmp_path: Path) -> None:
    fresh, migrated = f"sqlite:///{tmp_path / 'fresh.db'}", f"sqlite:///{tmp_path / 'old.db'}"
    engines = create_engines(fresh)
    ensure_migrated(engines)
    engines.dispose()
    engines = create_engines(migrated)
    upgrade(engines)
    engines.dispose()
    assert _shape(fresh) == _shape(migrated)


def test_a_store_with_tables_but_no_revision_is_left_to_the_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dockyard.db'}"
    engines = create_engines(url)
    try:
        with engines.writer.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
        ensure_migrated(engines)  # Alembic migrates it; nothing is built over existing tables
        assert current_revision(engines) == HEAD_REVISION
        assert "unrelated" in inspect(engines.writer).get_table_names()
    finally:
        engines.dispose()
