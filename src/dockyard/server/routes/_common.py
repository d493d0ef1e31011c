"""What every route module shares: the per-request service, and response helpers.

Handlers stay thin -- parse, call the service, serialise -- so these helpers are all they need
beyond the service itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio.from_thread
import anyio.to_thread
from fastapi import Depends
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from dockyard.backend import Backend
from dockyard.core.entities import Page
from dockyard.core.errors import InvalidInput, PayloadTooLarge, Unauthenticated
from dockyard.governance.audit import Actor
from dockyard.server._json import JSONResponse
from dockyard.tracking.service import TrackingService

__all__ = [
    "Tracking",
    "no_content",
    "ok",
    "page",
    "receive_upload",
    "request_actor",
    "streamed_download",
    "tracking_service",
]

T = TypeVar("T")


def request_actor(request: Request) -> Actor:
    """The principal a request acts for: the one the auth middleware
    (:mod:`dockyard.server._auth`) authenticated from the bearer token, carrying its
    Authorizer; with auth off, ``anonymous`` with every permission. The token is never
    logged, echoed or stored.
    """
    from dockyard.server._auth import ACTOR_SCOPE_KEY, anonymous_actor

    actor = request.scope.get(ACTOR_SCOPE_KEY)
    if actor is not None:
        return actor  # type: ignore[no-any-return]
    if getattr(request.app.state, "auth_enabled", True):
        # The middleware lets no request through without an actor; never fall back.
        raise Unauthenticated("this server needs an API token: send 'Authorization: Bearer'")
    return anonymous_actor()


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


# -- streamed uploads and downloads ------------------------------------------------------------


async def receive_upload(
    request: Request, what: str, store: Callable[[Iterator[bytes], int], T]
) -> T:
    """Stream a raw request body into ``store(chunks, max_bytes)``, run in a worker thread.

    Never held in memory. 413 before a byte is read when ``Content-Length`` exceeds the
    server's ``max_artifact_bytes`` (``store`` enforces the same limit on what arrives); a
    client that disconnects early gets InvalidInput.
    """
    limit = _declared_upload_limit(request, what)
    stream = request.stream()
    try:
        return await anyio.to_thread.run_sync(partial(store, _blocking_chunks(stream), limit))
    except ClientDisconnect:
        raise InvalidInput("the client disconnected before the upload was complete") from None
    finally:
        # Close the request stream here, on the event loop, whatever the worker thread did.
        await stream.aclose()


def _declared_upload_limit(request: Request, what: str) -> int:
    """The server's upload limit (``max_artifact_bytes``); 413 before a byte is read when the
    request's ``Content-Length`` already exceeds it (the store enforces the same limit on
    what arrives)."""
    limit = int(request.app.state.settings.max_artifact_bytes)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"{what} upload of {declared} bytes is larger than the limit of {limit} bytes "
            "(server setting max_artifact_bytes)",
            max_bytes=limit,
        )
    return limit


def _blocking_chunks(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """Iterate an async byte stream from a worker thread (the store's I/O is blocking)."""

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        if chunk:
            yield chunk


def _last_chunk_after_verification(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Forward ``chunks`` one step behind.

    The store checks a blob's hash after reading its last byte and raises there if it does not
    match. Holding each chunk back until the next one has been read means the final chunk is
    sent only once that check has passed: a corrupted blob leaves the body short of its
    ``Content-Length``, so every client sees a broken transfer, not a complete-looking file.
    """
    held: bytes | None = None
    for chunk in chunks:
        if held is not None:
            yield held
        held = chunk
    if held is not None:
        yield held


def streamed_download(chunks: Iterator[bytes], size: int, digest: str) -> StreamingResponse:
    """A stored file's bytes as a download: ``Content-Length``, ``X-Dockyard-Digest`` (the
    sha256 the client should verify) and ``Content-Disposition: attachment``.

    ``size`` and ``digest`` come from our own records, never from the request; no filename is
    sent (it would reflect user text into a header).
    """
    headers = {
        "Content-Length": str(size),
        "X-Dockyard-Digest": digest,
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(
        _last_chunk_after_verification(chunks),
        media_type="application/octet-stream",
        headers=headers,
    )
