"""Authentication of API requests: a pure ASGI middleware that turns a bearer token into an Actor.

Modes (setting ``auth``, ``DOCKYARD_AUTH``): ``on`` -- every request needs
``Authorization: Bearer <token>``, except the paths in :data:`PUBLIC_PATHS` (compared exactly:
``/HEALTHZ``, ``/healthz/`` or ``//healthz`` are not public); ``off`` -- every request acts as
``anonymous`` with every permission (a laptop, bound to loopback); ``auto`` (default) -- on
unless the server is bound to a loopback address. :func:`resolve_auth_mode` decides once, at
start-up, and the server logs the mode it runs in.

Deny by default: the check runs before routing, for every path and method, so a route added
tomorrow is protected without anyone remembering to protect it; an unknown path without a token
is a 401 too (no probing of which routes exist). A missing, malformed, unknown, revoked or
expired token, or a disabled user, is a 401 in the usual error envelope with
``WWW-Authenticate: Bearer``; what the authenticated principal may do is decided by the
services (403 naming the missing permission). The token is never logged, echoed or stored.
"""

from __future__ import annotations

import ipaddress
import logging

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.core.errors import DockyardError, InvalidInput, Unauthenticated
from dockyard.governance.audit import Actor
from dockyard.governance.identity import authenticate
from dockyard.governance.permissions import Authorizer
from dockyard.server.errors import error_response

__all__ = ["ACTOR_SCOPE_KEY", "PUBLIC_PATHS", "AuthMiddleware", "resolve_auth_mode"]

log = logging.getLogger("dockyard.server")

#: Paths anyone may call (exact match on the raw path). Everything else needs a token.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/oauth2-redirect"}
)
#: Where the middleware leaves the authenticated Actor in the ASGI scope.
ACTOR_SCOPE_KEY = "dockyard.actor"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dockyard"'}
_MODES = ("auto", "on", "off")


def is_loopback(host: str) -> bool:
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def resolve_auth_mode(setting: str | None, bind_host: str | None) -> bool:
    """True when auth is on. ``auto`` is on unless ``bind_host`` is a loopback address; with
    no known bind host (an app served by another ASGI server) ``auto`` is on."""
    mode = (setting or "auto").strip().lower()
    if mode not in _MODES:
        raise InvalidInput(f"setting auth (DOCKYARD_AUTH) must be auto, on or off, got {setting!r}")
    if mode == "auto":
        return bind_host is None or not is_loopback(bind_host)
    return mode == "on"


def anonymous_actor() -> Actor:
    """The actor of every request when auth is off: all permissions."""
    return Actor("anonymous", authorizer=Authorizer.allow_all("anonymous"))


def bearer_token(headers: Headers) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is none;
    Unauthenticated when the header is there but is not a bearer token."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            token = bearer_token(Headers(scope=scope))
            if token is None:
                raise Unauthenticated(
                    "this server needs an API token: send 'Authorization: Bearer <token>' "
                    "(the SDK and CLI send DOCKYARD_TRACKING_TOKEN)"
                )
            backend = scope["app"].state.backend
            actor = await anyio.to_thread.run_sync(authenticate, backend.store, token)
        except DockyardError as exc:
            headers = _CHALLENGE if isinstance(exc, Unauthenticated) else None
            await error_response(exc, headers)(scope, receive, send)
            return
        scope[ACTOR_SCOPE_KEY] = actor
        await self.app(scope, receive, send)
