"""JSON encoding of API responses, with the wire spelling of non-finite floats.

Standard JSON has no NaN or infinities, but metric values can be any float. The API spells them
as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (what :func:`float` reads back, so
``Metric.from_dict`` and the remote SDK decode them without special cases), and request bodies
accept those strings where a metric value is expected (see :mod:`dockyard.server.schemas`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

__all__ = ["JSONResponse", "encode_json", "wire_float"]


def wire_float(value: float) -> float | str:
    """``value`` as it travels in JSON: non-finite floats become their string spelling."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _finite(obj: Any) -> Any:
    """A copy of ``obj`` with every non-finite float replaced by its string spelling."""
    if isinstance(obj, float):
        return wire_float(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def encode_json(content: Any) -> bytes:
    """Serialise ``content`` to compact UTF-8 JSON that any standard parser accepts."""
    try:
        # Fast path: most payloads hold no NaN, and allow_nan=False finds out in C.
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(
            _finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    return text.encode("utf-8")


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON response, encoding non-finite floats the API's way."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)
