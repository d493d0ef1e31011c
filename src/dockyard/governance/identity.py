"""Identities: users and service accounts, API tokens, role grants; and token authentication.

Tokens are ``dy_`` followed by 32 random bytes (URL-safe base64): recognisable by secret
scanners, never stored in clear (only their sha256), shown once when created. A token has a
public id (``tok_...``) for listing and revoking, an optional expiry, a revocation time and a
last-used time.

Token use: :func:`authenticate` updates ``last_used`` at most once a minute per token and
audits a ``token.use`` event each time it does -- so the first use of every token is always
audited, and a busy token adds at most one event (and one write) a minute, never one per
request. Concurrent requests race for that write with a conditional UPDATE, so exactly one of
them records the event.

Managing users, grants and other people's tokens needs the ``admin`` permission; anyone may
create, list and revoke their own tokens, and ask :meth:`IdentityService.whoami`. The server's
identity routes (:mod:`dockyard.server.routes.identity`) and the CLI in local mode call these
same methods, so the rules hold however they are reached. No FastAPI or Typer here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound, Unauthenticated
from dockyard.core.identity_entities import (
    PRINCIPAL_KINDS,
    USER,
    ApiToken,
    Grant,
    NewToken,
    User,
)
from dockyard.governance.audit import Actor, now_ms, record_event
from dockyard.governance.permissions import (
    ADMIN,
    Authorizer,
    check_resource,
    check_role,
)

if TYPE_CHECKING:
    from dockyard.store.base import Store

TOKEN_PREFIX = "dy_"
#: ``last_used`` is written (and ``token.use`` audited) at most this often per token.
TOUCH_INTERVAL_MS = 60_000
#: The user the server creates on its first start with auth on and no admin.
BOOTSTRAP_ADMIN = "admin"
MIN_SECRET_LENGTH = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_DAY_MS = 86_400_000
#: The longest a token a non-admin creates (for themselves) may live, in days.
SELF_SERVICE_MAX_DAYS = 365


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_principal_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"user name must be 1 to 128 letters, digits or . _ @ + - (starting with a letter or "
            f"digit), got {name!r}"
        )
    return name


_GRANT_FIELDS = frozenset(f.name for f in fields(Grant))


@dataclass(frozen=True)
class Identity:
    """Who a caller is, as :meth:`IdentityService.whoami` answers it.

    ``kind`` and ``display`` are None/empty for a principal that is not a stored user: the
    ``anonymous`` caller of a server with auth off, or the OS user of a store without users
    (both ``superuser``: every permission). ``admin`` is whether the caller holds the admin
    permission; ``grants`` are its own role grants (none for a superuser without a user).
    """

    name: str
    kind: str | None
    display: str
    superuser: bool
    admin: bool
    grants: tuple[Grant, ...]

    @property
    def roles(self) -> list[str]:
        """The grants in words: ``admin``, ``editor on experiment 7``..."""
        return [
            g.role
            if g.resource_type == "global"
            else f"{g.role} on {g.resource_type} {g.resource_id}"
            for g in self.grants
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "display": self.display,
            "superuser": self.superuser,
            "admin": self.admin,
            "roles": self.roles,
            "grants": [g.to_dict() for g in self.grants],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Identity:
        return cls(
            name=d["name"],
            kind=d.get("kind"),
            display=d.get("display") or "",
            superuser=bool(d.get("superuser")),
            admin=bool(d.get("admin")),
            grants=tuple(
                Grant(**{k: v for k, v in g.items() if k in _GRANT_FIELDS})
                for g in d.get("grants") or ()
            ),
        )


def check_token_id(token_id: Any) -> str:
    if not isinstance(token_id, str) or not re.fullmatch(r"tok_[0-9a-f]{16}", token_id):
        raise InvalidInput(f"token id looks like tok_<16 hex digits>, got {token_id!r}")
    return token_id


def _check_secret(secret: Any, where: str) -> str:
    if (
        not isinstance(secret, str)
        or len(secret) < MIN_SECRET_LENGTH
        or len(secret) > 256
        or not secret.isprintable()
        or any(c.isspace() for c in secret)
    ):
        raise InvalidInput(
            f"{where} must be {MIN_SECRET_LENGTH} to 256 printable characters without spaces; "
            "generate one with: python -c \"import secrets; print('dy_' + "
            'secrets.token_urlsafe(32))"'
        )
    return secret


class IdentityService:
    """User, token and grant management on behalf of ``actor``."""

    def __init__(self, store: Store, actor: Actor) -> None:
        self.store = store
        self.actor = actor
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)

    def _admin(self) -> None:
        self.authz.require(ADMIN)

    # -- the caller ----------------------------------------------------------------------------

    def whoami(self) -> Identity:
        """The caller: its name, kind, whether it is an admin, and its own grants. Needs no
        permission (in local mode the local user must still be a user of a store that has
        users: the same Unauthenticated as any other call)."""
        name = self.actor.name
        superuser = self.authz.is_superuser
        user, grants = self.store.read(lambda u: (u.get_user(name), u.list_grants(name)))
        return Identity(
            name=name,
            kind=None if user is None else user.kind,
            display="" if user is None else user.display,
            superuser=superuser,
            admin=self.authz.allows(ADMIN),
            grants=tuple(grants),
        )

    # -- users -------------------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        *,
        kind: str = USER,
        display: str = "",
        roles: Sequence[str] = (),
    ) -> User:
        """Create a user or service account, optionally with global roles.

        The first user of a store must get the ``admin`` role: in local mode the OS user stops
        being an implicit admin as soon as a user exists, so a first user without it would
        leave nobody able to manage the store.
        """
        self._admin()
        check_principal_name(name)
        if kind not in PRINCIPAL_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(PRINCIPAL_KINDS)}, got {kind!r}")
        if not isinstance(display, str) or len(display) > 256 or not display.isprintable():
            raise InvalidInput("display name must be at most 256 printable characters")
        clean_roles = [check_role(r) for r in roles]

        def fn(u: Any) -> User:
            if u.count_users() == 0 and ADMIN not in clean_roles:
                raise InvalidInput(
                    f"{name!r} would be the first user of this store: give it the admin role "
                    "(--role admin), or nobody could manage users afterwards (in local mode "
                    "the OS user is an implicit admin only while the store has no users)"
                )
            now = now_ms()
            if not u.insert_user(name, kind, display, now):
                raise AlreadyExists(f"user {name!r} already exists", name=name)
            for role in clean_roles:
                u.insert_grant(name, role, "global", "*", now, self.actor.name)
            record_event(u, self.actor, "user.create", "user", name, kind=kind, roles=clean_roles)
            user = u.get_user(name)
            assert user is not None
            return user

        return self.store.write(fn)

    def get_user(self, name: str) -> User:
        self._admin()
        check_principal_name(name)
        user = self.store.read(lambda u: u.get_user(name))
        if user is None:
            raise NotFound(f"user {name!r} does not exist", name=name)
        return user

    def list_users(self) -> list[User]:
        self._admin()
        return self.store.read(lambda u: u.list_users())  # type: ignore[no-any-return]

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        """Disable (or enable again) a user: its tokens stop working at once. Refused when it
        would leave the store with no enabled admin."""
        self._admin()
        check_principal_name(name)

        def fn(u: Any) -> User:
            if not u.set_user_disabled(name, disabled):
                raise NotFound(f"user {name!r} does not exist", name=name)
            if disabled and not u.has_admin():
                raise Conflict(f"disabling {name!r} would leave no enabled admin")
            record_event(u, self.actor, "user.disable" if disabled else "user.enable", "user", name)
            user = u.get_user(name)
            assert user is not None
            return user

        return self.store.write(fn)

    # -- tokens ------------------------------------------------------------------------------

    def _self_or_admin(self, user: str, what: str) -> None:
        if user != self.actor.name:
            self._admin()

    def create_token(
        self, user: str, name: str = "", *, expires_in_days: float | None = 90
    ) -> NewToken:
        """A new API token for ``user`` (yourself, or anyone for an admin). The returned
        secret is shown this once: only its sha256 is stored. ``expires_in_days=None``: never
        expires (admins only).

        Self-service tokens are bounded, so a stolen token cannot be turned into lasting
        access: a non-admin's token must expire, within :data:`SELF_SERVICE_MAX_DAYS`, and,
        when it is created with a token, no later than that token (it is cut to that time)."""
        check_principal_name(user)
        self._self_or_admin(user, "create a token for")
        admin = self.authz.allows(ADMIN)
        if not admin and expires_in_days is None:
            raise InvalidInput(
                "only an admin may create a token that never expires; give expires_in_days "
                f"(at most {SELF_SERVICE_MAX_DAYS})"
            )
        if not admin and isinstance(expires_in_days, int | float):
            if expires_in_days > SELF_SERVICE_MAX_DAYS:
                raise InvalidInput(
                    f"a token you create for yourself expires within {SELF_SERVICE_MAX_DAYS} "
                    f"days, got {expires_in_days!r}; an admin can make longer-lived ones"
                )
        if not isinstance(name, str) or len(name) > 256 or not name.isprintable():
            raise InvalidInput("token name must be at most 256 printable characters")
        expires: int | None = None
        now = now_ms()
        if expires_in_days is not None:
            if not isinstance(expires_in_days, int | float) or not 0 < expires_in_days <= 3650:
                raise InvalidInput(
                    f"expires_in_days must be more than 0 and at most 3650, got {expires_in_days!r}"
                )
            expires = now + int(expires_in_days * _DAY_MS)
        if not admin and self.actor.token_expires is not None and expires is not None:
            expires = min(expires, self.actor.token_expires)  # never outlives its maker
        secret = new_secret()
        token_id = "tok_" + secrets.token_hex(8)

        def fn(u: Any) -> ApiToken:
            owner = u.get_user(user)
            if owner is None:
                raise NotFound(f"user {user!r} does not exist", name=user)
            if owner.disabled:
                raise Conflict(f"user {user!r} is disabled")
            u.insert_token(
                token_id=token_id,
                user=user,
                token_hash=hash_token(secret),
                name=name,
                created=now,
                expires=expires,
            )
            record_event(
                u, self.actor, "token.create", "api_token", token_id, user=user, expires=expires
            )
            tok = u.get_token(token_id)
            assert tok is not None
            return tok

        return NewToken(self.store.write(fn), secret)

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """Tokens (never their secrets): your own, or anyone's for an admin (``user=None``:
        every token for an admin, your own otherwise)."""
        if user is None and not self.authz.allows(ADMIN):
            user = self.actor.name
        if user is not None:
            check_principal_name(user)
            self._self_or_admin(user, "list the tokens of")
        return self.store.read(lambda u: u.list_tokens(user))  # type: ignore[no-any-return]

    def revoke_token(self, token_id: str) -> ApiToken:
        check_token_id(token_id)

        def fn(u: Any) -> ApiToken:
            tok = u.get_token(token_id)
            if tok is None or (tok.user != self.actor.name and not self.authz.allows(ADMIN)):
                # Someone else's token is "not found" to a non-admin: ids are not probed.
                raise NotFound(f"token {token_id} does not exist", token_id=token_id)
            if not u.revoke_token(token_id, now_ms()):
                raise Conflict(f"token {token_id} is already revoked")
            record_event(u, self.actor, "token.revoke", "api_token", token_id, user=tok.user)
            out = u.get_token(token_id)
            assert out is not None
            return out

        return self.store.write(fn)

    # -- grants ------------------------------------------------------------------------------

    def grant(
        self, principal: str, role: str, resource_type: str = "global", resource_id: str = "*"
    ) -> Grant:
        self._admin()
        check_principal_name(principal)
        check_role(role)
        rtype, rid = check_resource(resource_type, resource_id)

        def fn(u: Any) -> Grant:
            if u.get_user(principal) is None:
                raise NotFound(f"user {principal!r} does not exist", name=principal)
            if not u.insert_grant(principal, role, rtype, rid, now_ms(), self.actor.name):
                raise AlreadyExists(
                    f"{principal!r} already has role {role} on {rtype} {rid!r}",
                )
            record_event(
                u,
                self.actor,
                "grant.add",
                "user",
                principal,
                role=role,
                on_type=rtype,
                on_id=rid,
            )
            return next(
                g
                for g in u.list_grants(principal)
                if (g.role, g.resource_type, g.resource_id) == (role, rtype, rid)
            )

        return self.store.write(fn)

    def revoke_grant(
        self, principal: str, role: str, resource_type: str = "global", resource_id: str = "*"
    ) -> None:
        self._admin()
        check_principal_name(principal)
        check_role(role)
        rtype, rid = check_resource(resource_type, resource_id)

        def fn(u: Any) -> None:
            if not u.delete_grant(principal, role, rtype, rid):
                raise NotFound(f"{principal!r} has no role {role} on {rtype} {rid!r}")
            if role == ADMIN and u.count_users() and not u.has_admin():
                raise Conflict(f"removing admin from {principal!r} would leave no enabled admin")
            record_event(
                u,
                self.actor,
                "grant.remove",
                "user",
                principal,
                role=role,
                on_type=rtype,
                on_id=rid,
            )

        self.store.write(fn)

    def list_grants(self, principal: str | None = None) -> list[Grant]:
        """Grants of everyone (admin) or of one principal (yourself, or anyone for an admin)."""
        if principal is None:
            self._admin()
        else:
            check_principal_name(principal)
            self._self_or_admin(principal, "list the grants of")
        return self.store.read(lambda u: u.list_grants(principal))  # type: ignore[no-any-return]


# -- authentication and bootstrap ---------------------------------------------------------------


def authenticate(store: Store, secret: str | None) -> Actor:
    """The Actor (with its Authorizer) a bearer token stands for; Unauthenticated when it is
    missing, unknown, revoked, expired, or its user is disabled. Reads are one query; see the
    module docstring for when ``last_used`` and ``token.use`` are written."""
    if not secret:
        raise Unauthenticated("an API token is needed: send 'Authorization: Bearer <token>'")
    if not isinstance(secret, str) or len(secret) > 256:
        raise Unauthenticated("the API token is not valid")
    digest = hash_token(secret)

    def read(u: Any) -> tuple[ApiToken, User, list[Grant]] | None:
        found = u.token_by_hash(digest)
        if found is None:
            return None
        tok, user = found
        return tok, user, u.list_grants(user.name)

    found = store.read(read)
    if found is None:
        raise Unauthenticated("the API token is not valid")
    tok, user, grants = found
    now = now_ms()
    if tok.revoked is not None:
        raise Unauthenticated(f"the API token {tok.token_id} was revoked")
    if tok.expires is not None and tok.expires <= now:
        raise Unauthenticated(f"the API token {tok.token_id} has expired")
    if user.disabled:
        raise Unauthenticated(f"user {user.name!r} is disabled")
    actor = Actor(
        user.name,
        authorizer=Authorizer.for_principal(user.name, grants),
        token_expires=tok.expires,
    )
    if tok.last_used is None or now - tok.last_used >= TOUCH_INTERVAL_MS:

        def touch(u: Any) -> None:
            if u.touch_token(tok.token_id, now, now - TOUCH_INTERVAL_MS + 1):
                record_event(
                    u,
                    actor,
                    "token.use",
                    "api_token",
                    tok.token_id,
                    first_use=tok.last_used is None,
                )

        store.write(touch)
    return actor


def bootstrap_admin(store: Store, secret: str | None = None) -> NewToken | None:
    """Make sure the store has an enabled admin. When it has none, create (or re-enable) the
    user ``admin`` with a global admin grant and a token: ``secret`` when given (from
    ``DOCKYARD_ADMIN_TOKEN``; only its hash is kept), else a new random one. Returns the token
    (its secret to show once when it was generated here), or None when an admin existed."""
    if secret is not None:
        _check_secret(secret, "DOCKYARD_ADMIN_TOKEN")
    chosen = secret or new_secret()
    token_id = "tok_" + secrets.token_hex(8)
    system = Actor("dockyard-bootstrap")

    def fn(u: Any) -> ApiToken | None:
        if u.has_admin():
            return None
        now = now_ms()
        u.insert_user(BOOTSTRAP_ADMIN, USER, "bootstrap administrator", now)
        u.set_user_disabled(BOOTSTRAP_ADMIN, False)
        u.insert_grant(BOOTSTRAP_ADMIN, ADMIN, "global", "*", now, system.name)
        found = u.token_by_hash(hash_token(chosen))
        if found is not None:
            return found[0]  # type: ignore[no-any-return]
        u.insert_token(
            token_id=token_id,
            user=BOOTSTRAP_ADMIN,
            token_hash=hash_token(chosen),
            name="bootstrap",
            created=now,
            expires=None,
        )
        record_event(
            u,
            system,
            "user.bootstrap_admin",
            "user",
            BOOTSTRAP_ADMIN,
            token_id=token_id,
            from_env=secret is not None,
        )
        return u.get_token(token_id)  # type: ignore[no-any-return]

    tok = store.write(fn)
    return None if tok is None else NewToken(tok, chosen)
