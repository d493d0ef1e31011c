"""The SQL implementation of the metadata store (SQLite and PostgreSQL).

Writes run as a function inside one transaction (``store.write(fn)``), the way datasette
funnels writes through one writer; reads likewise (``store.read(fn)``). The function gets a
:class:`SqlUnit` whose methods speak domain objects: SQLAlchemy rows never leave this package.
A write that loses a race on a unique key (two processes inserting the same param) is retried
once, so the second writer sees the first one's row and answers Conflict or no-op as it should.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from dockyard.core.audit_chain import (
    GENESIS_HASH,
    RETENTION_ACTION,
    event_hash,
    normalise_details,
)
from dockyard.core.entities import (
    AuditEvent,
    AuditQuery,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunStatus,
)
from dockyard.core.errors import AlreadyExists, Conflict, Unavailable
from dockyard.store import schema as t
from dockyard.store._alerts_sql import AlertsUnit
from dockyard.store._identity_sql import IdentityUnit
from dockyard.store._monitoring_sql import MonitoringUnit
from dockyard.store._redaction_sql import RedactionUnit
from dockyard.store._registry_sql import RegistryUnit
from dockyard.store._serving_sql import ServingUnit
from dockyard.store.engine import Engines, create_engines, ensure_migrated, redact_url

T = TypeVar("T")

_MAX_IN = 500  # keep IN lists well under SQLite's variable limit


def _chunks(items: Sequence[T], size: int = _MAX_IN) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _metric_value(row: Any) -> float:
    return math.nan if row.is_nan else float(row.value)


_INSERT_AUDIT = insert(t.audit_events)
_LAST_AUDIT = "SELECT event_id, hash FROM audit_events ORDER BY event_id DESC LIMIT 1"
#: The advisory lock key that serialises appends to the audit chain on PostgreSQL ("audi").
_AUDIT_LOCK_KEY = 0x61756469
_PG_AUDIT_LOCK = f"SELECT pg_advisory_xact_lock({_AUDIT_LOCK_KEY})"
# Lock, then read the head, in one round trip: two statements, so the read's snapshot (READ
# COMMITTED takes one per statement) is taken after the lock is held and sees the last holder's
# committed event.
_PG_LOCK_AND_LAST_AUDIT = f"{_PG_AUDIT_LOCK}; {_LAST_AUDIT}"

#: Sort key of metric points by (step, timestamp): the order that decides the latest point.
_STEP_TIMESTAMP = itemgetter(3, 2)

# The latest point per (run, key), kept only if the new one is not older: driver SQL, the same
# on SQLite and PostgreSQL ("?" becomes the driver's placeholder).
_UPSERT_LATEST = (
    'INSERT INTO latest_metrics (run_id, "key", value, is_nan, "timestamp", step) '
    "VALUES (?, ?, ?, ?, ?, ?) "
    'ON CONFLICT (run_id, "key") DO UPDATE SET value = excluded.value, '
    'is_nan = excluded.is_nan, "timestamp" = excluded."timestamp", step = excluded.step '
    "WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step "
    'AND excluded."timestamp" >= latest_metrics."timestamp")'
)


class SqlUnit(RegistryUnit, IdentityUnit, RedactionUnit, ServingUnit, MonitoringUnit, AlertsUnit):
    """Repository methods bound to one connection inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        # The audit chain's newest (id, hash) once this transaction appended to it.
        self._audit_head: tuple[int, str] | None = None
        self._audit_locked = False

    def _mark(self) -> str:
        """The driver's placeholder, for the few hot statements sent as plain driver SQL."""
        return "?" if self.dialect == "sqlite" else "%s"

    def _insert(self, table: t.Table) -> Any:
        return (pg.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(table)

    def _fetch(
        self, sql: str, params: Sequence[Any] | None, *, last_result: bool = False
    ) -> list[Any]:
        """The rows of one hot read as plain driver tuples, without building a SQLAlchemy Row
        per row. It runs in the unit's transaction (begun here if no statement began it yet,
        as ``conn.execute`` would), and driver errors are raised as SQLAlchemy's. With
        ``last_result`` (PostgreSQL, several statements, no params) the rows of the last."""
        conn = self.conn
        if not conn.in_transaction():
            conn.begin()
        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            if last_result:
                while cursor.nextset():
                    pass
            return cursor.fetchall()  # type: ignore[no-any-return]
        except dbapi_error as exc:
            raise DBAPIError.instance(sql, params, exc, dbapi_error) from exc
        finally:
            cursor.close()

    # -- experiments -------------------------------------------------------------------------

    def _experiment(self, row: Any) -> Experiment:
        tag_rows = self.conn.execute(
            select(t.experiment_tags.c.key, t.experiment_tags.c.value).where(
                t.experiment_tags.c.experiment_id == row.experiment_id
            )
        )
        return Experiment(
            experiment_id=str(row.experiment_id),
            name=row.name,
            lifecycle_stage=row.lifecycle_stage,
            artifact_location=row.artifact_location,
            creation_time=row.creation_time,
            last_update_time=row.last_update_time,
            tags={r.key: r.value for r in tag_rows},
        )

    def create_experiment(
        self, name: str, artifact_location: str, tags: dict[str, str], now: int
    ) -> Experiment:
        if self.conn.execute(
            select(t.experiments.c.experiment_id).where(t.experiments.c.name == name)
        ).first():
            raise AlreadyExists(f"experiment {name!r} already exists", name=name)
        result = self.conn.execute(
            insert(t.experiments).values(
                name=name,
                lifecycle_stage="active",
                artifact_location=artifact_location,
                creation_time=now,
                last_update_time=now,
            )
        )
        experiment_id = result.inserted_primary_key[0]
        if tags:
            self.set_experiment_tags(str(experiment_id), tags)
        exp = self.get_experiment(str(experiment_id))
        assert exp is not None
        return exp

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        try:
            eid = int(experiment_id)
        except (TypeError, ValueError):
            return None
        row = self.conn.execute(
            select(t.experiments).where(t.experiments.c.experiment_id == eid)
        ).first()
        return None if row is None else self._experiment(row)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        row = self.conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
        return None if row is None else self._experiment(row)

    def list_experiments(self, stage: str, limit: int, offset: int) -> list[Experiment]:
        q = select(t.experiments).order_by(t.experiments.c.experiment_id)
        if stage != "all":
            q = q.where(t.experiments.c.lifecycle_stage == stage)
        rows = self.conn.execute(q.limit(limit).offset(offset)).all()
        return [self._experiment(r) for r in rows]

    def update_experiment(
        self,
        experiment_id: str,
        now: int,
        *,
        name: str | None = None,
        lifecycle_stage: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"last_update_time": now}
        if name is not None:
            clash = self.conn.execute(
                select(t.experiments.c.experiment_id).where(
                    t.experiments.c.name == name,
                    t.experiments.c.experiment_id != int(experiment_id),
                )
            ).first()
            if clash:
                raise AlreadyExists(f"experiment {name!r} already exists", name=name)
            values["name"] = name
        if lifecycle_stage is not None:
            values["lifecycle_stage"] = lifecycle_stage
        self.conn.execute(
            update(t.experiments)
            .where(t.experiments.c.experiment_id == int(experiment_id))
            .values(**values)
        )

    def set_experiment_tags(self, experiment_id: str, tags: dict[str, str]) -> None:
        stmt = self._insert(t.experiment_tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=["experiment_id", "key"], set_={"value": stmt.excluded.value}
        )
        self.conn.execute(
            stmt,
            [{"experiment_id": int(experiment_id), "key": k, "value": v} for k, v in tags.items()],
        )

    # -- runs --------------------------------------------------------------------------------

    def insert_run(
        self,
        *,
        run_id: str,
        experiment_id: str,
        name: str,
        start_time: int,
        user: str,
        parent_run_id: str | None,
    ) -> None:
        self.conn.execute(
            insert(t.runs).values(
                run_id=run_id,
                experiment_id=int(experiment_id),
                name=name,
                status=RunStatus.RUNNING.value,
                start_time=start_time,
                end_time=None,
                user=user,
                parent_run_id=parent_run_id,
                lifecycle_stage="active",
            )
        )

    def run_exists(self, run_id: str) -> tuple[str, str] | None:
        """(status, lifecycle_stage) of the run, or None."""
        # Checked before every write to a run: plain driver SQL, no statement to compile.
        rows = self._fetch(
            f"SELECT status, lifecycle_stage FROM runs WHERE run_id = {self._mark()}", (run_id,)
        )
        return None if not rows else (rows[0][0], rows[0][1])

    def get_run(self, run_id: str) -> Run | None:
        row = self.conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
        if row is None:
            return None
        return self._hydrate([row])[0]

    def _hydrate(self, rows: Sequence[Any]) -> list[Run]:
        """Turn run rows into Runs, loading params, latest metrics, tags and inputs in bulk."""
        ids = [r.run_id for r in rows]
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        inputs: dict[str, list[DatasetInput]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            for p in self.conn.execute(
                select(t.params.c.run_id, t.params.c.key, t.params.c.value).where(
                    t.params.c.run_id.in_(chunk)
                )
            ):
                params[p.run_id][p.key] = p.value
            for m in self.conn.execute(
                select(
                    t.latest_metrics.c.run_id,
                    t.latest_metrics.c.key,
                    t.latest_metrics.c.value,
                    t.latest_metrics.c.is_nan,
                ).where(t.latest_metrics.c.run_id.in_(chunk))
            ):
                metrics[m.run_id][m.key] = _metric_value(m)
            for g in self.conn.execute(
                select(t.tags.c.run_id, t.tags.c.key, t.tags.c.value).where(
                    t.tags.c.run_id.in_(chunk)
                )
            ):
                tags[g.run_id][g.key] = g.value
            for d in self.conn.execute(
                select(t.dataset_inputs)
                .where(t.dataset_inputs.c.run_id.in_(chunk))
                .order_by(t.dataset_inputs.c.id)
            ):
                inputs[d.run_id].append(
                    DatasetInput(
                        name=d.name,
                        digest=d.digest,
                        context=d.context,
                        num_rows=d.num_rows,
                        schema=d.schema,
                        source=d.source,
                    )
                )
        return [
            Run(
                run_id=r.run_id,
                experiment_id=str(r.experiment_id),
                name=r.name,
                status=RunStatus(r.status),
                start_time=r.start_time,
                end_time=r.end_time,
                user=r.user,
                parent_run_id=r.parent_run_id,
                lifecycle_stage=r.lifecycle_stage,
                params=dict(sorted(params[r.run_id].items())),
                metrics=dict(sorted(metrics[r.run_id].items())),
                tags=dict(sorted(tags[r.run_id].items())),
                inputs=inputs[r.run_id],
            )
            for r in rows
        ]

    def update_run(self, run_id: str, **values: Any) -> None:
        if "status" in values and isinstance(values["status"], RunStatus):
            values["status"] = values["status"].value
        self.conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(**values))

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        where: Any,
        order: Any,
        stage: str,
        limit: int,
        offset: int,
    ) -> list[Run]:
        """``where`` is a compiled filter clause or None; ``order`` a list of OrderKeys."""
        from dockyard.store._search_sql import apply_order

        q = select(t.runs)
        if experiment_ids:
            q = q.where(t.runs.c.experiment_id.in_([int(e) for e in experiment_ids]))
        if stage != "all":
            q = q.where(t.runs.c.lifecycle_stage == stage)
        if where is not None:
            q = q.where(where)
        q = apply_order(q, order).limit(limit).offset(offset)
        return self._hydrate(self.conn.execute(q).all())

    # -- params, tags, metrics, inputs ---------------------------------------------------------

    def log_params(self, run_id: str, values: dict[str, str]) -> list[str]:
        """Insert new params; same value again is a no-op, a different one a Conflict.

        Returns the keys actually written.
        """
        # A run holds few params: reading them all is one cheap query, where an IN list of
        # hundreds of keys costs more to build than to run.
        mark = self._mark()
        existing = {
            k: val
            for k, val in self.conn.exec_driver_sql(
                f'SELECT "key", value FROM params WHERE run_id = {mark}', (run_id,)
            )
            if k in values
        }
        for key, old in existing.items():
            if old != values[key]:
                raise Conflict(
                    f"param {key!r} of run {run_id} is already {old!r}; params are write-once "
                    f"and cannot be changed to {values[key]!r}",
                    key=key,
                    old_value=old,
                    new_value=values[key],
                )
        new = [(run_id, k, v) for k, v in values.items() if k not in existing]
        if new:
            self.conn.exec_driver_sql(
                f'INSERT INTO params (run_id, "key", value) VALUES ({mark}, {mark}, {mark})', new
            )
        return [k for _r, k, _v in new]

    def set_tags(self, run_id: str, values: dict[str, str]) -> None:
        stmt = self._insert(t.tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
        )
        self.conn.execute(
            stmt, [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()]
        )

    def delete_tag(self, run_id: str, key: str) -> bool:
        result = self.conn.execute(
            delete(t.tags).where(t.tags.c.run_id == run_id, t.tags.c.key == key)
        )
        return bool(result.rowcount)

    def log_metrics(self, run_id: str, points: Sequence[Metric]) -> None:
        # The hot path of metric logging: a driver-level executemany of plain tuples is several
        # times faster than building a parameter dict per row through the SQL compiler. A NaN
        # is stored as a NULL value with is_nan set.
        rows = [
            (run_id, key, None, True, ts, step)
            if value != value
            else (run_id, key, value, False, ts, step)
            for key, value, ts, step in points
        ]
        mark = self._mark()
        self.conn.exec_driver_sql(
            'INSERT INTO metrics (run_id, "key", value, is_nan, "timestamp", step) '
            f"VALUES ({', '.join([mark] * 6)})",
            rows,
        )
        # The newest point per key: the largest (step, timestamp), the later one in the batch on
        # a tie (the sort is stable and the dict keeps the last point of each key).
        latest = {m[0]: m for m in sorted(points, key=_STEP_TIMESTAMP)}
        self.conn.exec_driver_sql(
            _UPSERT_LATEST.replace("?", mark),
            [
                (run_id, key, None, True, ts, step)
                if value != value
                else (run_id, key, value, False, ts, step)
                for key, value, ts, step in latest.values()
            ],
        )

    def metric_history(self, run_id: str, key: str, limit: int, offset: int) -> list[Metric]:
        # Hot read path: plain driver tuples, no per-row SQLAlchemy processing. A NaN is stored
        # as a NULL value (see log_metrics), so the value column alone tells it.
        mark = self._mark()
        rows = self._fetch(
            'SELECT value, "timestamp", step FROM metrics '
            f'WHERE run_id = {mark} AND "key" = {mark} '
            f'ORDER BY step, "timestamp", id LIMIT {mark} OFFSET {mark}',
            (run_id, key, limit, offset),
        )
        nan = math.nan
        new = tuple.__new__
        return [
            new(Metric, (key, nan if value is None else value, ts, step))
            for value, ts, step in rows
        ]

    def metric_count(self, run_id: str, key: str | None = None) -> int:
        q = select(func.count()).select_from(t.metrics).where(t.metrics.c.run_id == run_id)
        if key is not None:
            q = q.where(t.metrics.c.key == key)
        return int(self.conn.execute(q).scalar_one())

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        stmt = self._insert(t.dataset_inputs).on_conflict_do_nothing()
        self.conn.execute(
            stmt,
            [
                {
                    "run_id": run_id,
                    "name": d.name,
                    "digest": d.digest,
                    "context": d.context,
                    "num_rows": d.num_rows,
                    "schema": d.schema,
                    "source": d.source,
                }
                for d in inputs
            ],
        )

    # -- artifacts ---------------------------------------------------------------------------

    def record_artifact(self, run_id: str, path: str, digest: str, size: int, now: int) -> None:
        stmt = self._insert(t.artifacts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "path"],
            set_={
                "digest": stmt.excluded.digest,
                "size": stmt.excluded.size,
                "created_time": stmt.excluded.created_time,
            },
        )
        self.conn.execute(
            stmt,
            {"run_id": run_id, "path": path, "digest": digest, "size": size, "created_time": now},
        )

    def get_artifact(self, run_id: str, path: str) -> tuple[str, int] | None:
        row = self.conn.execute(
            select(t.artifacts.c.digest, t.artifacts.c.size).where(
                t.artifacts.c.run_id == run_id, t.artifacts.c.path == path
            )
        ).first()
        return None if row is None else (row.digest, row.size)

    def list_artifacts(self, run_id: str, prefix: str) -> list[tuple[str, str, int]]:
        """(path, digest, size) of every file at or under ``prefix`` ("" = all)."""
        a = t.artifacts.c
        q = select(a.path, a.digest, a.size).where(a.run_id == run_id).order_by(a.path)
        if prefix:
            # Compare by range, not LIKE, so % and _ in a path are not wildcards.
            q = q.where(or_(a.path == prefix, and_(a.path > prefix + "/", a.path < prefix + "0")))
        return [(r.path, r.digest, r.size) for r in self.conn.execute(q)]

    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> int:
        n = 0
        for chunk in _chunks(list(paths)):
            n += self.conn.execute(
                delete(t.artifacts).where(
                    t.artifacts.c.run_id == run_id, t.artifacts.c.path.in_(chunk)
                )
            ).rowcount
        return n

    def digest_in_use(self, digest: str) -> bool:
        return (
            self.conn.execute(
                select(t.artifacts.c.run_id).where(t.artifacts.c.digest == digest).limit(1)
            ).first()
            is not None
        )

    # -- audit -------------------------------------------------------------------------------

    def lock_audit(self) -> None:
        """Serialise appends to the audit chain until this transaction ends. SQLite's writer
        is exclusive already (BEGIN IMMEDIATE); PostgreSQL takes a transaction-level advisory
        lock, so two transactions can never both chain onto the same predecessor."""
        if self._audit_locked:
            return
        if self.dialect == "postgresql":
            self._fetch(_PG_AUDIT_LOCK, None)
        self._audit_locked = True

    def _audit_chain_head(self) -> tuple[int, str]:
        """Take the audit lock and read the newest event's (id, hash)."""
        if self.dialect == "postgresql" and not self._audit_locked:
            rows = self._fetch(_PG_LOCK_AND_LAST_AUDIT, None, last_result=True)
            self._audit_locked = True
        else:
            self.lock_audit()
            rows = self._fetch(_LAST_AUDIT, None)
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS_HASH)

    def append_audit(
        self,
        *,
        actor: str,
        action: str,
        resource_type: str,
        resource_id: str,
        details: dict[str, Any],
        now: int,
    ) -> int:
        """Append one event to the hash chain; returns its id.

        Under the audit lock: one indexed read of the newest event (id and hash), then the
        insert with the next id, the previous hash and this event's hash.
        """
        head = self._audit_head or self._audit_chain_head()
        event_id = head[0] + 1
        details = normalise_details(details)
        digest = event_hash(
            event_id, now, actor, action, resource_type, resource_id, details, head[1]
        )
        # One statement object for every event: SQLAlchemy compiles it once and reuses it.
        self.conn.execute(
            _INSERT_AUDIT,
            {
                "event_id": event_id,
                "time": now,
                "actor": actor,
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "details": details,
                "prev_hash": head[1],
                "hash": digest,
            },
        )
        self._audit_head = (event_id, digest)
        return event_id

    @staticmethod
    def _audit_event(r: Any) -> AuditEvent:
        return AuditEvent(
            event_id=r.event_id,
            time=r.time,
            actor=r.actor,
            action=r.action,
            resource_type=r.resource_type,
            resource_id=r.resource_id,
            details=dict(r.details or {}),
            prev_hash=r.prev_hash,
            hash=r.hash,
        )

    def _audit_select(self, query: AuditQuery) -> Any:
        a = t.audit_events.c
        q = select(t.audit_events).order_by(a.event_id)
        for col, value in (
            (a.actor, query.actor),
            (a.action, query.action),
            (a.resource_type, query.resource_type),
            (a.resource_id, query.resource_id),
        ):
            if value is not None:
                q = q.where(col == value)
        if query.since is not None:
            q = q.where(a.time >= query.since)
        if query.until is not None:
            q = q.where(a.time < query.until)
        if query.after is not None:
            q = q.where(a.event_id > query.after)
        return q

    def list_audit(self, query: AuditQuery, limit: int, offset: int) -> list[AuditEvent]:
        q = self._audit_select(query).limit(limit).offset(offset)
        return [self._audit_event(r) for r in self.conn.execute(q)]

    def iter_audit_chain(self, page_size: int = 5000) -> Iterator[AuditEvent]:
        """Every event in id order, read in pages of ``page_size`` (keyset paging), all from
        one snapshot (PostgreSQL: a repeatable-read transaction, when this unit's first read;
        SQLite: a read transaction is one snapshot already), so a purge or appends running
        meanwhile cannot make a page boundary look like a break."""
        if self.dialect == "postgresql" and not self.conn.in_transaction():
            self.conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        after: int | None = None
        while True:
            page = self.list_audit(AuditQuery(after=after), page_size, 0)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].event_id

    def audit_checkpoints(self) -> set[str]:
        """The hashes retention recorded as the newest event it deleted."""
        a = t.audit_events.c
        rows = self.conn.execute(select(a.details).where(a.action == RETENTION_ACTION))
        return {
            str(d["checkpoint_hash"])
            for (d,) in rows
            if isinstance(d, dict) and d.get("checkpoint_hash")
        }

    def audit_prefix_before(self, cutoff: int) -> tuple[int, tuple[int, str] | None]:
        """How many of the oldest events form an unbroken run written before ``cutoff`` (epoch
        ms), and the (id, hash) of the newest of them (None when there are none)."""
        a = t.audit_events.c
        first_kept = self.conn.execute(select(func.min(a.event_id)).where(a.time >= cutoff))
        bound = first_kept.scalar()
        q = select(a.event_id, a.hash).order_by(a.event_id.desc()).limit(1)
        if bound is not None:
            q = q.where(a.event_id < bound)
        last = self.conn.execute(q).first()
        if last is None:
            return 0, None
        count = self.conn.execute(
            select(func.count()).select_from(t.audit_events).where(a.event_id <= last.event_id)
        ).scalar_one()
        return int(count), (int(last.event_id), str(last.hash))

    def delete_audit_through(self, event_id: int) -> int:
        """Delete every event with an id up to ``event_id`` (retention only)."""
        return int(
            self.conn.execute(
                delete(t.audit_events).where(t.audit_events.c.event_id <= event_id)
            ).rowcount
        )


