"""Repository methods of serving endpoints, mixed into :class:`dockyard.store.sql.SqlUnit`.

An endpoint row holds the number of its current policy version; every policy ever in force is
a row of ``endpoint_policies``. A new version is written compare-and-set on the endpoint's
version, so two deployers (or a deployer and the canary controller) racing on one endpoint
cannot both win: the loser sees None and reports a conflict. Rows leave as
:class:`~dockyard.core.serving_entities.Endpoint` and
:class:`~dockyard.core.serving_entities.Decision`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from dockyard.core.serving_entities import Decision, Endpoint, TrafficPolicy
from dockyard.store import schema as t


class ServingUnit:
    """Endpoint repository methods; needs ``conn`` and ``dialect`` from the unit."""

    conn: Connection
    dialect: str

    def _endpoint(self, row: Any, policy_row: Any) -> Endpoint:
        return Endpoint(
            name=row.name,
            description=row.description,
            created=int(row.created),
            created_by=row.created_by,
            updated=int(row.updated),
            version=int(row.version),
            policy=TrafficPolicy.from_dict(policy_row.policy),
            last_good_version=row.last_good_version,
            reason=policy_row.reason,
        )

    def get_endpoint(self, name: str, *, for_update: bool = False) -> Endpoint | None:
        """The endpoint with its current policy; ``for_update`` locks it (PostgreSQL)."""
        e, p = t.endpoints, t.endpoint_policies
        q = select(e).where(e.c.name == name)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        if row is None:
            return None
        prow = self.conn.execute(
            select(p).where(p.c.endpoint == name, p.c.version == row.version)
        ).first()
        return self._endpoint(row, prow)

    def list_endpoints(self) -> list[Endpoint]:
        e, p = t.endpoints, t.endpoint_policies
        q = (
            select(e, p.c.policy, p.c.reason)
            .join(p, (p.c.endpoint == e.c.name) & (p.c.version == e.c.version))
            .order_by(e.c.name)
        )
        return [self._endpoint(r, r) for r in self.conn.execute(q)]

    def endpoint_versions(self) -> dict[str, int]:
        """Every endpoint's current policy version: the cheap poll of inference servers."""
        e = t.endpoints
        return {r.name: int(r.version) for r in self.conn.execute(select(e.c.name, e.c.version))}

    def insert_endpoint(
        self,
        name: str,
        description: str,
        policy: TrafficPolicy,
        *,
        now: int,
        by: str,
        reason: str,
    ) -> bool:
        """Create the endpoint at policy version 1; False if the name is taken."""
        e = t.endpoints
        ins = (pg.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(e)
        stmt = ins.values(
            name=name,
            description=description,
            created=now,
            created_by=by,
            updated=now,
            version=1,
            last_good_version=None,
        ).on_conflict_do_nothing()
        if not self.conn.execute(stmt).rowcount:
            return False
        self._insert_policy(name, 1, policy, now=now, by=by, reason=reason)
        return True

    def _insert_policy(
        self, name: str, version: int, policy: TrafficPolicy, *, now: int, by: str, reason: str
    ) -> None:
        self.conn.execute(
            insert(t.endpoint_policies).values(
                endpoint=name,
                version=version,
                policy=policy.to_dict(),
                created=now,
                created_by=by,
                reason=reason,
            )
        )

    def put_endpoint_policy(
        self,
        name: str,
        expected_version: int,
        policy: TrafficPolicy,
        *,
        now: int,
        by: str,
        reason: str,
        last_good_version: int | bool | None = False,
    ) -> int | None:
        """Make ``policy`` the endpoint's current one, as version ``expected_version + 1``,
        only if its current version is ``expected_version``; the new version, or None when
        someone else changed it first. ``last_good_version`` (unless False) is set too."""
        e = t.endpoints
        values: dict[str, Any] = {"version": expected_version + 1, "updated": now}
        if last_good_version is not False:
            values["last_good_version"] = last_good_version
        done = self.conn.execute(
            update(e).where(e.c.name == name, e.c.version == expected_version).values(**values)
        ).rowcount
        if not done:
            return None
        self._insert_policy(name, expected_version + 1, policy, now=now, by=by, reason=reason)
        return expected_version + 1

    def get_endpoint_policy(self, name: str, version: int) -> tuple[TrafficPolicy, Any] | None:
        """A past (or the current) policy version and its row (created, by, reason)."""
        p = t.endpoint_policies
        row = self.conn.execute(
            select(p).where(p.c.endpoint == name, p.c.version == version)
        ).first()
        return None if row is None else (TrafficPolicy.from_dict(row.policy), row)

    def list_endpoint_policies(self, name: str, limit: int = 100) -> list[Any]:
        p = t.endpoint_policies
        q = select(p).where(p.c.endpoint == name).order_by(p.c.version.desc()).limit(limit)
        return list(self.conn.execute(q))

    def delete_endpoint(self, name: str) -> bool:
        # Children first: SQLite enforces ON DELETE CASCADE only with foreign keys on.
        for table in (t.monitors, t.endpoint_decisions, t.endpoint_policies):
            self.conn.execute(delete(table).where(table.c.endpoint == name))
        e = t.endpoints
        return bool(self.conn.execute(delete(e).where(e.c.name == name)).rowcount)

    def insert_decision(
        self,
        name: str,
        *,
        now: int,
        actor: str,
        action: str,
        reason: str,
        from_version: int | None,
        to_version: int | None,
        evidence: dict[str, Any],
    ) -> int:
        d = t.endpoint_decisions
        row = self.conn.execute(
            insert(d)
            .values(
                endpoint=name,
                time=now,
                actor=actor,
                action=action,
                reason=reason,
                from_version=from_version,
                to_version=to_version,
                evidence=evidence,
            )
            .returning(d.c.id)
        ).first()
        assert row is not None
        return int(row[0])

    def list_decisions(self, name: str, limit: int = 100) -> list[Decision]:
        d = t.endpoint_decisions
        q = select(d).where(d.c.endpoint == name).order_by(d.c.id.desc()).limit(limit)
        return [
            Decision(
                id=int(r.id),
                endpoint=r.endpoint,
                time=int(r.time),
                actor=r.actor,
                action=r.action,
                reason=r.reason,
                from_version=r.from_version,
                to_version=r.to_version,
                evidence=dict(r.evidence or {}),
            )
            for r in self.conn.execute(q)
        ]

    # -- leases ---------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, now: int, ttl_ms: int) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl_ms``; True when
        ``holder`` has it (it was free, expired, or already its own)."""
        lt = t.leases
        ins = (pg.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(lt)
        stmt = ins.values(name=name, holder=holder, expires=now + ttl_ms).on_conflict_do_update(
            index_elements=[lt.c.name],
            set_={"holder": holder, "expires": now + ttl_ms},
            where=(lt.c.holder == holder) | (lt.c.expires < now),
        )
        self.conn.execute(stmt)
        row = self.conn.execute(select(lt.c.holder).where(lt.c.name == name)).first()
        return row is not None and row.holder == holder

    def release_lease(self, name: str, holder: str) -> None:
        lt = t.leases
        self.conn.execute(delete(lt).where(lt.c.name == name, lt.c.holder == holder))
