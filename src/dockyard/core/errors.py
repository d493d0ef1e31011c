"""The one exception hierarchy of Dockyard.

Every error a user can cause is a :class:`DockyardError` subclass. Each class owns its HTTP
status, its CLI exit code and a stable ``code`` string used in the JSON error envelope, so the
server maps the whole tree with one handler, the CLI turns it into an exit in one place, and the
remote SDK maps a server's ``code`` back to the same class.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DockyardError(Exception):
    """Base class: something went wrong that Dockyard can explain."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(DockyardError, ValueError):
    """The caller sent something malformed or out of range."""

    http_status = 422
    exit_code = 2
    code = "invalid_input"


class UnsafePath(InvalidInput):
    """A user-supplied path or URI would escape its root."""

    code = "unsafe_path"


class PayloadTooLarge(InvalidInput):
    """A request body is larger than the configured limit."""

    http_status = 413
    code = "payload_too_large"


class NotFound(DockyardError, LookupError):
    """The named object does not exist."""

    http_status = 404
    exit_code = 3
    code = "not_found"


class AlreadyExists(DockyardError):
    """An object with that name or key exists already."""

    http_status = 409
    exit_code = 4
    code = "already_exists"


class Conflict(DockyardError):
    """The request clashes with the current state (write-once value, illegal transition...)."""

    http_status = 409
    exit_code = 4
    code = "conflict"


class PermissionDenied(DockyardError, PermissionError):
    """The actor lacks a permission the action needs."""

    http_status = 403
    exit_code = 5
    code = "permission_denied"


class Unauthenticated(DockyardError):
    """No valid credentials were given."""

    http_status = 401
    exit_code = 5
    code = "unauthenticated"


class Unavailable(DockyardError):
    """A dependency (database, artifact store, server) cannot be reached."""

    http_status = 503
    exit_code = 6
    code = "unavailable"


class ConfigError(DockyardError):
    """Dockyard is configured wrongly for what was asked (a missing or malformed key, an
    unloadable plug-in): the operator must fix a setting. 503 on a server: it is not the
    caller's fault, and the call can succeed once the setting is fixed."""

    http_status = 503
    exit_code = 2
    code = "config_error"


class IntegrityError(DockyardError):
    """Stored data does not match its recorded hash: it was tampered with or corrupted."""

    http_status = 500
    exit_code = 7
    code = "integrity_error"


def _all_subclasses(cls: type[DockyardError]) -> list[type[DockyardError]]:
    out: list[type[DockyardError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_class_for_code(code: str) -> type[DockyardError]:
    """Map an envelope ``code`` back to its exception class (used by the remote SDK)."""
    for cls in [DockyardError, *_all_subclasses(DockyardError)]:
        if cls.code == code:
            return cls
    return DockyardError


class DockyardWarning(UserWarning):
    """A non-fatal problem worth telling the user about."""
