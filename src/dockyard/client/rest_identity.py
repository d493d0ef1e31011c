"""Identity management over HTTP: :class:`RestIdentityService`.

Same public methods, signatures and return types as
:class:`dockyard.governance.identity.IdentityService` (a test pins them), so the SDK and the
CLI (``dockyard users|tokens|grants|whoami``) use either one without knowing which: local mode
acts on the metadata store, remote mode asks a Dockyard server (the routes of
:mod:`dockyard.server.routes.identity`), which applies the very same service as the caller its
token stands for. Errors come back as the service's exception classes with its messages
(:class:`~dockyard.client.rest.RestTransport`).

A new token's secret arrives once, in the answer to ``create_token``
(:class:`~dockyard.core.identity_entities.NewToken`, whose repr hides it); nothing else the
server sends holds a secret or a hash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from dockyard.client.rest import RestTransport, _seg
from dockyard.core.identity_entities import USER, ApiToken, Grant, NewToken, User
from dockyard.governance.identity import Identity, check_principal_name, check_token_id

__all__ = ["RestIdentityService"]

E = TypeVar("E")


def _entity(cls: type[E], d: Mapping[str, Any]) -> E:
    """A frozen dataclass from an answer, ignoring fields a newer server may add."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in d.items() if k in names})


def _user_path(name: Any) -> str:
    # The service's own check (and message): a name never changes the URL's shape.
    return f"/users/{_seg(check_principal_name(name))}"


class RestIdentityService(RestTransport):
    """:class:`~dockyard.governance.identity.IdentityService`, spoken to a Dockyard server.

    Parameters are those of :class:`~dockyard.client.rest.RestTransport`; the token decides
    who acts.
    """

    # -- the caller ----------------------------------------------------------------------------

    def whoami(self) -> Identity:
        """The caller: its name, kind, whether it is an admin, and its own grants."""
        return Identity.from_dict(self._json("GET", "/whoami"))

    # -- users -------------------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        *,
        kind: str = USER,
        display: str = "",
        roles: Sequence[str] = (),
    ) -> User:
        body = {"name": name, "kind": kind, "display": display, "roles": list(roles)}
        return _entity(User, self._json("POST", "/users", body=body))

    def get_user(self, name: str) -> User:
        return _entity(User, self._json("GET", _user_path(name)))

    def list_users(self) -> list[User]:
        return [_entity(User, d) for d in self._json("GET", "/users")["items"]]

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        verb = "disable" if disabled else "enable"
        return _entity(User, self._json("POST", f"{_user_path(name)}/{verb}"))

    # -- tokens ------------------------------------------------------------------------------

    def create_token(
        self, user: str, name: str = "", *, expires_in_days: float | None = 90
    ) -> NewToken:
        body = {"user": user, "name": name, "expires_in_days": expires_in_days}
        d = self._json("POST", "/tokens", body=body)
        return NewToken(_entity(ApiToken, d), d["token"])

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        d = self._json("GET", "/tokens", params={"user": user})
        return [_entity(ApiToken, t) for t in d["items"]]

    def revoke_token(self, token_id: str) -> ApiToken:
        path = f"/tokens/{check_token_id(token_id)}/revoke"
        return _entity(ApiToken, self._json("POST", path))

    # -- grants ------------------------------------------------------------------------------

    def grant(
        self, principal: str, role: str, resource_type: str = "global", resource_id: str = "*"
    ) -> Grant:
        body = {
            "principal": principal,
            "role": role,
            "resource_type": resource_type,
            "resource_id": resource_id,
        }
        return _entity(Grant, self._json("POST", "/grants", body=body))

    def revoke_grant(
        self, principal: str, role: str, resource_type: str = "global", resource_id: str = "*"
    ) -> None:
        params = {
            "principal": principal,
            "role": role,
            "resource_type": resource_type,
            "resource_id": resource_id,
        }
        self._json("DELETE", "/grants", params=params)

    def list_grants(self, principal: str | None = None) -> list[Grant]:
        d = self._json("GET", "/grants", params={"principal": principal})
        return [_entity(Grant, g) for g in d["items"]]
