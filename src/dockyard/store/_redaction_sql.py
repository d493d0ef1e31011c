"""Repository methods of redaction policies, mixed into :class:`dockyard.store.sql.SqlUnit`.

One row per serving endpoint: its rules (a JSON list of ``{"column", "action", "keep"}``), a
version counting the changes, and who changed it last, when. Rows leave this module as
:class:`RedactionPolicyRow`; the rules are validated, and applied, by
:mod:`dockyard.governance.redaction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from dockyard.store import schema as t


@dataclass(frozen=True)
class RedactionPolicyRow:
    """A stored redaction policy, as the store holds it (rules not validated here)."""

    endpoint: str
    rules: list[dict[str, Any]]
    version: int
    updated_at: int
    updated_by: str


def _row(r: Any) -> RedactionPolicyRow:
    return RedactionPolicyRow(
        endpoint=r.endpoint,
        rules=list(r.rules),
        version=int(r.version),
        updated_at=int(r.updated_at),
        updated_by=r.updated_by,
    )


class RedactionUnit:
    """Redaction policy repository methods; needs ``conn`` and ``dialect`` from the unit."""

    conn: Connection
    dialect: str

    def get_redaction_policy(
        self, endpoint: str, *, for_update: bool = False
    ) -> RedactionPolicyRow | None:
        """The endpoint's policy; ``for_update`` locks the row until the transaction ends
        (PostgreSQL; SQLite's writer already holds the database lock)."""
        q = select(t.redaction_policies).where(t.redaction_policies.c.endpoint == endpoint)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        return None if row is None else _row(row)

    def list_redaction_policies(self) -> list[RedactionPolicyRow]:
        q = select(t.redaction_policies).order_by(t.redaction_policies.c.endpoint)
        return [_row(r) for r in self.conn.execute(q)]

    def put_redaction_policy(
        self,
        endpoint: str,
        rules: list[dict[str, Any]],
        *,
        now: int,
        by: str,
        expected_version: int | None = None,
    ) -> RedactionPolicyRow | None:
        """Create or replace the endpoint's policy and return the stored row (version 1 when
        created, one more than before when replaced). With ``expected_version`` (0: the
        endpoint must have no policy yet) the write only happens when the stored version is
        that one; None is returned otherwise. Atomic under concurrent writers: the version
        is computed by the database, never read and written back."""
        p = t.redaction_policies
        values = {"rules": rules, "updated_at": now, "updated_by": by}
        if expected_version is None:
            ins = (pg.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(p)
            stmt: Any = (
                ins.values(endpoint=endpoint, version=1, **values)
                .on_conflict_do_update(
                    index_elements=[p.c.endpoint], set_={**values, "version": p.c.version + 1}
                )
                .returning(*p.c)
            )
        elif expected_version == 0:
            ins = (pg.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(p)
            stmt = (
                ins.values(endpoint=endpoint, version=1, **values)
                .on_conflict_do_nothing()
                .returning(*p.c)
            )
        else:
            stmt = (
                update(p)
                .where(p.c.endpoint == endpoint, p.c.version == expected_version)
                .values(version=expected_version + 1, **values)
                .returning(*p.c)
            )
        row = self.conn.execute(stmt).first()
        return None if row is None else _row(row)

    def delete_redaction_policy(self, endpoint: str) -> bool:
        p = t.redaction_policies
        return bool(self.conn.execute(delete(p).where(p.c.endpoint == endpoint)).rowcount)
