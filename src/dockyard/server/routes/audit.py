"""Audit routes: ``GET /api/v1/audit`` and ``GET /api/v1/audit/verify``.

Query parameters of the list (all optional): ``actor``, ``action``, ``resource_type``,
``resource_id``, ``since`` and ``until`` (epoch milliseconds, ``since <= time < until``),
``after`` (an event id: only later events, for keyset paging), ``max_results`` (1..50000,
default 100) and ``offset``. Events come oldest first, each with its ``prev_hash`` and ``hash``,
as
``{"items": [...], "next_page_token": null, "next_offset": <int or null>}``; ``next_offset`` is
set when the page is full and more events may follow.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from dockyard.core.paging import MAX_PAGE_SIZE
from dockyard.server.routes._common import Tracking, ok, page

router = APIRouter(tags=["audit"])

_INT64 = {"ge": -(2**63), "le": 2**63 - 1}
# Filters are compared verbatim; bounding them keeps a typo from becoming a database error.
_TEXT = {"max_length": 512, "pattern": r"^[^\x00-\x1f\x7f]*$"}


@router.get("/audit", summary="List audit events")
def list_audit_events(
    service: Tracking,
    actor: Annotated[str | None, Query(**_TEXT)] = None,
    action: Annotated[str | None, Query(**_TEXT)] = None,
    resource_type: Annotated[str | None, Query(**_TEXT)] = None,
    resource_id: Annotated[str | None, Query(**_TEXT)] = None,
    since: Annotated[int | None, Query(**_INT64)] = None,
    until: Annotated[int | None, Query(**_INT64)] = None,
    max_results: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    after: Annotated[int | None, Query(**_INT64)] = None,
) -> Response:
    events = service.list_audit_events(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
        limit=max_results,
        offset=offset,
        after=after,
    )
    next_offset = offset + len(events) if len(events) == max_results else None
    return page(events, None, next_offset=next_offset)


@router.get("/audit/verify", summary="Verify the audit log's hash chain")
def verify_audit_log(service: Tracking) -> Response:
    """``{"ok": true, "count", "last_hash", ...}``, or ``ok: false`` with the first broken
    link (``broken_event_id``, ``problem``: edited, deleted or reordered, and a message)."""
    return ok(service.verify_audit_log().to_dict())
