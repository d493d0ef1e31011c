"""Model references and names: ``models:/`` URIs, the CLI's short forms, model and alias names.

Accepted references (:func:`parse_model_uri`)::

    models:/fraud/3            version 3
    models:/fraud@champion     the version the alias ``champion`` points to
    models:/fraud/production   the highest version whose status is production (any status name)
    models:/fraud/latest       the highest version that is not retired or rejected
    fraud/3, fraud@champion, fraud/production, fraud/latest   (short forms, for the CLI)

Names keep these unambiguous: a model name has no ``/``, ``@`` or ``:``; an alias is
``[a-z][a-z0-9_-]{0,63}`` and is never a status name or ``latest``.
Pure functions, no store access; imported by ``import dockyard``-light code paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import InvalidInput
from dockyard.core.registry_entities import STATUSES

MAX_MODEL_NAME = 256
MAX_VERSION = 2**31 - 1
LATEST = "latest"

ACCEPTED_FORMS = (
    "models:/<name>/<version>, models:/<name>@<alias>, models:/<name>/<status> "
    f"(status: {', '.join(STATUSES)}), models:/<name>/latest, "
    "or the short forms <name>/<version> and <name>@<alias>"
)

_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_FORBIDDEN_IN_NAME = ("/", "@", ":")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of version, alias or selector (a status or latest)."""

    name: str
    version: int | None = None
    alias: str | None = None
    #: a status name or "latest"
    selector: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.selector}"


def check_model_name(name: Any) -> str:
    """A registered model name: 1-256 characters, no '/', '@', ':' or control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"model name must be a non-empty string, got {name!r}")
    if len(name) > MAX_MODEL_NAME:
        raise InvalidInput(
            f"model name {name[:40]!r}... is longer than {MAX_MODEL_NAME} characters"
        )
    if name != name.strip():
        raise InvalidInput(f"model name {name!r} starts or ends with whitespace")
    if _CONTROL.search(name):
        raise InvalidInput(f"model name {name!r} contains control characters")
    if name in (".", ".."):
        # URL paths collapse these segments: such a model could never be addressed over HTTP.
        raise InvalidInput(f"model name {name!r} is reserved: URLs treat it as a path segment")
    if "\\" in name or _PERCENT_ESCAPE.search(name):
        # One spelling per name: a proxy or a Windows tool could read these differently.
        raise InvalidInput(
            f"model name {name!r} contains a backslash or a percent-escape (%XX); "
            "use plain characters"
        )
    bad = [c for c in _FORBIDDEN_IN_NAME if c in name]
    if bad:
        raise InvalidInput(
            f"model name {name!r} contains {', '.join(repr(c) for c in bad)}; "
            "'/', '@' and ':' are reserved for model URIs (models:/<name>/<version>)"
        )
    return name


def check_alias(alias: Any) -> str:
    """An alias name: [a-z][a-z0-9_-]{0,63}, not a status name and not 'latest'."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidInput(
            f"alias {alias!r} is not valid: an alias starts with a lowercase letter followed by "
            "up to 63 lowercase letters, digits, '_' or '-' (e.g. champion, challenger)"
        )
    if alias in STATUSES or alias == LATEST:
        raise InvalidInput(
            f"alias {alias!r} is reserved: models:/<name>/{alias} already selects by status; "
            f"aliases cannot be {', '.join(STATUSES)} or {LATEST}"
        )
    return alias


def check_version(version: Any) -> int:
    """A version number: an integer >= 1 (a string of digits is accepted)."""
    if isinstance(version, bool):
        raise InvalidInput(f"model version must be an integer >= 1, got {version!r}")
    if isinstance(version, str) and version.isascii() and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"model version must be an integer >= 1, got {version!r}")
    return version


def _bad(uri: str, why: str) -> InvalidInput:
    shown = repr(uri) if len(uri) <= 200 else repr(uri[:200]) + "..."
    return InvalidInput(f"model reference {shown} {why}; accepted forms: {ACCEPTED_FORMS}")


def parse_model_uri(uri: Any) -> ModelRef:
    """Parse a ``models:/`` URI or a short form (see the module docstring)."""
    if not isinstance(uri, str) or not uri:
        raise InvalidInput(f"a model reference must be a non-empty string, got {uri!r}")
    if uri.startswith("models:"):
        body = uri[len("models:") :]
        if not body.startswith("/") or body.startswith("//"):
            raise _bad(uri, "must start with 'models:/' followed by the model name")
        body = body[1:]
    elif ":" in uri.split("/", 1)[0].split("@", 1)[0]:
        raise _bad(uri, "is not a model reference")
    else:
        body = uri
    if "@" in body and ("/" not in body or body.index("@") < body.index("/")):
        name, _, alias = body.partition("@")
        _name_in(uri, name)
        if not _ALIAS.match(alias):
            raise _bad(uri, f"has an invalid alias {alias!r}")
        return ModelRef(name=name, alias=alias)
    name, sep, rest = body.partition("/")
    if not sep or not rest:
        raise _bad(uri, "names no version, alias or status")
    _name_in(uri, name)
    if rest.isascii() and rest.isdigit():
        try:
            return ModelRef(name=name, version=check_version(int(rest)))
        except InvalidInput:
            raise _bad(uri, "has a version out of range") from None
    if rest in STATUSES or rest == LATEST:
        return ModelRef(name=name, selector=rest)
    raise _bad(uri, f"has {rest!r} where a version number, status or 'latest' belongs")


def _name_in(uri: str, name: str) -> None:
    try:
        check_model_name(name)
    except InvalidInput as exc:
        raise _bad(uri, f"has an invalid model name ({exc.message})") from None
