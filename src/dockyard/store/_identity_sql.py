"""Repository methods of identities, mixed into :class:`dockyard.store.sql.SqlUnit`.

Users and service accounts, API tokens (looked up by the sha256 of the secret; the secret
itself never reaches the store) and role grants. Rows become
:mod:`dockyard.core.identity_entities` objects before they leave this module; the rules live
in :mod:`dockyard.governance.identity` and :mod:`dockyard.governance.permissions`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from dockyard.core.identity_entities import ApiToken, Grant, User
from dockyard.store import schema as t


def _user(r: Any) -> User:
    return User(
        name=r.name, kind=r.kind, display=r.display, disabled=bool(r.disabled), created=r.created
    )


def _token(r: Any) -> ApiToken:
    return ApiToken(
        token_id=r.token_id,
        user=r.user_name,
        name=r.name,
        created=r.created,
        expires=r.expires,
        revoked=r.revoked,
        last_used=r.last_used,
    )


def _grant(r: Any) -> Grant:
    return Grant(
        principal=r.principal,
        role=r.role,
        resource_type=r.resource_type,
        resource_id=r.resource_id,
        created=r.created,
        created_by=r.created_by,
    )


class IdentityUnit:
    """Identity repository methods; needs ``conn`` and ``dialect`` from the unit."""

    conn: Connection
    dialect: str

    def _insert_ignore(self, table: t.Table, values: dict[str, Any]) -> bool:
        """Insert a row unless its key exists; True when it was inserted."""
        ins = (pg.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(table)
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
        key = next(iter(table.primary_key.columns))
        stmt = ins.values(**values).on_conflict_do_nothing().returning(key)
        return self.conn.execute(stmt).first() is not None

    # -- users -------------------------------------------------------------------------------

    def count_users(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(t.users)).scalar_one())

    def insert_user(self, name: str, kind: str, display: str, now: int) -> bool:
        return self._insert_ignore(
            t.users,
            {"name": name, "kind": kind, "display": display, "disabled": False, "created": now},
        )

    def get_user(self, name: str) -> User | None:
        row = self.conn.execute(select(t.users).where(t.users.c.name == name)).first()
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        return [_user(r) for r in self.conn.execute(select(t.users).order_by(t.users.c.name))]

    def set_user_disabled(self, name: str, disabled: bool) -> bool:
        result = self.conn.execute(
            update(t.users).where(t.users.c.name == name).values(disabled=disabled)
        )
        return bool(result.rowcount)

    def has_admin(self) -> bool:
        """Whether an enabled principal holds the admin role globally."""
        g, u = t.role_grants.c, t.users.c
        q = (
            select(g.principal)
            .join(t.users, u.name == g.principal)
            .where(g.role == "admin", g.resource_type == "global", u.disabled.is_(False))
            .limit(1)
        )
        return self.conn.execute(q).first() is not None

    # -- tokens ------------------------------------------------------------------------------

    def insert_token(
        self,
        *,
        token_id: str,
        user: str,
        token_hash: str,
        name: str,
        created: int,
        expires: int | None,
    ) -> None:
        self.conn.execute(
            t.api_tokens.insert().values(
                token_id=token_id,
                user_name=user,
                token_hash=token_hash,
                name=name,
                created=created,
                expires=expires,
            )
        )

    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        a, u = t.api_tokens.c, t.users.c
        q = (
            select(
                a.token_id,
                a.user_name,
                a.name,
                a.created,
                a.expires,
                a.revoked,
                a.last_used,
                u.kind,
                u.display,
                u.disabled,
                u.created.label("user_created"),
            )
            .join(t.users, u.name == a.user_name)
            .where(a.token_hash == token_hash)
        )
        r = self.conn.execute(q).first()
        if r is None:
            return None
        user = User(
            name=r.user_name,
            kind=r.kind,
            display=r.display,
            disabled=bool(r.disabled),
            created=r.user_created,
        )
        return _token(r), user

    def get_token(self, token_id: str) -> ApiToken | None:
        row = self.conn.execute(
            select(t.api_tokens).where(t.api_tokens.c.token_id == token_id)
        ).first()
        return None if row is None else _token(row)

    def list_tokens(self, user: str | None) -> list[ApiToken]:
        a = t.api_tokens.c
        q = select(t.api_tokens).order_by(a.user_name, a.created, a.token_id)
        if user is not None:
            q = q.where(a.user_name == user)
        return [_token(r) for r in self.conn.execute(q)]

    def revoke_token(self, token_id: str, now: int) -> bool:
        a = t.api_tokens.c
        result = self.conn.execute(
            update(t.api_tokens)
            .where(a.token_id == token_id, a.revoked.is_(None))
            .values(revoked=now)
        )
        return bool(result.rowcount)

    def touch_token(self, token_id: str, now: int, older_than: int) -> bool:
        """Set last_used to ``now`` unless it is already at or after ``older_than``; True when
        this call changed it (so exactly one of several concurrent requests audits the use)."""
        a = t.api_tokens.c
        result = self.conn.execute(
            update(t.api_tokens)
            .where(a.token_id == token_id, (a.last_used.is_(None)) | (a.last_used < older_than))
            .values(last_used=now)
        )
        return bool(result.rowcount)

    # -- grants ------------------------------------------------------------------------------

    def insert_grant(
        self, principal: str, role: str, resource_type: str, resource_id: str, now: int, by: str
    ) -> bool:
        return self._insert_ignore(
            t.role_grants,
            {
                "principal": principal,
                "role": role,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "created": now,
                "created_by": by,
            },
        )

    def delete_grant(self, principal: str, role: str, resource_type: str, resource_id: str) -> bool:
        g = t.role_grants.c
        result = self.conn.execute(
            delete(t.role_grants).where(
                g.principal == principal,
                g.role == role,
                g.resource_type == resource_type,
                g.resource_id == resource_id,
            )
        )
        return bool(result.rowcount)

    def list_grants(self, principal: str | None = None) -> list[Grant]:
        g = t.role_grants.c
        q = select(t.role_grants).order_by(g.principal, g.resource_type, g.resource_id, g.role)
        if principal is not None:
            q = q.where(g.principal == principal)
        return [_grant(r) for r in self.conn.execute(q)]

    # -- what permission checks need to know about resources ---------------------------------

    def run_experiment_id(self, run_id: str) -> str | None:
        row = self.conn.execute(
            select(t.runs.c.experiment_id).where(t.runs.c.run_id == run_id)
        ).first()
        return None if row is None else str(row[0])
