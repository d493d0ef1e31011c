"""Checks on user-supplied names, keys and values, shared by every tracking use case."""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from dockyard.core.errors import InvalidInput

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_NAME = 256

_KEY = re.compile(r"^[A-Za-z0-9_\-. /:]+$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=4096)
def _good_key(key: str) -> bool:
    # Keys repeat endlessly (every epoch logs the same ones): remember the verdict.
    return (
        0 < len(key) <= MAX_KEY
        and _KEY.match(key) is not None
        and ".." not in key.split("/")
        and not key.startswith("/")
        and "//" not in key
    )


def check_key(kind: str, key: Any) -> str:
    if type(key) is str and _good_key(key):
        return key
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{kind} key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY:
        raise InvalidInput(f"{kind} key {key[:40]!r}... is longer than {MAX_KEY} characters")
    if not _KEY.match(key) or ".." in key.split("/") or key.startswith("/") or "//" in key:
        raise InvalidInput(
            f"{kind} key {key!r} may only contain letters, digits, underscores, dashes, "
            "periods, spaces, colons and slashes (and no '..' segment, '//' or leading '/')"
        )
    return key


def check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{kind} name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{kind} name is longer than {MAX_NAME} characters")
    if _CONTROL.search(name):
        raise InvalidInput(f"{kind} name {name!r} contains control characters")
    return name


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise InvalidInput(f"run id must be 32 lowercase hex characters, got {run_id!r}")
    return run_id


def check_experiment_id(experiment_id: Any) -> str:
    s = str(experiment_id)
    if not s.isdigit() or len(s) > 18:
        raise InvalidInput(f"experiment id must be a positive integer, got {experiment_id!r}")
    return s


def check_text(kind: str, text: str, max_len: int) -> str:
    """Refuse NUL characters (PostgreSQL cannot store them) and text over ``max_len``."""
    if "\x00" in text:
        raise InvalidInput(f"{kind} contains a NUL character, which cannot be stored")
    if len(text) > max_len:
        raise InvalidInput(f"{kind} has {len(text)} characters; the limit is {max_len}")
    return text


def param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) <= MAX_PARAM_VALUE and "\x00" not in text:
        return text  # the usual case, without the calls below
    check_text(f"param {key!r} value", text, 10**9)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(
            f"param {key!r} value has {len(text)} characters; the limit is {MAX_PARAM_VALUE}"
        )
    return text


def tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) <= MAX_TAG_VALUE and "\x00" not in text:
        return text  # the usual case, without the calls below
    check_text(f"tag {key!r} value", text, 10**9)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidInput(
            f"tag {key!r} value has {len(text)} characters; the limit is {MAX_TAG_VALUE}"
        )
    return text


def metric_value(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        # numpy scalars are fine: they convert through __float__
        if not hasattr(value, "__float__") or isinstance(value, str | bytes):
            raise InvalidInput(f"metric {key!r} value must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"metric {key!r} value must be a number, got {value!r}") from None
    except OverflowError:
        raise InvalidInput(f"metric {key!r} value {value!r} is too large for a float") from None


def integer(kind: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"{kind} must be an integer, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidInput(f"{kind} must be an integer, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{kind} must be an integer, got {value!r}") from None
    if not -(2**63) <= value < 2**63:
        raise InvalidInput(f"{kind} {value} does not fit in 64 bits")
    return value
