"""The store interface the services program against.

A store runs a function inside one transaction and hands it a unit of repository methods that
speak domain objects (:mod:`dockyard.core.entities`). :class:`dockyard.store.sql.SqlStore` is
the implementation for SQLite and PostgreSQL; the contract tests run every store test against
both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from dockyard.store.sql import SqlUnit

T = TypeVar("T")

# The unit's methods are the repository vocabulary; SqlUnit is its one implementation today.
Unit = SqlUnit


class Store(Protocol):
    url: str

    @property
    def dialect(self) -> str: ...

    def write(self, fn: Callable[[Unit], T]) -> T:
        """Run ``fn`` in one write transaction (commit on return, roll back on raise)."""
        ...

    def read(self, fn: Callable[[Unit], T]) -> T:
        """Run ``fn`` on a read connection."""
        ...

    def close(self) -> None: ...
