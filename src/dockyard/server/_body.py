"""A pure ASGI middleware that caps the size of request bodies.

JSON bodies are parsed whole, so their size must be bounded before anything reads them. The
limit (``settings.max_body_bytes``) is checked twice: against a declared ``Content-Length``
before the application runs, and against the bytes actually received, for chunked bodies or a
lying header. Either way the answer is 413 ``payload_too_large`` in the usual error envelope.

Artifact uploads (``PUT /api/v1/runs/{run_id}/artifacts/{path}``, ``POST /api/v1/blobs``) are
streamed to the artifact store, never held in memory, and have their own, much larger limit
(``settings.max_artifact_bytes``) enforced while streaming; they are exempt here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.core.errors import PayloadTooLarge
from dockyard.server.errors import error_response

__all__ = ["BodyLimitMiddleware", "is_artifact_upload"]

_ARTIFACT_UPLOAD = re.compile(r"^/api/v1/runs/[^/]+/artifacts/")
_BLOB_UPLOAD = "/api/v1/blobs"


def is_artifact_upload(scope: Scope) -> bool:
    """True for the streamed upload routes (run artifacts, registry blobs), which have their
    own limit."""
    method, path = scope.get("method"), scope.get("path", "")
    if method == "PUT":
        return bool(_ARTIFACT_UPLOAD.match(path))
    return method == "POST" and path == _BLOB_UPLOAD


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when the streamed body crosses the limit."""


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with a 413 envelope."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        exempt: Callable[[Scope], bool] = is_artifact_upload,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body is larger than the limit of {self.max_bytes} bytes "
            "(server setting max_body_bytes, DOCKYARD_MAX_BODY_BYTES); send smaller batches",
            max_bytes=self.max_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return

        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            # Refuse before the application (and its JSON parser) sees a single byte.
            await error_response(self._too_large())(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def receive_limited() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def send_guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                # The framework turns a failed body read into its own error answer (a 400);
                # drop it: the 413 below is the real reason.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_guarded)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await error_response(self._too_large())(scope, receive, send)
