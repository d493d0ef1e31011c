"""Audit events: who did what to which resource, when and with which details.

Every mutation in a service calls :func:`record_event` on the same unit (the same database
transaction) as the change itself, so an audited change and its event commit or roll back
together. Until identities and tokens exist the actor is the OS user in local mode and
``anonymous`` on the server.

The log is a hash chain (format in :mod:`dockyard.core.audit_chain`): the store links each
appended event to the previous one under a lock. :func:`verify_chain` walks it and names the
first broken link; :func:`apply_retention` deletes old events and leaves a checkpoint so the
rest still verifies.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dockyard.core.audit_chain import (
    GENESIS_HASH,
    MIN_RETENTION_DAYS,
    RETENTION_ACTION,
    canonical_event,
    check_retention_days,
    event_hash,
    normalise_details,
)
from dockyard.core.entities import AuditEvent, AuditRetention, AuditVerification

if TYPE_CHECKING:
    from dockyard.store.base import Store

__all__ = [
    "GENESIS_HASH",
    "MIN_RETENTION_DAYS",
    "RETENTION_ACTION",
    "Actor",
    "apply_retention",
    "canonical_event",
    "check_retention_days",
    "event_hash",
    "normalise_details",
    "record_event",
    "verify_audit_log",
    "verify_chain",
]


@dataclass(frozen=True)
class Actor:
    """The principal on whose behalf a service call runs.

    ``authorizer`` (a :class:`dockyard.governance.permissions.Authorizer`) holds what it may
    do; None means "resolve it the local-mode way" (see ``Authorizer.local``), which the
    services do when they are built.
    """

    name: str
    authorizer: Any = field(default=None, compare=False, repr=False)
    #: When the API token this actor authenticated with expires (epoch ms); None for a token
    #: that never expires, and in local mode. Bounds the tokens a non-admin may create.
    token_expires: int | None = field(default=None, compare=False, repr=False)

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
    ) -> int: ...


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


# -- the hash chain ----------------------------------------------------------------------------

_DAY_MS = 86_400_000


def verify_chain(
    rows: Iterable[AuditEvent], checkpoints: Callable[[], Collection[str]]
) -> AuditVerification:
    """Walk the log in id order and report the first broken link, or that all is well.

    Each row's hash must be the hash of its own contents and its ``prev_hash``
    (else: edited); each ``prev_hash`` must be the previous row's hash (else: the rows between
    were deleted, or rows were moved); the oldest row must follow the start of the log
    (:data:`GENESIS_HASH`) or a checkpoint that retention recorded when it purged older events
    (``checkpoints()``, called only then). ``rows`` may be a stream: one row is held at a time.
    """
    count = 0
    first_id: int | None = None
    prev: AuditEvent | None = None
    for row in rows:
        expected = event_hash(
            row.event_id,
            row.time,
            row.actor,
            row.action,
            row.resource_type,
            row.resource_id,
            row.details,
            row.prev_hash,
        )
        if prev is None:
            first_id = row.event_id
            if row.prev_hash != GENESIS_HASH and row.prev_hash not in checkpoints():
                return _broken(
                    count,
                    first_id,
                    row.event_id,
                    "deleted",
                    f"audit event {row.event_id} is the oldest one left but follows neither the "
                    "start of the log nor a retention checkpoint: older events were deleted",
                )
        elif row.prev_hash != prev.hash:
            if row.event_id != prev.event_id + 1:
                problem, what = (
                    "deleted",
                    f"events {prev.event_id + 1}..{row.event_id - 1} are missing: deleted",
                )
            else:
                problem, what = "reordered", "rows were deleted, replaced or reordered"
            return _broken(
                count,
                first_id,
                row.event_id,
                problem,
                f"audit event {row.event_id} does not follow event {prev.event_id} "
                f"(its prev_hash is not that event's hash): {what}",
            )
        if row.hash != expected:
            return _broken(
                count,
                first_id,
                row.event_id,
                "edited",
                f"audit event {row.event_id} does not match its hash: it was edited "
                "(or its contents were moved from another row)",
            )
        count += 1
        prev = row
    if prev is None:
        return AuditVerification(ok=True, count=0, message="the audit log is empty")
    return AuditVerification(
        ok=True,
        count=count,
        first_event_id=first_id,
        last_event_id=prev.event_id,
        last_hash=prev.hash,
        message=(
            f"audit log intact: {count} events ({first_id}..{prev.event_id}), last hash {prev.hash}"
        ),
    )


def _broken(
    count: int, first_id: int | None, event_id: int, problem: str, message: str
) -> AuditVerification:
    return AuditVerification(
        ok=False,
        count=count,
        first_event_id=first_id,
        broken_event_id=event_id,
        problem=problem,
        message=message,
    )


# -- retention ---------------------------------------------------------------------------------


def retention_cutoff(days: int, now: int | None = None) -> int:
    """Events written before this time (epoch ms) are older than ``days``."""
    return (now_ms() if now is None else now) - check_retention_days(days) * _DAY_MS


# -- over a store ------------------------------------------------------------------------------


def verify_audit_log(store: Store, page_size: int = 5000) -> AuditVerification:
    """Verify the whole chain in ``store``, streaming it in pages of ``page_size`` events."""
    return store.read(lambda u: verify_chain(u.iter_audit_chain(page_size), u.audit_checkpoints))


def apply_retention(
    store: Store, actor: Actor, retention_days: int, *, now: int | None = None
) -> AuditRetention:
    """Delete the audit events older than ``retention_days`` and record that, verifiably.

    What is deleted is the longest run of oldest events written before the cutoff (a prefix
    of the chain, so the events left still link up even if clocks went backwards); it needs
    the ``admin`` permission. In the
    same transaction an ``audit.retention`` event records how many were deleted and the hash
    of the newest of them: the checkpoint that the oldest remaining event links to, which is
    how :func:`verify_chain` tells retention from tampering.
    """
    from dockyard.governance.permissions import Authorizer

    # Deleting audit history is an administrator's act, locally as on a server.
    (actor.authorizer or Authorizer.local(store, actor.name)).require("admin")
    days = check_retention_days(retention_days)
    at = now_ms() if now is None else now
    cutoff = retention_cutoff(days, at)

    def fn(u: Any) -> AuditRetention:
        u.lock_audit()
        deleted, checkpoint = u.audit_prefix_before(cutoff)
        details: dict[str, Any] = {
            "deleted": deleted,
            "cutoff": cutoff,
            "retention_days": days,
            "checkpoint_event_id": checkpoint[0] if checkpoint else None,
            "checkpoint_hash": checkpoint[1] if checkpoint else None,
        }
        event_id = u.append_audit(
            actor=actor.name,
            action=RETENTION_ACTION,
            resource_type="audit_log",
            resource_id="audit_events",
            details=details,
            now=at,
        )
        if checkpoint:
            u.delete_audit_through(checkpoint[0])
        return AuditRetention(event_id=event_id, **details)

    return store.write(fn)
