"""Migrations: the migrated schema equals the table definitions, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dockyard.store.engine import (
    HEAD_REVISION,
    create_engines,
    current_revision,
    head_revision,
    upgrade,
)
from dockyard.store.schema import metadata


def test_migrations_build_exactly_the_schema_the_code_defines(db_url: str) -> None:
    engines = create_engines(db_url)
    try:
        before, after = upgrade(engines)
        assert before is None and after == head_revision()
        with engines.writer.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"schema.py and the migrations differ: {diff}"
        # A second upgrade is a no-op.
        assert upgrade(engines) == (head_revision(), head_revision())
        assert current_revision(engines) == head_revision()
    finally:
        engines.dispose()


def test_the_head_revision_constant_matches_the_newest_migration() -> None:
    assert head_revision() == HEAD_REVISION, "bump HEAD_REVISION in store/engine.py"
