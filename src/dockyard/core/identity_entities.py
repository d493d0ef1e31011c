"""Domain objects of identities: users and service accounts, API tokens, role grants.

A token's secret never appears here: :class:`ApiToken` is what may be listed and shown; the
secret is returned once, by :meth:`dockyard.governance.identity.IdentityService.create_token`,
and only its sha256 is stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

USER = "user"
SERVICE_ACCOUNT = "service_account"
PRINCIPAL_KINDS = (USER, SERVICE_ACCOUNT)

#: What a grant can name: everything (``global``), or one experiment, registered model or
#: endpoint (``resource_id`` its id or name, or ``*`` for every one of that type).
RESOURCE_TYPES = ("global", "experiment", "registered_model", "endpoint")


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class User(_Dict):
    name: str
    kind: str
    display: str
    disabled: bool
    created: int


@dataclass(frozen=True)
class ApiToken(_Dict):
    """A token's public record (never its secret, never its hash)."""

    token_id: str
    user: str
    name: str
    created: int
    expires: int | None
    revoked: int | None
    last_used: int | None

    def state(self, now: int) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class Grant(_Dict):
    principal: str
    role: str
    resource_type: str
    resource_id: str
    created: int
    created_by: str


@dataclass(frozen=True)
class NewToken:
    """What creating a token returns: the record and the secret, shown this once."""

    token: ApiToken
    secret: str

    def __repr__(self) -> str:  # the secret never reaches a repr, a log line or a traceback
        return f"NewToken(token={self.token!r}, secret=<hidden>)"

    def to_dict(self) -> dict[str, Any]:
        return {**self.token.to_dict(), "token": self.secret}
