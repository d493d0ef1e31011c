"""Opaque page tokens for list endpoints.

A token carries the offset of the next page and a fingerprint of the query it belongs to, so a
token handed to a different query is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from dockyard.core.errors import InvalidInput

MAX_PAGE_SIZE = 50_000
#: Largest offset a page token may carry (far beyond any real listing, well inside int64).
MAX_OFFSET = 2**53


def fingerprint(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_token(offset: int, query: str) -> str:
    raw = json.dumps({"o": offset, "q": query}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, query: str) -> int:
    """The offset a token points at (0 for no token)."""
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, q = int(data["o"]), str(data["q"])
    except Exception:
        raise InvalidInput(f"page token {token[:40]!r} is not a valid page token") from None
    if q != query:
        raise InvalidInput("page token belongs to a different query; start again without it")
    if not 0 <= offset <= MAX_OFFSET:
        # Only a forged token gets here; a database cannot seek to such an offset (an int64
        # overflow would otherwise surface as a 500).
        raise InvalidInput(f"page token {token[:40]!r} is not a valid page token")
    return offset


def check_page_size(max_results: Any, default: int = 1000) -> int:
    if max_results is None:
        return default
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise InvalidInput(f"max_results must be an integer, got {max_results!r}")
    if not 1 <= max_results <= MAX_PAGE_SIZE:
        raise InvalidInput(f"max_results must be between 1 and {MAX_PAGE_SIZE}, got {max_results}")
    return max_results
