"""The API's error envelope, and the one place that turns exceptions into HTTP responses.

Every error answer has the same body, whatever raised it::

    {"error": {"code": "not_found", "message": "run 1f2e... does not exist", "details": {...}}}

``code`` is the stable string of a :class:`~dockyard.core.errors.DockyardError` class (the remote
SDK maps it back to that class with :func:`~dockyard.core.errors.error_class_for_code`), the
HTTP status is the class's ``http_status``, ``message`` is the human sentence naming what was
wrong, and ``details`` holds machine-readable extras (``{}`` when there are none).

What maps to what:

* :class:`DockyardError` and every subclass: one handler, found through the MRO
  (InvalidInput/UnsafePath 422, NotFound 404, AlreadyExists/Conflict 409, PayloadTooLarge 413...).
* Request validation (malformed JSON, wrong types, missing fields): 422 ``invalid_input``, the
  message naming each field, e.g. ``body.metrics.0.value: Input should be a valid number``.
* The router's own answers: unknown route 404 ``not_found``, wrong method 405
  ``method_not_allowed`` (with its ``Allow`` header).
* Anything else is a bug of ours: :class:`CatchAllMiddleware` logs the traceback with an error
  id and answers 500 ``internal_error`` with a generic message that carries only that id, so no
  internals (SQL, file paths, secrets) reach the caller.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.core.errors import DockyardError
from dockyard.server._json import JSONResponse

__all__ = [
    "CatchAllMiddleware",
    "error_body",
    "error_response",
    "install_error_handlers",
]

log = logging.getLogger("dockyard.server")

# Status codes the router and Starlette raise themselves, and the envelope code for each. The
# codes match DockyardError classes where one exists, so the SDK raises the same class.
_HTTP_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_input",
    503: "unavailable",
}
_MAX_SHOWN_ERRORS = 5


def _shown_path(scope: Scope | Request) -> str:
    """The request path for a message or a log line: quoted (no raw newlines) and cut short."""
    path = str(scope["path"] if isinstance(scope, Mapping) else scope.url.path)
    return repr(path if len(path) <= 200 else path[:200] + "...")


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON envelope of an error (the only builder of it)."""
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def _jsonable(value: Any) -> Any:
    """Details come from service code; make sure any odd value still serialises."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def error_response(exc: DockyardError, headers: Mapping[str, str] | None = None) -> Response:
    """The response for a Dockyard error: its status, code, message and details."""
    return JSONResponse(
        error_body(exc.code, exc.message, _jsonable(exc.details)),
        status_code=exc.http_status,
        headers=dict(headers or {}),
    )


async def _dockyard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DockyardError)
    if exc.http_status >= 500:
        # Server-side trouble the caller cannot fix (store unreachable, corrupted blob...):
        # operators need to see it even though the caller gets a precise message.
        log.error("%s %s failed: %s", request.method, _shown_path(request), exc.message)
    return error_response(exc)


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[Any]]:
    """A readable message and a details list from pydantic's error records.

    ``("body", "metrics", 0, "value")`` becomes ``body.metrics.0.value``. The offending input is
    deliberately not echoed: it can be large, and it is the caller's own data anyway.
    """
    items: list[dict[str, str]] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        kind = str(err.get("type", "invalid"))
        if kind == "json_invalid":
            pos = loc[1] if len(loc) > 1 else "?"
            reason = (err.get("ctx") or {}).get("error", "decode error")
            field, message = "body", f"request body is not valid JSON ({reason} at character {pos})"
        elif loc == ("body",) and kind == "missing":
            field, message = "body", "a JSON object is required as the request body"
        else:
            field, message = ".".join(str(p) for p in loc) or "request", str(err.get("msg"))
        items.append({"field": field, "message": message, "type": kind})
    shown = "; ".join(f"{i['field']}: {i['message']}" for i in items[:_MAX_SHOWN_ERRORS])
    if len(items) > _MAX_SHOWN_ERRORS:
        shown += f"; and {len(items) - _MAX_SHOWN_ERRORS} more problems"
    return shown or "the request is invalid", items


async def _validation_error(request: Request, exc: Exception) -> Response:
    message, items = describe_validation_errors(exc.errors())  # type: ignore[attr-defined]
    return JSONResponse(error_body("invalid_input", message, {"errors": items}), status_code=422)


_PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path, for the ``Allow`` header of a 405.

    Starlette's 405 names only the first route whose path matched, but several routes share a
    path (GET and POST ``/api/v1/experiments``); probing the router with each method finds
    them all without relying on how the framework nests included routers.
    """
    allowed = [
        method
        for method in _PROBED_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "internal_error" if status >= 500 else "invalid_input")
    headers = dict(exc.headers or {})
    if status == 404:
        message = f"no API route matches {request.method} {_shown_path(request)}; see /api/v1/docs"
    elif status == 405:
        allowed = _allowed_methods(request) or headers.get("allow") or headers.get("Allow") or ""
        if allowed:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = allowed
        message = f"method {request.method} is not allowed on {_shown_path(request)}" + (
            f"; allowed: {allowed}" if allowed else ""
        )
    elif status == 400:
        # FastAPI's "There was an error parsing the body" (undecodable bytes and the like): a
        # malformed body, reported like any other one.
        status, code = 422, "invalid_input"
        cause = exc.__cause__
        reason = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        message = f"the request body could not be read as JSON{reason}"[:300]
    else:
        message = str(exc.detail)
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


class CatchAllMiddleware:
    """Answer any unexpected exception with a generic 500 envelope, and log its traceback.

    Pure ASGI, installed outside the router's exception handlers. If the response had already
    started (an error half-way through a streamed download), nothing honest can be sent any
    more: the exception is re-raised so the server aborts the connection and the client sees a
    truncated transfer instead of a body that looks complete.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            if started:
                raise  # the server logs it and closes the connection
            error_id = uuid.uuid4().hex[:12]
            log.exception(
                "unhandled error %s in %s %s", error_id, scope.get("method"), _shown_path(scope)
            )
            response = JSONResponse(
                error_body(
                    "internal_error",
                    f"internal server error (error id {error_id}); the server log has details",
                    {"error_id": error_id},
                ),
                status_code=500,
            )
            await response(scope, receive, send)


def install_error_handlers(app: Starlette) -> None:
    """Register the handlers; the catch-all is added by the app factory as middleware.

    Framework-light: the inference server is a plain Starlette app (FastAPI alone takes about
    a quarter of a second to import); FastAPI's request validation is handled only on a
    FastAPI app."""
    app.add_exception_handler(DockyardError, _dockyard_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    if type(app).__module__.startswith("fastapi"):
        from fastapi.exceptions import RequestValidationError

        app.add_exception_handler(RequestValidationError, _validation_error)
