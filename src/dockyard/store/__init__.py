"""The SQL metadata store: schema, migrations and the SQLAlchemy implementation.

Importing this package pulls in SQLAlchemy; the rest of Dockyard imports it only when a store
is opened, so ``import dockyard`` and ``dockyard --help`` stay fast.
"""

from dockyard.store.base import Store, Unit
from dockyard.store.sql import SqlStore, SqlUnit

__all__ = ["SqlStore", "SqlUnit", "Store", "Unit"]
