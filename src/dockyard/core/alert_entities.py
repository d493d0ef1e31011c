"""Alert delivery entities: one webhook delivery of one monitoring event, as the store holds it.

Kept in core (not in :mod:`dockyard.monitoring.alerts`) so that the store can return them
without importing a service. The delivery logic lives in :mod:`dockyard.monitoring.alerts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DELIVERY_STATUSES",
    "AlertDelivery",
    "safe_url",
]

#: ``pending`` (waiting for its next attempt, or being sent), ``delivered`` (a 2xx answer),
#: ``dead`` (no attempt left: kept, listed, replayable).
DELIVERY_STATUSES = ("pending", "delivered", "dead")


def safe_url(url: str) -> str:
    """``url`` fit to show and log: no user info, the query string replaced by ``?***`` (it
    may carry a token), no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}" + ("?***" if parts.query else "")


@dataclass(frozen=True)
class AlertDelivery:
    """One delivery of one event to one webhook target.

    ``options`` holds the target's delivery options (``event``: the event kind,
    ``allow_private``, ``secret_env``: the *name* of the env var with the HMAC key,
    ``sign``, ``timeout_s``); ``payload`` is the JSON body that is sent (the same bytes on
    every attempt and replay). Times are epoch milliseconds.
    """

    id: str
    event_id: int | None
    endpoint: str
    target: str = field(repr=False)
    options: dict[str, Any]
    payload: dict[str, Any] = field(repr=False)
    status: str
    attempts: int
    last_error: str | None
    created: int
    next_attempt: int | None
    delivered: int | None

    @property
    def kind(self) -> str:
        """The event kind (``X-Dockyard-Event``)."""
        return str(self.options.get("event") or "")

    @property
    def host(self) -> str:
        """The target's host name (what the audit log and the logs name; never the URL)."""
        try:
            return urlsplit(self.target).hostname or ""
        except ValueError:
            return ""

    @property
    def safe_target(self) -> str:
        return safe_url(self.target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "target": self.safe_target,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created": self.created,
            "next_attempt": self.next_attempt,
            "delivered": self.delivered,
            "options": dict(self.options),
            "payload": self.payload,
        }
