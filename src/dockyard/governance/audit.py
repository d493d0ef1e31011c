"""Audit events: who did what to which resource, when and with which details.

Every mutation in a service calls :func:`record_event` on the same unit (the same database
transaction) as the change itself, so an audited change and its event commit or roll back
together. Until identities and tokens exist the actor is the OS user in local mode and
``anonymous`` on the server.
"""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Actor:
    """The principal on whose behalf a service call runs."""

    name: str

    @classmethod
    def local(cls, override: str | None = None) -> Actor:
        if override:
            return cls(override)
        try:
            return cls(getpass.getuser())
        except (KeyError, OSError):  # no passwd entry (containers)
            return cls(os.environ.get("USER") or f"uid:{os.getuid()}")

    @classmethod
    def anonymous(cls) -> Actor:
        return cls("anonymous")


class _AuditSink(Protocol):
    def append_audit(
        self,
        *,
        actor: str,
        action: str,
        resource_type: str,
        resource_id: str,
        details: dict[str, Any],
        now: int,
    ) -> None: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def record_event(
    unit: _AuditSink,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str,
    **details: Any,
) -> None:
    """Append one audit event through ``unit`` (inside the caller's transaction)."""
    unit.append_audit(
        actor=actor.name,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
        now=now_ms(),
    )
