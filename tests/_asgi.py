"""Send one request to an ASGI app exactly as written, the way uvicorn hands it over.

Test clients normalise paths (``..`` segments, percent-encoding) before the app sees them; the
traversal and header tests need the bytes untouched: ``path`` is the target percent-decoded
once, ``raw_path`` the bytes as sent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import anyio


def send_raw(
    app: Any,
    method: str,
    target: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """``(status, response headers, body)`` of ``method target`` sent to ``app`` untouched."""
    raw_path, _, query = target.partition("?")
    hdrs = headers if headers is not None else [(b"host", b"testserver")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1", "replace"),
        "query_string": query.encode("latin-1", "replace"),
        "root_path": "",
        "headers": [*hdrs, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    async def call() -> None:
        with anyio.fail_after(10):
            await app(scope, receive, send)

    anyio.run(call)
    start = next(m for m in messages if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], list(start.get("headers", [])), payload
