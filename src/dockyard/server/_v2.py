"""The Open Inference Protocol (V2) tensor codec of the inference server.

Requests: JSON tensors (nested or flat ``data``, every datatype with a JSON form) and the
binary tensor extension (``Inference-Header-Content-Length``; raw little-endian elements, BYTES
as 4-byte length prefixes), turned into NumPy arrays of the declared shape, then into a
:class:`~dockyard.serving.inputs.Payload` for the model's signature (one tensor per column, or
one ``[N, k]`` tensor, or the model's own tensor). Responses: outputs as JSON ``data`` or as
binary. Errors are :class:`~dockyard.registry.packaging.ModelInputError` naming the input and
the rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.registry.packaging.errors import ModelInputError

__all__ = ["COLUMN_V2", "bad", "v2_datatype", "v2_output", "v2_payload", "v2_tensor"]

# V2 datatypes with a wire form here: numpy dtype, or None for BYTES.
_V2_DTYPES: dict[str, str | None] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": None,
}
_NO_JSON_FORM = frozenset({"FP16", "BF16"})
COLUMN_V2 = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "datetime": "BYTES",
    "category": "BYTES",
}


def bad(message: str, rule: str = "bad_input", column: str | None = None) -> ModelInputError:
    details: dict[str, Any] = {"rule": rule}
    if column is not None:
        details["column"] = column
    return ModelInputError(message, **details)


def _parse_bytes_elements(chunk: bytes, name: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(chunk):
        if i + 4 > len(chunk):
            raise bad(f"input {name!r}: truncated BYTES element length (binary data)")
        n = int.from_bytes(chunk[i : i + 4], "little")
        i += 4
        if i + n > len(chunk):
            raise bad(f"input {name!r}: truncated BYTES element (binary data)")
        try:
            out.append(chunk[i : i + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise bad(f"input {name!r}: a BYTES element is not UTF-8 text") from None
        i += n
    return out


def v2_tensor(inp: Any, binary: memoryview | None, offset: int) -> tuple[str, Any, int]:
    """(name, numpy array of the declared shape, new binary offset) of one V2 input."""
    import numpy as np

    if not isinstance(inp, Mapping):
        raise bad("each of 'inputs' must be an object with name, shape, datatype and data")
    name = inp.get("name")
    if not isinstance(name, str) or not name:
        raise bad("an input has no 'name' (a non-empty string)")
    shape = inp.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise bad(
            f"input {name!r}: 'shape' must be a non-empty list of non-negative integers, "
            f"got {shape!r} (rule: wrong_shape)",
            "wrong_shape",
            name,
        )
    datatype = inp.get("datatype")
    if datatype in _NO_JSON_FORM and binary is None:
        raise bad(
            f"input {name!r}: datatype {datatype} has no JSON form; send it with the binary "
            "tensor extension or as FP32 (rule: wrong_type)",
            "wrong_type",
            name,
        )
    if datatype not in _V2_DTYPES:
        raise bad(
            f"input {name!r}: unknown or unsupported datatype {datatype!r}; one of "
            f"{', '.join(_V2_DTYPES)} (rule: wrong_type)",
            "wrong_type",
            name,
        )
    count = math.prod(shape)
    np_dtype = _V2_DTYPES[datatype]
    params = inp.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, Mapping) else None
    if size is not None:
        if binary is None or not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise bad(
                f"input {name!r}: binary_data_size {size!r} does not fit the binary part of the "
                "body (header Inference-Header-Content-Length)"
            )
        chunk = bytes(binary[offset : offset + size])
        offset += size
        if np_dtype is None:
            values: Any = np.array(_parse_bytes_elements(chunk, name), dtype=object)
        else:
            dt = np.dtype(np_dtype).newbyteorder("<") if np_dtype != "bool" else np.dtype("uint8")
            if len(chunk) % dt.itemsize:
                raise bad(f"input {name!r}: {len(chunk)} bytes is not a whole number of {datatype}")
            values = np.frombuffer(chunk, dtype=dt)
            values = values.astype(bool) if np_dtype == "bool" else values.astype(np_dtype)
    else:
        if "data" not in inp:
            raise bad(f"input {name!r} has no 'data'", "bad_input", name)
        values = _json_values(name, datatype, inp["data"], np_dtype)
    if values.size != count:
        raise bad(
            f"input {name!r}: shape {shape} needs {count} elements, the data has {values.size} "
            "(rule: wrong_shape)",
            "wrong_shape",
            name,
        )
    return name, values.reshape(shape), offset


def _json_values(name: str, datatype: str, data: Any, np_dtype: str | None) -> Any:
    import numpy as np

    if not isinstance(data, list):
        data = [data]
    try:
        arr = np.array(data, dtype=object if np_dtype is None else None)
    except ValueError:
        raise bad(
            f"input {name!r}: ragged nested data (rule: wrong_shape)", "wrong_shape", name
        ) from None
    flat = arr.reshape(-1)
    if np_dtype is None:
        wrong = [v for v in flat.tolist() if not isinstance(v, str)]
        if wrong:
            raise bad(
                f"input {name!r}: datatype BYTES takes strings, got {type(wrong[0]).__name__} "
                f"value(s) such as {wrong[0]!r} (rule: wrong_type)",
                "wrong_type",
                name,
            )
        return flat
    kind = flat.dtype.kind
    target = np.dtype(np_dtype)
    ok = (
        (target.kind == "b" and kind == "b")
        or (target.kind in "iu" and kind in "iu")
        or (target.kind == "f" and kind in "iuf")
    )
    if not ok and flat.size:
        sample = flat[0].item() if hasattr(flat[0], "item") else flat[0]
        raise bad(
            f"input {name!r}: datatype {datatype} got {type(sample).__name__} "
            f"value(s) such as {sample!r} (rule: wrong_type)",
            "wrong_type",
            name,
        )
    if target.kind in "iu" and flat.size:
        info = np.iinfo(target)
        if int(flat.min()) < info.min or int(flat.max()) > info.max:
            raise bad(
                f"input {name!r}: values outside the range of {datatype} (rule: wrong_type)",
                "wrong_type",
                name,
            )
    return flat.astype(target)


def v2_payload(tensors: Sequence[tuple[str, Any]], model: Any, extra_columns: str) -> Any:
    """The Payload of V2 tensors for ``model``: one tensor per column (named after it, shape
    [N] or [N, 1]), or one [N, k] tensor with the columns in the signature's order; a tensor
    signature takes one tensor."""
    from dockyard.serving.inputs import Payload, check_columns

    schema = model.signature.get("inputs")
    if (schema is not None and schema.get("kind") == "tensor") or (
        schema is None and len(tensors) == 1
    ):
        if len(tensors) != 1:
            raise bad(f"this model takes one input tensor, got {len(tensors)}", "bad_input")
        arr = model.prepare(tensors[0][1])
        return Payload(rows=int(arr.shape[0]) if getattr(arr, "ndim", 0) else 1, array=arr)
    by_name = dict(tensors)
    if len(by_name) != len(tensors):
        raise bad("two inputs have the same name", "bad_input")
    names = [c["name"] for c in schema["columns"]] if schema is not None else list(by_name)
    cols: dict[str, list[Any]] = {}
    if all(n in by_name for n in names):
        for n in names:
            arr = by_name[n]
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise bad(
                    f"input {n!r}: shape {list(arr.shape)}: a column takes shape [N] or [N, 1] "
                    "(rule: wrong_shape)",
                    "wrong_shape",
                    n,
                )
            cols[n] = arr.tolist()
        extra = [n for n in by_name if n not in set(names)]
        if extra and extra_columns == "reject":
            raise bad(
                f"input(s) {', '.join(map(repr, extra))} are not in the model signature "
                "(rule: extra_column)",
                "extra_column",
                extra[0],
            )
    elif len(tensors) == 1 and tensors[0][1].ndim == 2 and tensors[0][1].shape[1] == len(names):
        arr = tensors[0][1]
        for j, n in enumerate(names):
            cols[n] = arr[:, j].tolist()
    else:
        missing = [n for n in names if n not in by_name]
        raise bad(
            f"input is missing column(s) {', '.join(map(repr, missing))} (rule: missing_column; "
            f"send one tensor per column named after it, shape [N], or one tensor of shape "
            f"[N, {len(names)}] with the columns in the order {names})",
            "missing_column",
            missing[0] if missing else None,
        )
    lengths = {len(v) for v in cols.values()}
    if len(lengths) != 1:
        raise bad("input tensors have different numbers of rows (rule: wrong_shape)", "wrong_shape")
    n_rows = lengths.pop()
    if n_rows == 0:
        raise bad("input is empty: give at least one row (rule: bad_input)", "bad_input")
    if schema is not None:
        check_columns(cols, schema)
    return Payload(rows=n_rows, columns=cols)


def v2_datatype(arr: Any) -> str:
    kind = arr.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'UINT' if kind == 'u' else 'INT'}{arr.dtype.itemsize * 8}"
    if kind == "f":
        return "FP32" if arr.dtype.itemsize <= 4 else "FP64"
    return "BYTES"


def v2_output(name: str, arr: Any, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    import numpy as np

    datatype = v2_datatype(arr)
    out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
    if datatype == "BYTES":
        flat = [v if isinstance(v, str) else str(v) for v in arr.reshape(-1).tolist()]
    else:
        if datatype == "FP16":
            arr = arr.astype("float32")
        flat = None
    if binary:
        if flat is not None:
            raw = b"".join(len(b).to_bytes(4, "little") + b for b in (s.encode() for s in flat))
        else:
            a = arr.astype(np.uint8) if datatype == "BOOL" else arr
            raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        out["parameters"] = {"binary_data_size": len(raw)}
        return out, raw
    from dockyard.registry.packaging.signature import json_safe

    out["data"] = flat if flat is not None else json_safe(arr.reshape(-1).tolist())
    return out, None
