"""Redaction policies per serving endpoint: stored, permission-checked and audited.

One policy per endpoint (see :mod:`dockyard.governance.redaction` for the rules and how they
are applied). Setting or deleting one needs ``endpoint:deploy`` on the endpoint, reading it
``endpoint:read``; every change writes a ``redaction.set`` / ``redaction.delete`` audit event
in the same transaction, with the rules (column names and actions; never any data). A policy
has a version: 1 when created, one more on every change; ``set_policy(...,
expected_version=n)`` only replaces version ``n`` (0: only when there is none yet), so two
people editing the same policy cannot silently overwrite each other.

The prediction log writer reads :meth:`RedactionService.effective_policy` (an empty policy
when the endpoint has none) and applies it to every batch before writing. No FastAPI or Typer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import Conflict, InvalidInput, NotFound
from dockyard.core.serving_entities import check_endpoint_name
from dockyard.governance.audit import Actor, now_ms, record_event
from dockyard.governance.permissions import (
    ENDPOINT_DEPLOY,
    ENDPOINT_READ,
    Authorizer,
    enforced,
)
from dockyard.governance.redaction import RedactionPolicy, RedactionRule

if TYPE_CHECKING:
    from dockyard.store.base import Store

__all__ = [
    "REDACTION_PERMISSIONS",
    "EndpointRedaction",
    "RedactionService",
]


@dataclass(frozen=True)
class EndpointRedaction:
    """The stored redaction policy of one endpoint."""

    endpoint: str
    policy: RedactionPolicy
    version: int
    updated_at: int
    updated_by: str

    @property
    def rules(self) -> tuple[RedactionRule, ...]:
        return self.policy.rules

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "rules": self.policy.to_list(),
            "version": self.version,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


def _from_row(row: Any) -> EndpointRedaction:
    return EndpointRedaction(
        endpoint=row.endpoint,
        policy=RedactionPolicy.from_rules(row.rules),
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _policy(policy: Any) -> RedactionPolicy:
    if isinstance(policy, RedactionPolicy):
        out = policy
    elif isinstance(policy, Iterable) and not isinstance(policy, str | bytes | Mapping):
        out = RedactionPolicy.from_rules(policy)
    else:
        raise InvalidInput(
            f"a redaction policy is a RedactionPolicy or a list of rules, got {policy!r}"
        )
    if not out.rules:
        raise InvalidInput(
            "a redaction policy needs at least one rule; to stop redacting an endpoint, delete "
            "its policy (`dockyard redaction delete <endpoint>`)"
        )
    return out


REDACTION_PERMISSIONS: Mapping[str, str] = {
    "set_policy": ENDPOINT_DEPLOY,
    "delete_policy": ENDPOINT_DEPLOY,
    "get_policy": ENDPOINT_READ,
    "effective_policy": ENDPOINT_READ,
    "list_policies": ENDPOINT_READ,
}


@enforced(REDACTION_PERMISSIONS)
class RedactionService:
    """Redaction policies per endpoint, on behalf of ``actor``."""

    def __init__(self, store: Store, actor: Actor) -> None:
        self.store = store
        self.actor = actor
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)

    def set_policy(
        self,
        endpoint: str,
        policy: RedactionPolicy | Iterable[RedactionRule | Mapping[str, Any]],
        *,
        expected_version: int | None = None,
    ) -> EndpointRedaction:
        """Create or replace the endpoint's policy (the whole list of rules)."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_DEPLOY, endpoint)
        clean = _policy(policy)
        if expected_version is not None and (
            isinstance(expected_version, bool)
            or not isinstance(expected_version, int)
            or expected_version < 0
        ):
            raise InvalidInput(
                f"expected_version must be a version number (0: no policy yet), got "
                f"{expected_version!r}"
            )
        rules = clean.to_list()

        def fn(u: Any) -> EndpointRedaction:
            before = u.get_redaction_policy(endpoint, for_update=True)
            row = u.put_redaction_policy(
                endpoint,
                rules,
                now=now_ms(),
                by=self.actor.name,
                expected_version=expected_version,
            )
            if row is None:
                have = "no policy" if before is None else f"version {before.version}"
                raise Conflict(
                    f"the redaction policy of endpoint {endpoint!r} is at {have}, not version "
                    f"{expected_version}: someone changed it; read it again and retry",
                    endpoint=endpoint,
                    version=None if before is None else before.version,
                )
            record_event(
                u,
                self.actor,
                "redaction.set",
                "endpoint",
                endpoint,
                version=row.version,
                rules=rules,
                previous_rules=None if before is None else before.rules,
            )
            return _from_row(row)

        return self.store.write(fn)

    def get_policy(self, endpoint: str) -> EndpointRedaction:
        """The endpoint's policy; NotFound when it has none."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_READ, endpoint)
        row = self.store.read(lambda u: u.get_redaction_policy(endpoint))
        if row is None:
            raise NotFound(f"endpoint {endpoint!r} has no redaction policy", endpoint=endpoint)
        return _from_row(row)

    def effective_policy(self, endpoint: str) -> RedactionPolicy:
        """What to apply to the endpoint's logged inputs: its policy, or an empty one (which
        changes nothing) when it has none."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_READ, endpoint)
        row = self.store.read(lambda u: u.get_redaction_policy(endpoint))
        return RedactionPolicy() if row is None else _from_row(row).policy

    def list_policies(self) -> list[EndpointRedaction]:
        """The policies of the endpoints the caller may read, by endpoint name."""
        rows = self.store.read(lambda u: u.list_redaction_policies())
        return [_from_row(r) for r in rows if self.authz.allows(ENDPOINT_READ, r.endpoint)]

    def delete_policy(self, endpoint: str) -> EndpointRedaction:
        """Remove the endpoint's policy (its inputs are then logged as they come); returns
        what was removed. NotFound when it has none."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_DEPLOY, endpoint)

        def fn(u: Any) -> EndpointRedaction:
            before = u.get_redaction_policy(endpoint, for_update=True)
            if before is None or not u.delete_redaction_policy(endpoint):
                raise NotFound(f"endpoint {endpoint!r} has no redaction policy", endpoint=endpoint)
            record_event(
                u,
                self.actor,
                "redaction.delete",
                "endpoint",
                endpoint,
                version=before.version,
                rules=before.rules,
            )
            return _from_row(before)

        return self.store.write(fn)
