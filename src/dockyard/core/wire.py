"""The JSON wire form shared by the server and the remote SDK.

Standard JSON has no NaN or infinities, but metric values can be any float. The API spells them
as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (what :func:`float` reads back, so
``Metric.from_dict`` decodes them without special cases), in both directions.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["HOLDOUT_DTYPE_PATTERN", "encode_json", "wire_float"]

#: The pandas dtypes a validate request's ``data.dtypes`` may name (``POST
#: /api/v1/models/{name}/versions/{v}/validate``): a closed list -- no fixed-width byte strings
#: that could ask for gigabytes per cell, nothing pandas would need a plug-in for.
HOLDOUT_DTYPE_PATTERN = (
    r"^(bool|boolean|u?int(8|16|32|64)|U?Int(8|16|32|64)|float(32|64)|Float(32|64)|string|object"
    r"|category|datetime64\[(s|ms|us|ns)(, ?UTC)?\]|timedelta64\[(s|ms|us|ns)\])$"
)


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


def json_nulls(value: Any) -> Any:
    """``value`` in plain JSON types, for documents stored or sent as JSON (monitoring
    results, webhook bodies): non-finite floats become None, NumPy scalars Python ones, an
    object with ``to_dict`` its dict, tuples and sets lists, mapping keys strings, anything
    else its ``str``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): json_nulls(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_nulls(v) for v in value]
    if hasattr(value, "to_dict"):
        return json_nulls(value.to_dict())
    if hasattr(value, "item"):  # NumPy scalars
        return json_nulls(value.item())
    return str(value)


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
