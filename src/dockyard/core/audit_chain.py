"""The audit log's hash chain format: what each event's hash covers.

Each audit event stores ``prev_hash`` (the previous event's hash; :data:`GENESIS_HASH` for the
first one) and ``hash``, the sha256 of :func:`canonical_event`. The store computes it on append
and :mod:`dockyard.governance.audit` recomputes it on verify. This is part of the stored format:
changing it needs a migration that rehashes the log.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dockyard.core.errors import InvalidInput

#: ``prev_hash`` of the first event ever written.
GENESIS_HASH = "0" * 64
#: The action of the event that retention writes; its details hold the checkpoint.
RETENTION_ACTION = "audit.retention"
#: The EU AI Act (art. 19, 26) asks for logs of high-risk systems to be kept six months at least.
MIN_RETENTION_DAYS = 183


def canonical_event(
    event_id: int,
    time: int,
    actor: str,
    action: str,
    resource_type: str,
    resource_id: str,
    details: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The bytes an event's hash covers: a JSON object with sorted keys, no whitespace, ASCII
    only."""
    return json.dumps(
        {
            "action": action,
            "actor": actor,
            "details": details,
            "event_id": event_id,
            "prev_hash": prev_hash,
            "resource_id": resource_id,
            "resource_type": resource_type,
            "time": time,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")


def event_hash(
    event_id: int,
    time: int,
    actor: str,
    action: str,
    resource_type: str,
    resource_id: str,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    """sha256 (hex) of :func:`canonical_event`."""
    return hashlib.sha256(
        canonical_event(
            event_id, time, actor, action, resource_type, resource_id, details, prev_hash
        )
    ).hexdigest()


def normalise_details(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` as they read back from the store's JSON column (tuples become lists, keys
    strings), so that the hash computed on write is the one recomputed on verify."""
    return json.loads(json.dumps(details))  # type: ignore[no-any-return]


def check_retention_days(days: Any) -> int:
    """A retention window in whole days, at least :data:`MIN_RETENTION_DAYS`."""
    if isinstance(days, bool) or not isinstance(days, int | str):
        raise InvalidInput(f"audit retention must be a whole number of days, got {days!r}")
    try:
        n = int(days)
    except ValueError:
        raise InvalidInput(
            f"audit retention must be a whole number of days, got {days!r}"
        ) from None
    if n < MIN_RETENTION_DAYS:
        raise InvalidInput(
            f"audit retention of {n} days is too short: audit logs are kept at least "
            f"{MIN_RETENTION_DAYS} days (six months, the EU AI Act minimum for high-risk "
            "systems); set DOCKYARD_AUDIT_RETENTION_DAYS to 183 or more, or leave it unset "
            "to keep them forever"
        )
    return n
