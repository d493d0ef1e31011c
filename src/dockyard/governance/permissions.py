"""Roles, permissions and the one check every service call goes through.

Permissions
    ``experiment:read``, ``experiment:write`` (experiments, their runs, params, metrics, tags,
    inputs and artifacts), ``model:read``, ``model:write``, ``model:approve`` (registered models
    and their versions), ``endpoint:read``, ``endpoint:deploy`` (serving endpoints),
    ``audit:read`` (the audit log) and ``admin`` (users, tokens and grants).

Roles
    ``viewer``   the ``:read`` permissions;
    ``editor``   viewer + ``experiment:write`` + ``model:write``;
    ``deployer`` editor + ``endpoint:deploy``;
    ``approver`` viewer + ``model:approve`` + ``audit:read``;
    ``admin``    everything.

A grant gives a role to a principal either globally (``global``/``*``) or on one resource
(``experiment``/``<id>``, ``registered_model``/``<name>``, ``endpoint``/``<name>``; ``*`` for
every resource of that type). A role granted on a resource only gives the permissions that
apply to that type of resource: ``editor`` on experiment 7 gives ``experiment:write`` on
experiment 7 and nothing on models. ``admin`` and ``audit:read`` only come from global grants.

:class:`Authorizer` answers "may this principal do P on R?"; :func:`enforced` is the class
decorator that puts every public method of a service behind a permission of the service's
table, so a method missing from the table fails at import time (deny by default). The service
methods then check the exact resource (an experiment id, a model name) with
:meth:`Authorizer.require`.

No FastAPI or Typer here: the SDK in local mode, the CLI and the server all go through this.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from dockyard.core.errors import InvalidInput, PermissionDenied, Unauthenticated
from dockyard.core.identity_entities import RESOURCE_TYPES, Grant

if TYPE_CHECKING:
    from dockyard.store.base import Store

EXPERIMENT_READ = "experiment:read"
EXPERIMENT_WRITE = "experiment:write"
MODEL_READ = "model:read"
MODEL_WRITE = "model:write"
MODEL_APPROVE = "model:approve"
ENDPOINT_READ = "endpoint:read"
ENDPOINT_DEPLOY = "endpoint:deploy"
AUDIT_READ = "audit:read"
ADMIN = "admin"

#: Every permission and the resource type it applies to (``global``: only global grants).
PERMISSIONS: Mapping[str, str] = {
    EXPERIMENT_READ: "experiment",
    EXPERIMENT_WRITE: "experiment",
    MODEL_READ: "registered_model",
    MODEL_WRITE: "registered_model",
    MODEL_APPROVE: "registered_model",
    ENDPOINT_READ: "endpoint",
    ENDPOINT_DEPLOY: "endpoint",
    AUDIT_READ: "global",
    ADMIN: "global",
}

_VIEWER = frozenset({EXPERIMENT_READ, MODEL_READ, ENDPOINT_READ})
_EDITOR = _VIEWER | {EXPERIMENT_WRITE, MODEL_WRITE}
#: Every role and its permissions: viewer ⊂ editor ⊂ deployer; approver; admin = all.
ROLES: Mapping[str, frozenset[str]] = {
    "viewer": _VIEWER,
    "editor": _EDITOR,
    "deployer": _EDITOR | {ENDPOINT_DEPLOY},
    "approver": _VIEWER | {MODEL_APPROVE, AUDIT_READ},
    "admin": frozenset(PERMISSIONS),
}

_RESOURCE_WORDS = {"experiment": "experiment", "registered_model": "model", "endpoint": "endpoint"}

#: How long a long-lived local authorizer (the SDK's) trusts the grants it loaded.
LOCAL_GRANTS_TTL_SECONDS = 10.0


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def check_resource(resource_type: str, resource_id: str) -> tuple[str, str]:
    if resource_type not in RESOURCE_TYPES:
        raise InvalidInput(
            f"unknown resource type {resource_type!r}; one of {', '.join(RESOURCE_TYPES)}"
        )
    if resource_type == "global":
        if resource_id not in ("*", ""):
            raise InvalidInput("a global grant names no resource (use resource id '*')")
        return resource_type, "*"
    if not isinstance(resource_id, str) or not resource_id or len(resource_id) > 256:
        raise InvalidInput(f"a {resource_type} grant needs a resource id of 1 to 256 characters")
    return resource_type, resource_id


def _describe(permission: str, resource_id: str | None) -> str:
    rtype = PERMISSIONS[permission]
    if rtype == "global":
        return "globally"
    word = _RESOURCE_WORDS[rtype]
    if resource_id is None:
        return f"on every {word}"
    return f"on {word} {resource_id!r}"


class Authorizer:
    """The permissions of one principal.

    ``grants`` are the principal's role grants; ``superuser`` allows everything (the local
    user of a store that has no users yet, and a server running with auth off). Built by
    :meth:`for_principal` (grants known, the server after authenticating a token),
    :meth:`local` (grants loaded lazily from the store and refreshed every
    :data:`LOCAL_GRANTS_TTL_SECONDS`) or :meth:`allow_all`.
    """

    def __init__(
        self,
        principal: str,
        grants: Iterable[Grant] = (),
        *,
        superuser: bool = False,
        loader: Callable[[], tuple[bool, Sequence[Grant]]] | None = None,
        ttl: float | None = None,
    ) -> None:
        self.principal = principal
        self._superuser = superuser
        self._grants: tuple[Grant, ...] = tuple(grants)
        self._loader = loader
        self._ttl = ttl
        self._loaded_at: float | None = None if loader is not None else 0.0

    @classmethod
    def allow_all(cls, principal: str) -> Authorizer:
        return cls(principal, superuser=True)

    @classmethod
    def for_principal(cls, principal: str, grants: Iterable[Grant]) -> Authorizer:
        return cls(principal, grants)

    @classmethod
    def local(cls, store: Store, principal: str) -> Authorizer:
        """Local mode (SDK, CLI): while the store has no users, ``principal`` (the OS user or
        ``DOCKYARD_USER``) may do everything -- a laptop works with no setup. Once users exist,
        it must be one of them, enabled, and gets its grants."""

        def load() -> tuple[bool, Sequence[Grant]]:
            def fn(u: Any) -> tuple[bool, Sequence[Grant]]:
                if u.count_users() == 0:
                    return True, ()
                user = u.get_user(principal)
                if user is None:
                    raise Unauthenticated(
                        f"local user {principal!r} is not a user of this Dockyard store (it has "
                        "users, so local mode acts as one of them); ask an admin to run "
                        f"`dockyard users create {principal}` and grant it a role, or set "
                        "DOCKYARD_USER to your Dockyard user name",
                        user=principal,
                    )
                if user.disabled:
                    raise Unauthenticated(f"user {principal!r} is disabled", user=principal)
                return False, u.list_grants(principal)

            return store.read(fn)  # type: ignore[no-any-return]

        return cls(principal, loader=load, ttl=LOCAL_GRANTS_TTL_SECONDS)

    def _refresh(self) -> None:
        if self._loader is None:
            return
        now = time.monotonic()
        if self._loaded_at is None or (self._ttl is not None and now - self._loaded_at > self._ttl):
            self._superuser, grants = self._loader()
            self._grants = tuple(grants)
            self._loaded_at = now

    @property
    def is_superuser(self) -> bool:
        self._refresh()
        return self._superuser

    def _roles_for(self, rtype: str, resource_id: str | None) -> Iterable[str]:
        for g in self._grants:
            if g.resource_type == "global":
                yield g.role
            elif g.resource_type == rtype and (
                g.resource_id == "*" or (resource_id is not None and g.resource_id == resource_id)
            ):
                yield g.role

    def allows(self, permission: str, resource_id: str | None = None) -> bool:
        """May the principal use ``permission`` on ``resource_id`` (None: on every resource of
        the permission's type, i.e. a global or ``*`` grant)?"""
        rtype = PERMISSIONS[permission]  # KeyError on a typo: a bug, never a silent allow
        self._refresh()
        if self._superuser:
            return True
        if rtype == "global":
            return any(
                g.resource_type == "global" and permission in ROLES.get(g.role, ())
                for g in self._grants
            )
        return any(permission in ROLES.get(r, ()) for r in self._roles_for(rtype, resource_id))

    def allows_somewhere(self, permission: str) -> bool:
        """Whether some grant gives ``permission`` on at least one resource."""
        rtype = PERMISSIONS[permission]
        self._refresh()
        if self._superuser:
            return True
        return any(
            permission in ROLES.get(g.role, ())
            and (g.resource_type == "global" or g.resource_type == rtype)
            for g in self._grants
        )

    def require(self, permission: str, resource_id: str | None = None) -> None:
        """PermissionDenied (403) naming the permission and the resource, unless allowed."""
        if not self.allows(permission, resource_id):
            raise PermissionDenied(
                f"{self.principal!r} lacks permission {permission} "
                f"{_describe(permission, resource_id)}",
                permission=permission,
                resource_type=PERMISSIONS[permission],
                resource_id=resource_id,
                principal=self.principal,
            )

    def require_somewhere(self, permission: str) -> None:
        if not self.allows_somewhere(permission):
            raise PermissionDenied(
                f"{self.principal!r} lacks permission {permission} (on any "
                f"{_RESOURCE_WORDS.get(PERMISSIONS[permission], 'resource')})",
                permission=permission,
                resource_type=PERMISSIONS[permission],
                principal=self.principal,
            )

    def __repr__(self) -> str:
        return f"Authorizer({self.principal!r})"


C = TypeVar("C", bound=type)

#: Marks a method wrapped by :func:`enforced`, with the permission it is gated on.
PERMISSION_ATTR = "__dockyard_permission__"


def public_methods(cls: type) -> list[str]:
    """Every public callable of ``cls`` (its own and inherited), as a caller sees them."""
    return sorted(
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and callable(value) and not isinstance(value, type)
    )


def enforced(table: Mapping[str, str]) -> Callable[[C], C]:
    """Class decorator: gate every public method of a service on its permission in ``table``.

    The service must expose ``self.authz`` (an :class:`Authorizer`). A public method that is
    not in ``table`` -- a new method someone forgot to declare -- is a TypeError when the class
    is defined, so it cannot ship unchecked. The gate itself is coarse (the principal holds the
    permission on at least one resource); the method checks the exact resource. Inherited
    public methods must be declared too, and must only delegate to the class's own methods.
    """

    def deco(cls: C) -> C:
        methods = public_methods(cls)
        missing = [m for m in methods if m not in table]
        if missing:
            raise TypeError(
                f"{cls.__name__} methods {missing} are not in its permission table: declare "
                "the permission each one needs"
            )
        stale = sorted(set(table) - set(methods))
        if stale:
            raise TypeError(f"{cls.__name__} permission table names unknown methods {stale}")
        for name in methods:
            permission = table[name]
            if permission not in PERMISSIONS:
                raise TypeError(f"{cls.__name__}.{name}: unknown permission {permission!r}")
            # Methods the class defines itself are wrapped. Inherited ones (the one-item
            # logging shortcuts shared with the REST client) are declared but left as they
            # are: they only call the class's own, wrapped, methods.
            if name in vars(cls):
                setattr(cls, name, _gate(vars(cls)[name], permission))
        return cls

    return deco


def _gate(fn: Callable[..., Any], permission: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.authz.require_somewhere(permission)
        return fn(self, *args, **kwargs)

    setattr(wrapper, PERMISSION_ATTR, permission)
    return wrapper
