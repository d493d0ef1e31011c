"""Repository methods of monitors, monitor runs, metric series and monitoring events, mixed
into :class:`dockyard.store.sql.SqlUnit`.

Tables ``monitors``, ``monitor_runs``, ``monitor_metrics``, ``monitoring_events`` (see
``store/schema.py``, migration 0008). A monitor changes compare-and-set on its ``version``;
the scheduler claims a due monitor by moving its ``next_run`` compare-and-set too, so two
replicas never evaluate the same window twice. Rows leave as
:mod:`dockyard.core.monitor_entities` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from dockyard.core.monitor_entities import Monitor, MonitoringEvent, MonitorRun
from dockyard.store import schema as t


def _monitor(r: Any) -> Monitor:
    return Monitor(
        endpoint=r.endpoint,
        name=r.name,
        spec=dict(r.spec or {}),
        enabled=bool(r.enabled),
        created=int(r.created),
        created_by=r.created_by,
        updated=int(r.updated),
        updated_by=r.updated_by,
        version=int(r.version),
        last_window_end=r.last_window_end,
        next_run=r.next_run,
    )


def _run(r: Any, with_result: bool = True) -> MonitorRun:
    return MonitorRun(
        id=r.id,
        endpoint=r.endpoint,
        monitor=r.monitor,
        created=int(r.created),
        created_by=r.created_by,
        window_start=int(r.window_start),
        window_end=int(r.window_end),
        rows=int(r.rows),
        status=r.status,
        dataset_drift=bool(r.dataset_drift),
        n_drifted=int(r.n_drifted),
        n_features=int(r.n_features),
        n_quality_issues=int(r.n_quality_issues),
        result=dict(r.result or {}) if with_result else {},
    )


class MonitoringUnit:
    """Monitoring repository methods; needs ``conn`` and ``dialect`` from the unit."""

    conn: Connection
    dialect: str

    # -- monitors -------------------------------------------------------------------------------

    def get_monitor(self, endpoint: str, name: str) -> Monitor | None:
        m = t.monitors
        row = self.conn.execute(select(m).where(m.c.endpoint == endpoint, m.c.name == name)).first()
        return None if row is None else _monitor(row)

    def list_monitors(self, endpoint: str | None = None) -> list[Monitor]:
        m = t.monitors
        q = select(m).order_by(m.c.endpoint, m.c.name)
        if endpoint is not None:
            q = q.where(m.c.endpoint == endpoint)
        return [_monitor(r) for r in self.conn.execute(q)]

    def insert_monitor(self, mon: Monitor) -> None:
        self.conn.execute(insert(t.monitors).values(**mon.to_dict()))

    def update_monitor(self, mon: Monitor, *, expected_version: int) -> bool:
        """Write ``mon`` if the stored version is still ``expected_version``."""
        m = t.monitors
        values = mon.to_dict()
        for key in ("endpoint", "name", "created", "created_by"):
            values.pop(key)
        res = self.conn.execute(
            update(m)
            .where(
                m.c.endpoint == mon.endpoint,
                m.c.name == mon.name,
                m.c.version == expected_version,
            )
            .values(**values)
        )
        return bool(res.rowcount)

    def delete_monitor(self, endpoint: str, name: str) -> bool:
        m = t.monitors
        res = self.conn.execute(delete(m).where(m.c.endpoint == endpoint, m.c.name == name))
        return bool(res.rowcount)

    def due_monitors(self, now: int) -> list[Monitor]:
        m = t.monitors
        q = (
            select(m)
            .where(m.c.enabled.is_(True), (m.c.next_run.is_(None)) | (m.c.next_run <= now))
            .order_by(m.c.next_run)
        )
        return [_monitor(r) for r in self.conn.execute(q)]

    def claim_monitor(
        self, endpoint: str, name: str, *, seen_next_run: int | None, next_run: int
    ) -> bool:
        """Move a due monitor's ``next_run`` on, compare-and-set: True for the one claimant."""
        m = t.monitors
        cond = m.c.next_run.is_(None) if seen_next_run is None else m.c.next_run == seen_next_run
        res = self.conn.execute(
            update(m)
            .where(m.c.endpoint == endpoint, m.c.name == name, cond)
            .values(next_run=next_run)
        )
        return bool(res.rowcount)

    def set_monitor_window_end(self, endpoint: str, name: str, window_end: int) -> None:
        m = t.monitors
        self.conn.execute(
            update(m)
            .where(m.c.endpoint == endpoint, m.c.name == name)
            .values(last_window_end=window_end)
        )

    # -- runs and series ------------------------------------------------------------------------

    def insert_monitor_run(
        self, run: MonitorRun, metrics: Iterable[tuple[str, str, str, float | None]]
    ) -> None:
        """The run and its series points ``(variant, feature, metric, value)``."""
        values = {k: getattr(run, k) for k in t.monitor_runs.c.keys()}
        self.conn.execute(insert(t.monitor_runs).values(**values))
        rows = [
            {
                "run_id": run.id,
                "endpoint": run.endpoint,
                "monitor": run.monitor,
                "window_start": run.window_start,
                "window_end": run.window_end,
                "variant": variant,
                "feature": feature,
                "metric": metric,
                "value": value,
            }
            for variant, feature, metric, value in metrics
        ]
        if rows:
            self.conn.execute(insert(t.monitor_metrics), rows)

    def get_monitor_run(self, run_id: str) -> MonitorRun | None:
        r = t.monitor_runs
        row = self.conn.execute(select(r).where(r.c.id == run_id)).first()
        return None if row is None else _run(row)

    def list_monitor_runs(
        self,
        endpoint: str,
        *,
        monitor: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        with_result: bool = False,
    ) -> list[MonitorRun]:
        """Newest window first."""
        r = t.monitor_runs
        cols = [c for c in r.c if with_result or c.name != "result"]
        q = select(*cols).where(r.c.endpoint == endpoint)
        if monitor is not None:
            q = q.where(r.c.monitor == monitor)
        if since is not None:
            q = q.where(r.c.window_end > since)
        if until is not None:
            q = q.where(r.c.window_start < until)
        q = q.order_by(r.c.window_start.desc(), r.c.created.desc()).limit(limit)
        return [_run(row, with_result) for row in self.conn.execute(q)]

    def newest_monitor_runs(self) -> list[MonitorRun]:
        """The newest run (by window end) of every (endpoint, monitor), with results."""
        r = t.monitor_runs
        newest = (
            select(r.c.endpoint, r.c.monitor, func.max(r.c.window_end).label("end"))
            .group_by(r.c.endpoint, r.c.monitor)
            .subquery()
        )
        q = select(r).join(
            newest,
            (r.c.endpoint == newest.c.endpoint)
            & (r.c.monitor == newest.c.monitor)
            & (r.c.window_end == newest.c.end),
        )
        return [_run(row) for row in self.conn.execute(q)]

    def monitor_series(
        self,
        endpoint: str,
        *,
        monitor: str | None = None,
        metrics: Sequence[str] | None = None,
        feature: str | None = None,
        since: int | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Series points, oldest window first."""
        s = t.monitor_metrics
        q = select(s).where(s.c.endpoint == endpoint)
        if monitor is not None:
            q = q.where(s.c.monitor == monitor)
        if metrics:
            q = q.where(s.c.metric.in_(list(metrics)))
        if feature is not None:
            q = q.where(s.c.feature == feature)
        if since is not None:
            q = q.where(s.c.window_end > since)
        q = q.order_by(s.c.window_start, s.c.id).limit(limit)
        return [
            {
                "run_id": row.run_id,
                "monitor": row.monitor,
                "window_start_ms": int(row.window_start),
                "window_end_ms": int(row.window_end),
                "variant": row.variant,
                "feature": row.feature,
                "metric": row.metric,
                "value": row.value,
            }
            for row in self.conn.execute(q)
        ]

    # -- events ---------------------------------------------------------------------------------

    def insert_monitoring_event(
        self,
        *,
        time: int,
        kind: str,
        endpoint: str,
        monitor: str,
        run_id: str | None,
        payload: dict[str, Any],
    ) -> int:
        e = t.monitoring_events
        row = self.conn.execute(
            insert(e)
            .values(
                time=time,
                kind=kind,
                endpoint=endpoint,
                monitor=monitor,
                run_id=run_id,
                payload=payload,
            )
            .returning(e.c.id)
        ).first()
        assert row is not None
        return int(row[0])

    def list_monitoring_events(
        self,
        *,
        after_id: int = 0,
        endpoint: str | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[MonitoringEvent]:
        """Oldest first, ids above ``after_id`` (a subscriber's cursor)."""
        e = t.monitoring_events
        q = select(e).where(e.c.id > after_id)
        if endpoint is not None:
            q = q.where(e.c.endpoint == endpoint)
        if kinds:
            q = q.where(e.c.kind.in_(list(kinds)))
        q = q.order_by(e.c.id).limit(limit)
        return [
            MonitoringEvent(
                id=int(r.id),
                time=int(r.time),
                kind=r.kind,
                endpoint=r.endpoint,
                monitor=r.monitor,
                run_id=r.run_id,
                payload=dict(r.payload or {}),
            )
            for r in self.conn.execute(q)
        ]
