"""JSON encoding of API responses, with the wire spelling of non-finite floats.

Standard JSON has no NaN or infinities, but metric values can be any float. The API spells them
as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (what :func:`float` reads back, so
``Metric.from_dict`` and the remote SDK decode them without special cases), and request bodies
accept those strings where a metric value is expected (see :mod:`dockyard.server.schemas`).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

from dockyard.core.wire import encode_json, wire_float

__all__ = ["JSONResponse", "encode_json", "wire_float"]


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON response, encoding non-finite floats the API's way."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)
