"""What every route module shares: the per-request service, and response helpers.

Handlers stay thin -- parse, call the service, serialise -- so these helpers are all they need
beyond the service itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import Response

from dockyard.backend import Backend
from dockyard.core.entities import Page
from dockyard.governance.audit import Actor
from dockyard.server._json import JSONResponse
from dockyard.tracking.service import TrackingService

__all__ = ["Tracking", "no_content", "ok", "page", "request_actor", "tracking_service"]


def request_actor(request: Request) -> Actor:
    """The principal a request acts for.

    API tokens do not exist yet, so every caller is ``anonymous``; a client may already send
    ``Authorization: Bearer <token>`` and it is accepted without being checked. When tokens
    land, this is the one place that turns a token into an Actor. The token is never logged,
    echoed or stored.
    """
    return Actor.anonymous()


async def tracking_service(request: Request) -> TrackingService:
    """A TrackingService for this request's actor, over the backend opened at start-up.

    ``async`` so FastAPI calls it on the event loop: building the service does no I/O, and a
    thread hop per request would be wasted.
    """
    backend: Backend = request.app.state.backend
    return backend.tracking(request_actor(request))


#: Annotate a handler parameter with this to receive the request's TrackingService.
Tracking = Annotated[TrackingService, Depends(tracking_service)]


def ok(payload: Any, status_code: int = 200) -> Response:
    """A JSON response (non-finite floats spelled as strings)."""
    return JSONResponse(payload, status_code=status_code)


def page(items: Iterable[Any], next_page_token: str | None = None, **extra: Any) -> Response:
    """The list shape of every list route: ``{"items": [...], "next_page_token": ...}``."""
    return ok({"items": [i.to_dict() for i in items], "next_page_token": next_page_token, **extra})


def page_of(p: Page[Any]) -> Response:
    return page(p.items, p.next_page_token)


def no_content() -> Response:
    """204: the operation succeeded and has nothing to return."""
    return Response(status_code=204)
