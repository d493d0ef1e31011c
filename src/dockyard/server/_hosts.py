"""A pure ASGI middleware that refuses requests whose ``Host`` header the server does not answer to.

DNS rebinding: a web page on ``evil.example`` makes its name resolve to ``127.0.0.1`` and then
talks to a Dockyard server on the victim's loopback as if it were same-origin -- the browser
sends ``Host: evil.example:8080``. Refusing unknown hosts stops it (MLflow's CVE-2024-37059
class of bug).

The setting ``allowed_hosts`` (``DOCKYARD_ALLOWED_HOSTS``) is a comma-separated list of host
names or IP addresses, compared case-insensitively and without the port. ``*`` allows any host;
``.example.com`` allows ``example.com`` and every subdomain. Unset (the default), the allowed hosts
are the address the connection arrived on (the host the server is bound to, or the interface
address when bound to ``0.0.0.0``) plus ``localhost``, ``127.0.0.1`` and ``::1``. A server
reached through a DNS name or behind a reverse proxy must list that name.

Every method is checked, GETs included: a rebinding page that can *read* answers could copy
models, artifacts and audit logs. Only ``/healthz`` (no data) is exempt, for probes. A refused
request gets 403 ``permission_denied`` in the usual error envelope before the application, or
its body parser, sees anything; the offending header is never copied into a response header.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.core.errors import PermissionDenied
from dockyard.server.errors import error_response

__all__ = ["AllowedHostsMiddleware", "parse_allowed_hosts"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_EXEMPT_PATHS = frozenset({"/healthz"})
# A host as it may appear in a Host header: a DNS name, an IPv4 address or a bracketed IPv6
# address, then an optional port. Anything else (spaces, '@', '/', control characters) is refused.
_HOST_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::\d{1,5})?$")


def parse_allowed_hosts(value: str | None) -> tuple[bool, frozenset[str]]:
    """``(allow_any, names)`` from the setting's text; names are lowercased, without brackets."""
    if value is None or not str(value).strip():
        return False, frozenset()
    names = {n.strip().lower().strip("[]").rstrip(".") for n in str(value).split(",")}
    names.discard("")
    return "*" in names, frozenset(names - {"*"})


def _host_of(header: str) -> str | None:
    """The lowercased host of a Host header value, without port or brackets; None if malformed."""
    match = _HOST_RE.match(header.strip())
    if match is None:
        return None
    host = match.group("v6") or match.group("name") or ""
    return host.lower().rstrip(".") or None


class AllowedHostsMiddleware:
    """Refuse HTTP requests whose ``Host`` is not allowed (see the module docstring)."""

    def __init__(self, app: ASGIApp, allowed_hosts: str | None = None) -> None:
        self.app = app
        self.allow_any, self.names = parse_allowed_hosts(allowed_hosts)
        self.default = not self.allow_any and not self.names

    def _allowed(self, host: str | None, scope: Scope) -> bool:
        if host is None:
            return False
        if self.default:
            server = scope.get("server")
            bound = str(server[0]).lower().strip("[]") if server else None
            return host in LOOPBACK_NAMES or host == bound
        return host in self.names or any(
            n.startswith(".") and (host == n[1:] or host.endswith(n)) for n in self.names
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allow_any:
            await self.app(scope, receive, send)
            return
        if scope.get("path") in _EXEMPT_PATHS and scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        raw = Headers(scope=scope).get("host")
        host = _host_of(raw) if raw is not None else None
        if self._allowed(host, scope):
            await self.app(scope, receive, send)
            return
        shown = "missing" if raw is None else repr(raw[:100])
        exc = PermissionDenied(
            f"this server does not answer to the Host header {shown} (a guard against DNS "
            "rebinding); add the name clients use to the server setting allowed_hosts "
            "(DOCKYARD_ALLOWED_HOSTS, comma-separated; '*' allows any host)",
            permission="allowed_host",
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await error_response(exc)(scope, receive, send)
