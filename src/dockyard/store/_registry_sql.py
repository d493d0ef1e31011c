"""Repository methods of the model registry, mixed into :class:`dockyard.store.sql.SqlUnit`.

Rows become :mod:`dockyard.core.registry_entities` objects before they leave this module. The
registry rules (names, lifecycle, gates) live in :mod:`dockyard.registry.service`; this layer
only reads and writes rows inside the caller's transaction.

Concurrency: every registry mutation first calls :meth:`RegistryUnit.lock_registered_model`,
which on PostgreSQL takes a row lock on the registered model (``SELECT ... FOR UPDATE``) so that
version numbering and alias moves of one model are serialized; SQLite serializes every write
transaction already (``BEGIN IMMEDIATE``). Version numbers are also protected by the
``(name, version)`` primary key: a lost race is an IntegrityError that the store retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from dockyard.core.registry_entities import (
    AliasEvent,
    Approval,
    ModelVersion,
    RegisteredModel,
    StatusEvent,
    ValidationResult,
)
from dockyard.store import schema as t

_MAX_IN = 500


class RegistryUnit:
    """Registry repository methods; needs ``conn`` and ``dialect`` from the unit."""

    conn: Connection
    dialect: str

    def _upsert(self, table: t.Table) -> Any:
        return (pg.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(table)

    # -- registered models -------------------------------------------------------------------

    def lock_registered_model(self, name: str) -> bool:
        """Lock the model's row until the transaction ends; False if it does not exist."""
        q = select(t.registered_models.c.name).where(t.registered_models.c.name == name)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        return self.conn.execute(q).first() is not None

    def insert_registered_model(
        self, name: str, description: str, owner: str, tags: Mapping[str, str], now: int
    ) -> bool:
        """Insert the model unless it exists; True if this call created it."""
        stmt = (
            self._upsert(t.registered_models)
            .values(
                name=name,
                description=description,
                owner=owner,
                creation_time=now,
                last_update_time=now,
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(t.registered_models.c.name)
        )
        # RETURNING, not rowcount: psycopg reports 1 for an insert that the conflict skipped.
        created = self.conn.execute(stmt).first() is not None
        if created and tags:
            self.set_registered_model_tags(name, tags)
        return created

    def _registered_models(self, rows: Sequence[Any]) -> list[RegisteredModel]:
        names = [r.name for r in rows]
        tags: dict[str, dict[str, str]] = {n: {} for n in names}
        aliases: dict[str, dict[str, int]] = {n: {} for n in names}
        latest: dict[str, int] = {}
        for i in range(0, len(names), _MAX_IN):
            chunk = names[i : i + _MAX_IN]
            tg = t.registered_model_tags.c
            for r in self.conn.execute(
                select(tg.name, tg.key, tg.value).where(tg.name.in_(chunk)).order_by(tg.key)
            ):
                tags[r.name][r.key] = r.value
            al = t.model_aliases.c
            for r in self.conn.execute(
                select(al.name, al.alias, al.version).where(al.name.in_(chunk)).order_by(al.alias)
            ):
                aliases[r.name][r.alias] = r.version
            mv = t.model_versions.c
            for r in self.conn.execute(
                select(mv.name, func.max(mv.version).label("v"))
                .where(mv.name.in_(chunk))
                .group_by(mv.name)
            ):
                latest[r.name] = int(r.v)
        return [
            RegisteredModel(
                name=r.name,
                description=r.description,
                owner=r.owner,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                tags=tags[r.name],
                aliases=aliases[r.name],
                latest_version=latest.get(r.name),
                require_approval=bool(r.require_approval),
            )
            for r in rows
        ]

    def get_registered_model(self, name: str) -> RegisteredModel | None:
        row = self.conn.execute(
            select(t.registered_models).where(t.registered_models.c.name == name)
        ).first()
        return None if row is None else self._registered_models([row])[0]

    def list_registered_models(self, limit: int, offset: int) -> list[RegisteredModel]:
        rows = self.conn.execute(
            select(t.registered_models)
            .order_by(t.registered_models.c.name)
            .limit(limit)
            .offset(offset)
        ).all()
        return self._registered_models(rows)

    def update_registered_model(self, name: str, now: int, **values: Any) -> None:
        self.conn.execute(
            update(t.registered_models)
            .where(t.registered_models.c.name == name)
            .values(last_update_time=now, **values)
        )

    def set_registered_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        stmt = self._upsert(t.registered_model_tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name", "key"], set_={"value": stmt.excluded.value}
        )
        self.conn.execute(stmt, [{"name": name, "key": k, "value": v} for k, v in tags.items()])

    # -- model versions ----------------------------------------------------------------------

    def next_model_version(self, name: str) -> int:
        mv = t.model_versions.c
        top = self.conn.execute(select(func.max(mv.version)).where(mv.name == name)).scalar()
        return 1 if top is None else int(top) + 1

    def insert_model_version(
        self,
        values: Mapping[str, Any],
        files: Mapping[str, tuple[str, int]],
        tags: Mapping[str, str],
    ) -> None:
        """Insert one version row with its files and tags (``values`` holds every column)."""
        name, version = values["name"], values["version"]
        self.conn.execute(insert(t.model_versions).values(**values))
        self.conn.execute(
            insert(t.model_version_files),
            [
                {"name": name, "version": version, "path": p, "sha256": d, "size": s}
                for p, (d, s) in sorted(files.items())
            ],
        )
        if tags:
            self.set_model_version_tags(name, version, tags)

    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        stmt = self._upsert(t.model_version_tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name", "version", "key"], set_={"value": stmt.excluded.value}
        )
        self.conn.execute(
            stmt,
            [{"name": name, "version": version, "key": k, "value": v} for k, v in tags.items()],
        )

    def update_model_version(self, name: str, version: int, now: int, **values: Any) -> None:
        mv = t.model_versions.c
        self.conn.execute(
            update(t.model_versions)
            .where(mv.name == name, mv.version == version)
            .values(last_update_time=now, **values)
        )
        self.update_registered_model(name, now)

    def model_version_status(self, name: str, version: int) -> str | None:
        mv = t.model_versions.c
        return self.conn.execute(
            select(mv.status).where(mv.name == name, mv.version == version)
        ).scalar()

    def _model_versions(self, rows: Sequence[Any]) -> list[ModelVersion]:
        if not rows:
            return []
        keys = [(r.name, r.version) for r in rows]
        files: dict[tuple[str, int], dict[str, dict[str, Any]]] = {k: {} for k in keys}
        aliases: dict[tuple[str, int], list[str]] = {k: [] for k in keys}
        tags: dict[tuple[str, int], dict[str, str]] = {k: {} for k in keys}
        validation: dict[tuple[str, int], dict[str, Any]] = {}
        by_name: dict[str, list[int]] = {}
        for name, version in keys:
            by_name.setdefault(name, []).append(version)
        for name, versions in by_name.items():
            for i in range(0, len(versions), _MAX_IN):
                chunk = versions[i : i + _MAX_IN]
                f = t.model_version_files.c
                for r in self.conn.execute(
                    select(f.version, f.path, f.sha256, f.size)
                    .where(f.name == name, f.version.in_(chunk))
                    .order_by(f.version, f.path)
                ):
                    files[(name, r.version)][r.path] = {"sha256": r.sha256, "size": r.size}
                a = t.model_aliases.c
                for r in self.conn.execute(
                    select(a.alias, a.version)
                    .where(a.name == name, a.version.in_(chunk))
                    .order_by(a.alias)
                ):
                    aliases[(name, r.version)].append(r.alias)
                g = t.model_version_tags.c
                for r in self.conn.execute(
                    select(g.version, g.key, g.value)
                    .where(g.name == name, g.version.in_(chunk))
                    .order_by(g.key)
                ):
                    tags[(name, r.version)][r.key] = r.value
                v = t.model_validations.c
                for r in self.conn.execute(
                    select(t.model_validations)
                    .where(v.name == name, v.version.in_(chunk))
                    .order_by(v.id)
                ):
                    validation[(name, r.version)] = _validation(r).to_dict()
        return [
            ModelVersion(
                name=r.name,
                version=r.version,
                status=r.status,
                source=r.source,
                run_id=r.run_id,
                package_digest=r.package_digest,
                flavor=r.flavor,
                task=r.task,
                signature=dict(r.signature or {}),
                trusted_pickle=bool(r.trusted_pickle),
                files=files[(r.name, r.version)],
                datasets=list(r.datasets or []),
                code=dict(r.code or {}),
                metrics=dict(r.metrics or {}),
                description=r.description,
                created_by=r.created_by,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                status_reason=r.status_reason,
                replacement_version=r.replacement_version,
                aliases=aliases[(r.name, r.version)],
                validation=validation.get((r.name, r.version)),
                tags=tags[(r.name, r.version)],
            )
            for r in rows
        ]

    def get_model_version(self, name: str, version: int) -> ModelVersion | None:
        mv = t.model_versions.c
        row = self.conn.execute(
            select(t.model_versions).where(mv.name == name, mv.version == version)
        ).first()
        return None if row is None else self._model_versions([row])[0]

    def list_model_versions(
        self, name: str, statuses: Sequence[str] | None, limit: int, offset: int
    ) -> list[ModelVersion]:
        mv = t.model_versions.c
        q = select(t.model_versions).where(mv.name == name)
        if statuses is not None:
            q = q.where(mv.status.in_(list(statuses)))
        rows = self.conn.execute(q.order_by(mv.version).limit(limit).offset(offset)).all()
        return self._model_versions(rows)

    def highest_version(self, name: str, statuses: Iterable[str]) -> int | None:
        """The highest version number of ``name`` whose status is one of ``statuses``."""
        mv = t.model_versions.c
        top = self.conn.execute(
            select(func.max(mv.version)).where(mv.name == name, mv.status.in_(list(statuses)))
        ).scalar()
        return None if top is None else int(top)

    def model_versions_of_run(self, run_id: str) -> list[tuple[str, int]]:
        mv = t.model_versions.c
        q = select(mv.name, mv.version).where(mv.run_id == run_id).order_by(mv.name, mv.version)
        return [(r.name, r.version) for r in self.conn.execute(q)]

    # -- status history ----------------------------------------------------------------------

    def insert_status_event(
        self,
        name: str,
        version: int,
        from_status: str | None,
        to_status: str,
        actor: str,
        now: int,
        reason: str | None,
    ) -> None:
        self.conn.execute(
            insert(t.model_status_events).values(
                name=name,
                version=version,
                from_status=from_status,
                to_status=to_status,
                actor=actor,
                time=now,
                reason=reason,
            )
        )

    def status_events(self, name: str, version: int) -> list[StatusEvent]:
        e = t.model_status_events.c
        q = select(t.model_status_events).where(e.name == name, e.version == version).order_by(e.id)
        return [
            StatusEvent(
                name=r.name,
                version=r.version,
                from_status=r.from_status,
                to_status=r.to_status,
                actor=r.actor,
                time=r.time,
                reason=r.reason,
            )
            for r in self.conn.execute(q)
        ]

    # -- aliases -----------------------------------------------------------------------------

    def get_alias(self, name: str, alias: str) -> int | None:
        a = t.model_aliases.c
        v = self.conn.execute(select(a.version).where(a.name == name, a.alias == alias)).scalar()
        return None if v is None else int(v)

    def put_alias(self, name: str, alias: str, version: int) -> None:
        stmt = self._upsert(t.model_aliases)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name", "alias"], set_={"version": stmt.excluded.version}
        )
        self.conn.execute(stmt, {"name": name, "alias": alias, "version": version})

    def remove_alias(self, name: str, alias: str) -> bool:
        a = t.model_aliases.c
        return bool(
            self.conn.execute(
                delete(t.model_aliases).where(a.name == name, a.alias == alias)
            ).rowcount
        )

    def aliases_of_version(self, name: str, version: int) -> list[str]:
        a = t.model_aliases.c
        q = select(a.alias).where(a.name == name, a.version == version).order_by(a.alias)
        return [r.alias for r in self.conn.execute(q)]

    def insert_alias_event(
        self,
        name: str,
        alias: str,
        from_version: int | None,
        to_version: int | None,
        actor: str,
        now: int,
    ) -> None:
        self.conn.execute(
            insert(t.model_alias_events).values(
                name=name,
                alias=alias,
                from_version=from_version,
                to_version=to_version,
                actor=actor,
                time=now,
            )
        )

    def alias_events(self, name: str, alias: str | None) -> list[AliasEvent]:
        e = t.model_alias_events.c
        q = select(t.model_alias_events).where(e.name == name)
        if alias is not None:
            q = q.where(e.alias == alias)
        return [
            AliasEvent(
                name=r.name,
                alias=r.alias,
                from_version=r.from_version,
                to_version=r.to_version,
                actor=r.actor,
                time=r.time,
            )
            for r in self.conn.execute(q.order_by(e.id))
        ]

    # -- validations -------------------------------------------------------------------------

    def insert_validation(self, values: Mapping[str, Any]) -> ValidationResult:
        result = self.conn.execute(insert(t.model_validations).values(**values))
        vid = result.inserted_primary_key[0]
        row = self.conn.execute(
            select(t.model_validations).where(t.model_validations.c.id == vid)
        ).one()
        return _validation(row)

    def latest_validation(self, name: str, version: int) -> ValidationResult | None:
        v = t.model_validations.c
        row = self.conn.execute(
            select(t.model_validations)
            .where(v.name == name, v.version == version)
            .order_by(v.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _validation(row)

    def list_validations(self, name: str, version: int) -> list[ValidationResult]:
        v = t.model_validations.c
        q = select(t.model_validations).where(v.name == name, v.version == version)
        return [_validation(r) for r in self.conn.execute(q.order_by(v.id))]

    # -- approvals ---------------------------------------------------------------------------

    def insert_approval(self, values: Mapping[str, Any]) -> Approval:
        result = self.conn.execute(insert(t.model_approvals).values(**values))
        aid = result.inserted_primary_key[0]
        row = self.conn.execute(
            select(t.model_approvals).where(t.model_approvals.c.id == aid)
        ).one()
        return _approval(row)

    def list_approvals(self, name: str, version: int) -> list[Approval]:
        """Every approval step of a version, oldest first."""
        a = t.model_approvals.c
        q = select(t.model_approvals).where(a.name == name, a.version == version)
        return [_approval(r) for r in self.conn.execute(q.order_by(a.id))]

    def model_requires_approval(self, name: str) -> bool | None:
        """The model's approval policy; None if the model does not exist."""
        m = t.registered_models.c
        row = self.conn.execute(select(m.require_approval).where(m.name == name)).first()
        return None if row is None else bool(row[0])


def _approval(r: Any) -> Approval:
    return Approval(
        id=int(r.id),
        name=r.name,
        version=r.version,
        action=r.action,
        actor=r.actor,
        requester=r.requester,
        comment=r.comment,
        package_digest=r.package_digest,
        time=r.time,
    )


def _validation(r: Any) -> ValidationResult:
    return ValidationResult(
        id=int(r.id),
        name=r.name,
        version=r.version,
        against_version=r.against_version,
        passed=bool(r.passed),
        checks=list(r.checks or []),
        metrics=dict(r.metrics or {}),
        data_digest=r.data_digest,
        num_rows=int(r.num_rows),
        actor=r.actor,
        time=r.time,
    )