class SqlStore:
    """The metadata store over one SQLAlchemy URL.

    Opening migrates the schema to the head revision if needed (``migrate=False`` skips it,
    for ``dockyard db upgrade`` to do explicitly).
    """

    def __init__(self, url: str, *, busy_timeout: float = 60.0, migrate: bool = True) -> None:
        self.url = url
        self.engines: Engines = create_engines(url, busy_timeout=busy_timeout)
        if migrate:
            ensure_migrated(self.engines)

    @property
    def dialect(self) -> str:
        return self.engines.dialect

    def write(self, fn: Callable[[SqlUnit], T]) -> T:
        """Run ``fn`` in one write transaction; commit if it returns, roll back if it raises."""
        for attempt in range(3):
            try:
                with self.engines.writer.begin() as conn:
                    return fn(SqlUnit(conn))
            except IntegrityError:
                # A concurrent writer inserted the same key between our read and our insert;
                # run again so fn sees that row and decides (no-op or Conflict).
                if attempt == 2:
                    raise
            except OperationalError as exc:
                if attempt == 2 or not _is_transient(exc):
                    raise self._unavailable(exc) from None
                time.sleep(0.05 * (attempt + 1))
            except PoolTimeout:
                raise self._busy() from None
        raise AssertionError("unreachable")

    def read(self, fn: Callable[[SqlUnit], T]) -> T:
        try:
            with self.engines.reader.connect() as conn:
                return fn(SqlUnit(conn))
        except OperationalError as exc:
            raise self._unavailable(exc) from None
        except PoolTimeout:
            raise self._busy() from None

    def _busy(self) -> Unavailable:
        return Unavailable(
            f"metadata store {redact_url(self.url)} is busy: no connection was free in time; "
            "retry shortly"
        )

    def _unavailable(self, exc: DBAPIError) -> Unavailable:
        return Unavailable(f"metadata store {redact_url(self.url)} failed: {str(exc.orig).strip()}")

    def close(self) -> None:
        self.engines.dispose()


def _is_transient(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "deadlock" in text or "could not serialize" in text
