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

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dockyard.server.routes._common import (
    Tracking,
    ok,
    page,
    receive_upload,
    streamed_download,
)

router = APIRouter(prefix="/runs/{run_id}/artifacts", tags=["artifacts"])


@router.put("/{path:path}", status_code=201, summary="Upload an artifact file (raw body)")
async def upload_artifact(run_id: str, path: str, request: Request, service: Tracking) -> Response:
    stored = await receive_upload(
        request,
        "artifact",
        lambda chunks, limit: service.upload_artifact(run_id, path, chunks, max_bytes=limit),
    )
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
    # The digest comes from our own store (64 hex characters), not from the request.
    return streamed_download(chunks, info.size, str(info.digest))
