"""Artifact routes, under ``/api/v1/runs/{run_id}/artifacts``.

=======  =====================================  ===================================================
method   path                                   does
=======  =====================================  ===================================================
PUT      /runs/{run_id}/artifacts/{path}        upload: the raw request body is the file's bytes,
                                                streamed to the artifact store -> 201 ``{path,
                                                is_dir, size, digest}``
GET      /runs/{run_id}/artifacts?path=         direct children of a folder (``""`` = the root),
                                                or the file itself -> ``{items, next_page_token}``
GET      /runs/{run_id}/artifacts/{path}        download: the file's bytes, streamed
=======  =====================================  ===================================================

``{path}`` is the artifact path, URL-encoded per segment (``model/weights%3Fv2.bin``). The server
decodes it once and hands it to the service, whose ``safe_relpath`` refuses anything that could
escape the run's tree or read differently to another layer (``..``, encoded dots or slashes,
backslashes, NUL, absolute paths, URIs, ``;?#``, ``//``): 422 ``unsafe_path``.

Uploads are never held in memory: chunks go from the socket to a temporary file while being
hashed. Their size limit is ``settings.max_artifact_bytes`` (413 ``payload_too_large``), checked
against ``Content-Length`` up front and against the bytes received while streaming.

Downloads carry ``Content-Length``, ``X-Dockyard-Digest`` (the sha256 the client should verify)
and ``Content-Disposition: attachment``. No header repeats user text. If the stored bytes no
longer match their digest, the transfer is aborted before its end, never completed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from dockyard.core.errors import InvalidInput, PayloadTooLarge
from dockyard.server.routes._common import Tracking, ok, page

router = APIRouter(prefix="/runs/{run_id}/artifacts", tags=["artifacts"])


def _blocking_chunks(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """Iterate an async byte stream from a worker thread (the service's I/O is blocking)."""

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


@router.put("/{path:path}", status_code=201, summary="Upload an artifact file (raw body)")
async def upload_artifact(run_id: str, path: str, request: Request, service: Tracking) -> Response:
    limit = int(request.app.state.settings.max_artifact_bytes)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        # Refuse before writing a byte; put_stream enforces the same limit on what arrives.
        raise PayloadTooLarge(
            f"artifact upload of {declared} bytes is larger than the limit of {limit} bytes "
            "(server setting max_artifact_bytes)",
            max_bytes=limit,
        )
    stream = request.stream()
    upload = partial(
        service.upload_artifact, run_id, path, _blocking_chunks(stream), max_bytes=limit
    )
    try:
        stored = await anyio.to_thread.run_sync(upload)
    except ClientDisconnect:
        raise InvalidInput("the client disconnected before the upload was complete") from None
    finally:
        # Close the request stream here, on the event loop, whatever the worker thread did.
        await stream.aclose()
    return ok(stored.to_dict(), 201)


@router.get("", summary="List artifacts")
def list_artifacts(run_id: str, service: Tracking, path: str = "") -> Response:
    return page(service.list_artifacts(run_id, path))


@router.get(
    "/{path:path}",
    summary="Download an artifact file",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_artifact(run_id: str, path: str, service: Tracking) -> Response:
    info, chunks = service.open_artifact(run_id, path)
    headers = {
        "Content-Length": str(info.size),
        # The digest comes from our own store (64 hex characters), not from the request.
        "X-Dockyard-Digest": str(info.digest),
        # No filename: it would reflect user text into a header.
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(
        _last_chunk_after_verification(chunks),
        media_type="application/octet-stream",
        headers=headers,
    )
