"""Repository methods of webhook alert deliveries, mixed into :class:`dockyard.store.sql.SqlUnit`.

Table ``alert_deliveries`` (see ``store/schema.py``, migration 0008). Rows leave this module as
:class:`dockyard.core.alert_entities.AlertDelivery`; the sending, signing and retry policy live
in :mod:`dockyard.monitoring.alerts`.

Claiming (two replicas never send the same delivery at the same time)
    :meth:`AlertsUnit.claim_due_deliveries` picks due rows (``pending`` and ``next_attempt <=
    now``, oldest first) and, in the same transaction, counts the attempt and pushes
    ``next_attempt`` past a *lease*. The HTTP request is sent after that transaction
    committed, and the result recorded in another one. On PostgreSQL the pick is ``SELECT ...
    FOR UPDATE SKIP LOCKED``, so a second replica claiming at the same moment skips the rows
    the first one is claiming; once committed, the lease keeps them out of every replica's
    due list. On SQLite the database-wide write lock serialises claims. A process that dies
    after sending and before recording leaves the row pending: when the lease runs out it is
    sent again (at-least-once; receivers dedupe on the delivery id).

Fencing
    :meth:`AlertsUnit.mark_failed` only updates a row that is still ``pending`` with the
    attempt count of the claim it reports on, so a slow sender whose lease expired cannot
    overwrite the outcome of a newer attempt. :meth:`AlertsUnit.mark_delivered` wins over any
    pending state: a 2xx answer is the truth whatever attempt got it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from dockyard.core.alert_entities import AlertDelivery
from dockyard.store import schema as t


def _delivery(r: Any) -> AlertDelivery:
    return AlertDelivery(
        id=r.id,
        event_id=None if r.event_id is None else int(r.event_id),
        endpoint=r.endpoint,
        target=r.target,
        options=dict(r.options or {}),
        payload=r.payload if isinstance(r.payload, dict) else {"data": r.payload},
        status=r.status,
        attempts=int(r.attempts),
        last_error=r.last_error,
        created=int(r.created),
        next_attempt=None if r.next_attempt is None else int(r.next_attempt),
        delivered=None if r.delivered is None else int(r.delivered),
    )


class AlertsUnit:
    """Alert delivery repository methods; needs ``conn`` and ``dialect`` from the unit."""

    conn: Connection
    dialect: str

    def enqueue_delivery(
        self,
        *,
        delivery_id: str,
        event_id: int | None,
        endpoint: str,
        target: str,
        options: dict[str, Any],
        payload: dict[str, Any],
        now: int,
    ) -> AlertDelivery:
        """Insert one ``pending`` delivery, due at ``now``, and return it."""
        a = t.alert_deliveries
        values = {
            "id": delivery_id,
            "event_id": event_id,
            "endpoint": endpoint,
            "target": target,
            "options": options,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "last_error": None,
            "created": now,
            "next_attempt": now,
            "delivered": None,
        }
        row = self.conn.execute(insert(a).values(**values).returning(*a.c)).one()
        return _delivery(row)

    def due_deliveries(
        self, now: int, limit: int, *, endpoint: str | None = None
    ) -> list[AlertDelivery]:
        """Pending deliveries whose ``next_attempt <= now``, oldest first. On PostgreSQL the
        rows are locked ``FOR UPDATE SKIP LOCKED`` until the transaction ends (rows another
        transaction holds are skipped, never waited for)."""
        a = t.alert_deliveries
        q = select(a).where(a.c.status == "pending", a.c.next_attempt <= now)
        if endpoint is not None:
            q = q.where(a.c.endpoint == endpoint)
        q = q.order_by(a.c.next_attempt, a.c.created, a.c.id).limit(max(0, int(limit)))
        if self.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        return [_delivery(r) for r in self.conn.execute(q)]

    def claim_due_deliveries(
        self, now: int, limit: int, lease_ms: int, *, endpoint: str | None = None
    ) -> list[AlertDelivery]:
        """Claim up to ``limit`` due deliveries: each one's ``attempts`` grows by one (the
        attempt about to be made) and ``next_attempt`` becomes ``now + lease_ms``. Returns the
        claimed rows as they are after the claim. Call inside a write transaction, send after
        it committed."""
        a = t.alert_deliveries
        out = []
        for d in self.due_deliveries(now, limit, endpoint=endpoint):
            row = self.conn.execute(
                update(a)
                .where(a.c.id == d.id, a.c.status == "pending", a.c.attempts == d.attempts)
                .values(attempts=a.c.attempts + 1, next_attempt=now + lease_ms)
                .returning(*a.c)
            ).first()
            if row is not None:
                out.append(_delivery(row))
        return out

    def mark_delivered(self, delivery_id: str, now: int) -> bool:
        """``delivered`` at ``now`` (only from ``pending``); False when it was not pending."""
        a = t.alert_deliveries
        result = self.conn.execute(
            update(a)
            .where(a.c.id == delivery_id, a.c.status == "pending")
            .values(status="delivered", delivered=now, next_attempt=None)
        )
        return bool(result.rowcount)

    def mark_failed(
        self,
        delivery_id: str,
        *,
        attempts: int,
        next_attempt: int | None,
        last_error: str,
    ) -> bool:
        """Record a failed attempt: retry at ``next_attempt``, or ``dead`` when it is None.
        Only a ``pending`` row whose attempt count is ``attempts`` (the claim this result is
        for) is updated; False otherwise (a newer claim took over, or it was delivered)."""
        a = t.alert_deliveries
        values: dict[str, Any] = {"last_error": last_error, "next_attempt": next_attempt}
        if next_attempt is None:
            values["status"] = "dead"
        result = self.conn.execute(
            update(a)
            .where(a.c.id == delivery_id, a.c.status == "pending", a.c.attempts == attempts)
            .values(**values)
        )
        return bool(result.rowcount)

    def list_deliveries(
        self,
        *,
        status: str | None = None,
        endpoint: str | None = None,
        limit: int = 100,
    ) -> list[AlertDelivery]:
        """Deliveries, newest first, optionally of one status and/or one endpoint."""
        a = t.alert_deliveries
        q = select(a)
        if status is not None:
            q = q.where(a.c.status == status)
        if endpoint is not None:
            q = q.where(a.c.endpoint == endpoint)
        q = q.order_by(a.c.created.desc(), a.c.id.desc()).limit(max(0, int(limit)))
        return [_delivery(r) for r in self.conn.execute(q)]

    def get_delivery(self, delivery_id: str) -> AlertDelivery | None:
        a = t.alert_deliveries
        row = self.conn.execute(select(a).where(a.c.id == delivery_id)).first()
        return None if row is None else _delivery(row)

    def replay_delivery(self, delivery_id: str, now: int) -> AlertDelivery | None:
        """A ``dead`` delivery back to ``pending``: attempts reset to 0, due at ``now`` (its
        last error is kept until the next attempt). None when it is not dead."""
        a = t.alert_deliveries
        row = self.conn.execute(
            update(a)
            .where(a.c.id == delivery_id, a.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt=now, delivered=None)
            .returning(*a.c)
        ).first()
        return None if row is None else _delivery(row)
