"""Model signatures: what a model takes and gives, inferred from an example and enforced.

A signature is a plain dict (stored in ``manifest.json``)::

    {"inputs": <schema> | null, "outputs": <schema> | null, "classes": [...] | null}

with a schema one of::

    {"kind": "columns", "columns": [{"name": "amount", "type": "double", "nullable": false,
                                     "dtype": "float64"}, ...]}
    {"kind": "tensor", "dtype": "float64", "shape": [-1, 8]}

Column types (``type``):

========== ===================================== ==========================================
type       pandas / NumPy dtypes                 accepted at predict (then cast)
========== ===================================== ==========================================
boolean    bool, boolean                         booleans; integers that are all 0/1
integer    int8/16/32, uint8/16 (+ nullable)     integers in range; floats with no fraction
long       int64, uint32/64 (+ nullable)         integers; floats with no fraction
float      float16, float32                      any real number (ints widen)
double     float64                               any real number (ints widen)
string     str / string / object of str          strings (categoricals become strings)
datetime   datetime64[...] (tz too)              datetimes; ISO strings that parse
category   category (``categories`` recorded)     strings / values; cast to the recorded
                                                 categories (unknown values become missing)
========== ===================================== ==========================================

``dtype`` keeps the exact pandas dtype of the example so the input is cast back to what the
model was trained on (``int32`` vs ``int64``, ``Int64``, a time zone...). ``nullable`` is true
when the example holds a missing value, and always for ``float``/``double`` (NaN is a float
value and most tabular models accept it); other columns with missing values at predict time
are refused. Pass ``signature=`` to :func:`~dockyard.registry.packaging.save_model` to
override any of this.

Enforcement (:func:`prepare_input`) accepts a DataFrame, a dict of columns (or one record as a
dict of scalars), a list of records or a 2-D NumPy array (its columns map to the signature's
columns in order), checks every rule, reorders the columns to the signature's order and casts
them; a violation raises :class:`~dockyard.registry.packaging.ModelInputError` naming the
column and the rule. Extra columns are dropped with one :class:`UserWarning` naming them
(``extra_columns="drop"``, the default) or refused (``"reject"``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from dockyard.core.errors import InvalidInput
from dockyard.registry.packaging.errors import ModelInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "COLUMN_TYPES",
    "infer_schema",
    "infer_signature",
    "prepare_input",
    "validate_signature",
]

COLUMN_TYPES: Final[tuple[str, ...]] = (
    "boolean",
    "integer",
    "long",
    "float",
    "double",
    "string",
    "datetime",
    "category",
)
_DEFAULT_DTYPE: Final[dict[str, str]] = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "datetime": "datetime64[ns]",
}
EXTRA_COLUMNS_MODES: Final = ("drop", "reject")
_SHOW: Final = 5


# -- structure --------------------------------------------------------------------------------


def validate_signature(signature: dict[str, Any]) -> dict[str, Any]:
    """Check a signature dict's structure; return it with every key present."""
    unknown = sorted(set(signature) - {"inputs", "outputs", "classes"})
    if unknown:
        raise InvalidInput(f"signature: unknown key(s) {unknown}")
    out = {
        "inputs": _validate_schema(signature.get("inputs"), "inputs"),
        "outputs": _validate_schema(signature.get("outputs"), "outputs"),
        "classes": signature.get("classes"),
    }
    if out["classes"] is not None and not isinstance(out["classes"], list):
        raise InvalidInput("signature: 'classes' must be a list or null")
    return out


def _validate_schema(schema: Any, where: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    if not isinstance(schema, Mapping):
        raise InvalidInput(f"signature {where}: must be an object or null")
    kind = schema.get("kind")
    if kind == "tensor":
        dtype = schema.get("dtype")
        shape = schema.get("shape")
        if not isinstance(dtype, str):
            raise InvalidInput(f"signature {where}: a tensor needs a 'dtype' string")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
        ):
            raise InvalidInput(f"signature {where}: 'shape' must be a list of ints (-1 = any)")
        return {"kind": "tensor", "dtype": dtype, "shape": list(shape)}
    if kind == "columns":
        columns = schema.get("columns")
        if not isinstance(columns, list) or not columns:
            raise InvalidInput(f"signature {where}: 'columns' must be a non-empty list")
        seen: set[str] = set()
        out = []
        for col in columns:
            if not isinstance(col, Mapping) or not isinstance(col.get("name"), str):
                raise InvalidInput(f"signature {where}: each column needs a 'name' string")
            name = col["name"]
            if name in seen:
                raise InvalidInput(f"signature {where}: column {name!r} appears twice")
            seen.add(name)
            typ = col.get("type")
            if typ not in COLUMN_TYPES:
                raise InvalidInput(
                    f"signature {where}: column {name!r} has unknown type {typ!r}; "
                    f"known: {list(COLUMN_TYPES)}"
                )
            entry: dict[str, Any] = {
                "name": name,
                "type": typ,
                "nullable": bool(col.get("nullable", False)),
            }
            if col.get("dtype") is not None:
                entry["dtype"] = str(col["dtype"])
            if col.get("categories") is not None:
                if not isinstance(col["categories"], list):
                    raise InvalidInput(f"signature {where}: categories of {name!r} must be a list")
                entry["categories"] = list(col["categories"])
                entry["ordered"] = bool(col.get("ordered", False))
            out.append(entry)
        return {"kind": "columns", "columns": out}
    raise InvalidInput(f"signature {where}: 'kind' must be 'columns' or 'tensor', not {kind!r}")


# -- inference --------------------------------------------------------------------------------


def _py(value: Any) -> Any:
    """A JSON-able Python value from a NumPy/pandas scalar (datetimes as ISO text)."""
    if value is None or isinstance(value, str | bytes | bool | int | float):
        return value
    if _is_missing(value):
        return None
    if type(value).__name__ == "datetime64":
        import pandas as pd

        return pd.Timestamp(value).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    return value


def _column_spec(name: str, series: pd.Series) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from pandas.api import types as pdt

    dtype = series.dtype
    has_null = bool(series.isna().any())
    spec: dict[str, Any] = {"name": name}
    if isinstance(dtype, pd.CategoricalDtype):
        spec["type"] = "category"
        spec["categories"] = [_py(c) for c in dtype.categories]
        spec["ordered"] = bool(dtype.ordered)
    elif pdt.is_bool_dtype(dtype):
        spec["type"] = "boolean"
    elif pdt.is_integer_dtype(dtype):
        itemsize = np.dtype(dtype.numpy_dtype if hasattr(dtype, "numpy_dtype") else dtype).itemsize
        unsigned = pdt.is_unsigned_integer_dtype(dtype)
        small = itemsize < 4 or (itemsize == 4 and not unsigned)
        spec["type"] = "integer" if small else "long"
    elif pdt.is_float_dtype(dtype):
        itemsize = np.dtype(dtype.numpy_dtype if hasattr(dtype, "numpy_dtype") else dtype).itemsize
        spec["type"] = "double" if itemsize >= 8 else "float"
    elif pdt.is_datetime64_any_dtype(dtype):
        spec["type"] = "datetime"
    elif pdt.is_string_dtype(dtype) or pdt.is_object_dtype(dtype):
        spec["type"] = _object_type(name, series)
    else:
        raise InvalidInput(
            f"cannot infer a signature type for column {name!r} of dtype {dtype}; "
            f"pass signature= explicitly (types: {list(COLUMN_TYPES)})"
        )
    spec["nullable"] = has_null or spec["type"] in ("float", "double")
    spec["dtype"] = str(dtype)
    return spec


def _object_type(name: str, series: pd.Series) -> str:
    import datetime as dt

    values = [v for v in series.tolist() if not _is_missing(v)]
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        return "long"
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        return "double"
    if all(isinstance(v, dt.datetime) for v in values):
        return "datetime"
    bad = next(v for v in values if not isinstance(v, str))
    raise InvalidInput(
        f"cannot infer a signature type for column {name!r}: it mixes or holds values of type "
        f"{type(bad).__name__}; pass signature= explicitly"
    )


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    import numpy as np
    import pandas as pd

    try:
        result = pd.isna(value)
    except (TypeError, ValueError):
        return False
    return isinstance(result, bool | np.bool_) and bool(result)


def _as_frame_for_inference(example: Any) -> pd.DataFrame | None:
    import pandas as pd

    if isinstance(example, pd.DataFrame):
        return example
    if isinstance(example, pd.Series):
        return example.to_frame(name=str(example.name) if example.name is not None else "0")
    if isinstance(example, Mapping):
        if all(_is_scalar(v) for v in example.values()):
            return pd.DataFrame([dict(example)])
        return pd.DataFrame({str(k): list(v) for k, v in example.items()})
    if isinstance(example, list) and example and all(isinstance(r, Mapping) for r in example):
        return pd.DataFrame.from_records(example)
    return None


def _is_scalar(value: Any) -> bool:
    return (
        isinstance(value, str | bytes | numbers.Number | bool)
        or value is None
        or (hasattr(value, "ndim") and value.ndim == 0)
    )


def infer_schema(example: Any) -> dict[str, Any]:
    """Schema of one input or output example (DataFrame, dict, records, array, list)."""
    import numpy as np
    import pandas as pd

    frame = _as_frame_for_inference(example)
    if frame is not None:
        if frame.shape[1] == 0:
            raise InvalidInput("cannot infer a signature from an example with no columns")
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            raise InvalidInput(f"example has duplicate column names: {names}")
        return {
            "kind": "columns",
            "columns": [_column_spec(n, frame.iloc[:, i]) for i, n in enumerate(names)],
        }
    if isinstance(example, np.ndarray | list | tuple):
        arr = np.asarray(example)
        if arr.ndim == 0:
            raise InvalidInput("cannot infer a signature from a scalar example")
        if arr.dtype.kind in "US":
            arr = arr.astype(object)
        return {"kind": "tensor", "dtype": str(arr.dtype), "shape": [-1, *arr.shape[1:]]}
    if isinstance(example, pd.Index):
        return infer_schema(np.asarray(example))
    raise InvalidInput(
        f"cannot infer a signature from a {type(example).__name__}: give a pandas DataFrame, "
        "a dict of columns, a list of records or a NumPy array"
    )


def infer_signature(input_example: Any, output_example: Any = None) -> dict[str, Any]:
    """Infer ``{"inputs", "outputs", "classes"}`` from an input (and output) example.

    ``input_example``: a pandas DataFrame (columns with types), a dict of columns, a list of
    records, or a NumPy array (a tensor). ``output_example`` (e.g. the model's prediction on
    the input) the same way; ``None`` leaves ``outputs`` null.
    """
    return validate_signature(
        {
            "inputs": infer_schema(input_example),
            "outputs": infer_schema(output_example) if output_example is not None else None,
            "classes": None,
        }
    )


# -- enforcement ------------------------------------------------------------------------------


def _fail(message: str, rule: str, column: str | None = None) -> ModelInputError:
    details: dict[str, Any] = {"rule": rule}
    if column is not None:
        details["column"] = column
    return ModelInputError(message, **details)


def _rows(mask: np.ndarray) -> str:
    import numpy as np

    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:_SHOW])
    more = f" and {len(idx) - _SHOW} more" if len(idx) > _SHOW else ""
    return f"{len(idx)} row(s): position {shown}{more}"


def _to_frame(data: Any, columns: list[dict[str, Any]]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    names = [c["name"] for c in columns]
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, pd.Series):
        frame = data.to_frame()
    elif isinstance(data, Mapping):
        if all(_is_scalar(v) for v in data.values()):
            frame = pd.DataFrame([dict(data)])
        else:
            try:
                frame = pd.DataFrame({k: list(v) for k, v in data.items()})
            except (TypeError, ValueError) as exc:
                raise _fail(
                    f"input dict of columns cannot form a table: {exc} "
                    "(rule: every column needs the same number of values)",
                    "bad_input",
                ) from None
    elif isinstance(data, list | tuple) and data and all(isinstance(r, Mapping) for r in data):
        frame = pd.DataFrame.from_records(list(data))
    elif isinstance(data, np.ndarray | list | tuple):
        arr = np.asarray(data, dtype=object) if isinstance(data, list | tuple) else data
        if isinstance(data, list | tuple) and len(data) == 0:
            raise _fail("input is empty: give at least one row", "bad_input")
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise _fail(
                f"input array has shape {tuple(arr.shape)}: a model with a columns signature "
                f"takes a 2-D array with {len(names)} columns, in the order {names} "
                "(rule: wrong_shape)",
                "wrong_shape",
            )
        frame = pd.DataFrame({n: arr[:, i] for i, n in enumerate(names)})
        if arr.dtype == object:
            frame = frame.infer_objects()
    else:
        raise _fail(
            f"cannot predict on a {type(data).__name__}: give a pandas DataFrame, a dict of "
            "columns, a list of records or a NumPy array",
            "bad_input",
        )
    labels = [str(c) for c in frame.columns]
    if len(set(labels)) != len(labels):
        dup = sorted({c for c in labels if labels.count(c) > 1})
        raise _fail(f"input has duplicate column(s) {dup} (rule: unique columns)", "bad_input")
    if labels != list(frame.columns):
        frame = frame.set_axis(labels, axis=1)
    return frame


def _type_error(name: str, typ: str, got: str) -> ModelInputError:
    return _fail(
        f"input column {name!r}: wrong type: expected {typ}, got {got} (rule: wrong_type)",
        "wrong_type",
        name,
    )


def _sample(values: Any) -> str:
    shown = [repr(_py(v)) for v in list(values)[:3]]
    return ", ".join(shown)


def _target_dtype(spec: dict[str, Any]) -> Any:
    import pandas as pd

    name = spec.get("dtype") or _DEFAULT_DTYPE.get(spec["type"])
    if name is None:
        return None
    try:
        return pd.api.types.pandas_dtype(name)
    except (TypeError, ValueError):
        default = _DEFAULT_DTYPE.get(spec["type"])
        return pd.api.types.pandas_dtype(default) if default else None


def _coerce_column(series: pd.Series, spec: dict[str, Any]) -> pd.Series:
    import numpy as np
    import pandas as pd
    from pandas.api import types as pdt

    name, typ = spec["name"], spec["type"]
    missing = series.isna().to_numpy(dtype=bool)
    if missing.any() and not spec.get("nullable", False):
        raise _fail(
            f"input column {name!r}: null/NaN in a non-nullable column ({_rows(missing)}) "
            "(rule: not_nullable; the signature says this column never has missing values)",
            "not_nullable",
            name,
        )
    dtype = series.dtype
    present = series[~missing]
    target = _target_dtype(spec)

    if typ in ("float", "double", "integer", "long", "boolean"):
        if isinstance(dtype, pd.CategoricalDtype):
            series = series.astype(object)
            dtype = series.dtype
            present = series[~missing]
        if pdt.is_bool_dtype(dtype):
            if typ != "boolean":
                raise _type_error(name, typ, "booleans")
            values = series
        elif pdt.is_numeric_dtype(dtype):
            values = series
        elif pdt.is_object_dtype(dtype):
            bad = [
                v
                for v in present.tolist()
                if not isinstance(v, numbers.Real) or (isinstance(v, bool) and typ != "boolean")
            ]
            if bad:
                raise _type_error(
                    name, typ, f"{type(bad[0]).__name__} value(s) such as {_sample(bad)}"
                )
            if typ == "boolean" and not all(isinstance(v, bool) for v in present.tolist()):
                values = pd.to_numeric(series)
            elif typ == "boolean":
                values = series
            else:
                values = pd.to_numeric(series)
        else:
            raise _type_error(name, typ, f"{_kind_name(dtype)} value(s) such as {_sample(present)}")

        if typ in ("integer", "long"):
            values = _check_integral(name, typ, values, missing)
            if missing.any():
                return values.astype(target if _is_extension(target) else "float64")
        elif typ == "boolean" and not pdt.is_bool_dtype(values.dtype):
            nums = values[~missing].to_numpy()
            if not np.isin(nums, [0, 1]).all():
                raise _type_error(
                    name,
                    typ,
                    f"numbers other than 0/1 such as {_sample(nums[~np.isin(nums, [0, 1])])}",
                )
            if missing.any():
                return values.astype("boolean" if not _is_extension(target) else target)
        elif typ in ("float", "double") and pdt.is_bool_dtype(values.dtype):
            raise _type_error(name, typ, "booleans")
        if missing.any() and typ == "boolean" and not _is_extension(target):
            return values.astype("boolean")
        return values.astype(target) if target is not None else values

    if typ == "string":
        if isinstance(dtype, pd.CategoricalDtype):
            series = series.astype(object)
            present = series[~missing]
        elif not (pdt.is_string_dtype(dtype) or pdt.is_object_dtype(dtype)):
            raise _type_error(name, typ, f"{_kind_name(dtype)} value(s) such as {_sample(present)}")
        bad = [v for v in present.tolist() if not isinstance(v, str)]
        if bad:
            raise _type_error(name, typ, f"{type(bad[0]).__name__} value(s) such as {_sample(bad)}")
        # Only to a pandas string dtype: numpy "<U" (what "str" means before pandas 3) would
        # turn missing values into the text "nan".
        if target is not None and _is_extension(target):
            try:
                return series.astype(target)
            except (TypeError, ValueError):
                return series
        return series

    if typ == "datetime":
        if pdt.is_datetime64_any_dtype(dtype):
            values = series
        elif pdt.is_string_dtype(dtype) or pdt.is_object_dtype(dtype):
            bad = [v for v in present.tolist() if not isinstance(v, str) and not hasattr(v, "year")]
            if bad:
                raise _type_error(
                    name, typ, f"{type(bad[0]).__name__} value(s) such as {_sample(bad)}"
                )
            try:
                values = pd.to_datetime(series, format="ISO8601")
            except (TypeError, ValueError):
                raise _type_error(
                    name, typ, f"text that is not an ISO date/time, such as {_sample(present)}"
                ) from None
        else:
            raise _type_error(name, typ, f"{_kind_name(dtype)} value(s) such as {_sample(present)}")
        if target is not None and pdt.is_datetime64_any_dtype(target):
            try:
                return values.astype(target)
            except (TypeError, ValueError):
                tz = getattr(target, "tz", None)
                if tz is not None and getattr(values.dtype, "tz", None) is None:
                    return values.dt.tz_localize(tz).astype(target)
                raise _type_error(name, typ, f"datetimes of dtype {values.dtype}") from None
        return values

    if typ == "category":
        categories = spec.get("categories")
        if categories is None:
            return series.astype("category")
        cat_dtype = pd.CategoricalDtype(categories=categories, ordered=spec.get("ordered", False))
        if isinstance(dtype, pd.CategoricalDtype) and dtype == cat_dtype:
            return series
        if isinstance(dtype, pd.CategoricalDtype):
            series = series.astype(object)
            present = series[~missing]
        kinds = {type(c) for c in categories}
        if kinds and all(issubclass(k, str) for k in kinds):
            bad = [v for v in present.tolist() if not isinstance(v, str)]
            if bad:
                raise _type_error(
                    name, typ, f"{type(bad[0]).__name__} value(s) such as {_sample(bad)}"
                )
        # Unknown values become missing (the model never saw them). Masked here, explicitly:
        # pandas deprecates (and will refuse) casting values outside the categories.
        known = series.isin(categories)
        if not bool(known[~missing].all()):
            series = series.where(known)
        return series.astype(cat_dtype)

    raise _fail(f"input column {name!r}: unknown signature type {typ!r}", "wrong_type", name)


def _is_extension(dtype: Any) -> bool:
    import pandas as pd

    return isinstance(dtype, pd.api.extensions.ExtensionDtype)


def _kind_name(dtype: Any) -> str:
    from pandas.api import types as pdt

    if pdt.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pdt.is_bool_dtype(dtype):
        return "boolean"
    if pdt.is_numeric_dtype(dtype):
        return "number"
    if pdt.is_string_dtype(dtype):
        return "string"
    return str(dtype)


def _check_integral(name: str, typ: str, values: pd.Series, missing: np.ndarray) -> pd.Series:
    import numpy as np
    from pandas.api import types as pdt

    if pdt.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)[~missing]
        frac = ~np.isfinite(arr) | (np.floor(arr) != arr)
        if frac.any():
            raise _type_error(
                name,
                typ,
                f"numbers with a fractional part, such as {_sample(arr[frac])} "
                "(only whole numbers can be cast safely)",
            )
    arr = values.to_numpy(dtype="float64", na_value=np.nan)[~missing]
    if typ == "integer" and arr.size and (arr.min() < -(2**31) or arr.max() > 2**31 - 1):
        raise _type_error(name, typ, "values outside the 32-bit integer range")
    return values


def prepare_tensor(schema: dict[str, Any], data: Any) -> np.ndarray:
    """``data`` checked against a tensor schema and cast to its dtype (see
    :func:`prepare_input`). Needs pandas only for a pandas input (a server answering from a
    compiled model never imports it)."""
    import sys

    import numpy as np

    pd = sys.modules.get("pandas")  # data can be a DataFrame only once pandas is imported
    if pd is not None and isinstance(data, pd.DataFrame | pd.Series):
        arr = data.to_numpy()
    elif isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, list | tuple):
        try:
            arr = np.asarray(data)
        except ValueError as exc:
            raise _fail(f"input tensor: ragged nested lists ({exc})", "wrong_shape") from None
    else:
        raise _fail(
            f"cannot predict on a {type(data).__name__}: this model takes a tensor "
            f"(a NumPy array of shape {schema['shape']})",
            "bad_input",
        )
    shape = schema["shape"]
    expected = "(" + ", ".join("any" if d == -1 else str(d) for d in shape) + ")"
    if arr.ndim != len(shape) or any(
        d != -1 and a != d for a, d in zip(arr.shape, shape, strict=False)
    ):
        raise _fail(
            f"input tensor: wrong shape {tuple(arr.shape)}: expected {expected} "
            "(rule: wrong_shape)",
            "wrong_shape",
        )
    target = np.dtype(schema["dtype"])
    kind = arr.dtype.kind
    if target.kind == "O" or target.kind in "US":
        return arr
    if kind in "OUS":
        try:
            converted = arr.astype(target)
        except (TypeError, ValueError):
            raise _fail(
                f"input tensor: wrong type: expected {target}, got {arr.dtype} values that are "
                "not numbers (rule: wrong_type)",
                "wrong_type",
            ) from None
        return converted
    if target.kind == "b" and kind != "b":
        if not np.isin(arr, [0, 1]).all():
            raise _fail(
                f"input tensor: wrong type: expected bool, got {arr.dtype} (rule: wrong_type)",
                "wrong_type",
            )
    if target.kind in "iu":
        if kind == "b" or kind == "c":
            raise _fail(
                f"input tensor: wrong type: expected {target}, got {arr.dtype} (rule: wrong_type)",
                "wrong_type",
            )
        if kind == "f" and (~np.isfinite(arr) | (np.floor(arr) != arr)).any():
            raise _fail(
                f"input tensor: wrong type: expected {target}, got floats with a fractional "
                "part or NaN (rule: wrong_type)",
                "wrong_type",
            )
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise _fail(
                f"input tensor: values outside the range of {target} (rule: wrong_type)",
                "wrong_type",
            )
    if target.kind == "f" and kind in "bc":
        raise _fail(
            f"input tensor: wrong type: expected {target}, got {arr.dtype} (rule: wrong_type)",
            "wrong_type",
        )
    return arr.astype(target, copy=False)


_INT64_SPAN: Final = (-(2**63), 2**63 - 1)
_EXACT_FLOAT_INT: Final = 2**53


def plain_values(spec: Mapping[str, Any], values: list[Any], lo: int = 0, hi: int = 0) -> bool:
    """True when every value of a column is a plain JSON value its type takes as it is, so a
    NumPy cast gives exactly what the full validation gives: numbers (ints up to 2**53, None
    and NaN only where nullable) for float/double; ints within [lo, hi] for integer/long;
    bools for boolean; strings for string. Anything else (and every refusal, with its message)
    is the full path's. Shared by :func:`_fast_column` and the compiled runtime's feeds."""
    typ = spec["type"]
    if typ in ("float", "double"):
        nullable = bool(spec.get("nullable", False))
        for v in values:
            t = type(v)
            if t is float:
                if v != v and not nullable:
                    return False
            elif t is int:
                if not -_EXACT_FLOAT_INT <= v <= _EXACT_FLOAT_INT:
                    return False
            elif v is not None or not nullable:
                return False
        return True
    want = {"integer": int, "long": int, "boolean": bool, "string": str}.get(typ)
    if want is None:
        return False
    for v in values:
        if type(v) is not want:
            return False
    if want is int:
        return all(lo <= v <= hi for v in values)
    return True


def int_bounds(typ: str, dtype: Any, np: Any) -> tuple[int, int]:
    """The values an integer column of ``dtype`` takes: the dtype's range, within int64 (and
    int32 for type ``integer``)."""
    info = np.iinfo(dtype)
    lo, hi = max(int(info.min), _INT64_SPAN[0]), min(int(info.max), _INT64_SPAN[1])
    if typ == "integer":
        lo, hi = max(lo, -(2**31)), min(hi, 2**31 - 1)
    return lo, hi


def _fast_column(spec: dict[str, Any], values: list[Any], np: Any, pd: Any) -> Any:
    """One column of plain JSON values cast to the signature's dtype with NumPy directly, or
    None when the column needs :func:`_coerce_column` (a type other than a plain number, bool
    or string, a missing value outside a float column, a value the cast could change or
    refuse, a pandas extension dtype...). Whenever this returns a column it is exactly what
    ``_coerce_column`` gives for the same values; it never decides a refusal, so every error
    message comes from the full path."""
    typ = spec["type"]
    target = _target_dtype(spec)
    if typ in ("float", "double"):
        if not isinstance(target, np.dtype) or target.kind != "f":
            return None
        return np.array(values, dtype=target) if plain_values(spec, values) else None
    if typ in ("integer", "long"):
        if not isinstance(target, np.dtype) or target.kind not in "iu":
            return None
        lo, hi = int_bounds(typ, target, np)
        return np.array(values, dtype=target) if plain_values(spec, values, lo, hi) else None
    if typ == "boolean":
        if not isinstance(target, np.dtype) or target.kind != "b":
            return None
        return np.array(values, dtype=bool) if plain_values(spec, values) else None
    if typ == "string":
        if not plain_values(spec, values):
            return None
        if target is not None and _is_extension(target):
            return pd.array(values, dtype=target)
        return values  # pandas infers the column's dtype, as the full path keeps it
    return None


def columns_each(
    columns: list[dict[str, Any]], data: Mapping[str, Any], cast: Any
) -> dict[str, Any] | None:
    """``cast(spec, values)`` of every column of a dict of equal-length lists that has exactly
    the signature's columns; None when the dict is not that, or ``cast`` gives None for a
    column (the full path then decides, and words any refusal)."""
    if len(data) != len(columns):
        return None
    n = -1
    out: dict[str, Any] = {}
    for spec in columns:
        values = data.get(spec["name"])
        if type(values) is not list or (n >= 0 and len(values) != n):
            return None
        n = len(values)
        col = cast(spec, values)
        if col is None:
            return None
        out[spec["name"]] = col
    return out if n > 0 else None


def _fast_columns(columns: list[dict[str, Any]], data: Mapping[str, Any]) -> Any:
    """The DataFrame :func:`prepare_input` would give for a dict of equal-length lists that
    has exactly the signature's columns, built column by column with NumPy; None to take the
    full path (which also gives every error message)."""
    import numpy as np
    import pandas as pd

    out = columns_each(columns, data, lambda spec, values: _fast_column(spec, values, np, pd))
    return None if out is None else pd.DataFrame(out)


def prepare_input(
    schema: dict[str, Any] | None,
    data: Any,
    *,
    extra_columns: str = "drop",
    warned: set[str] | None = None,
) -> Any:
    """Validate ``data`` against an input schema; return a DataFrame or array ready to predict.

    ``warned`` (a set kept by the caller) makes the extra-column warning appear once per name.
    With no schema the data passes through (dicts and records become a DataFrame).
    """
    import numpy as np
    import pandas as pd

    if extra_columns not in EXTRA_COLUMNS_MODES:
        raise InvalidInput(
            f"extra_columns must be one of {list(EXTRA_COLUMNS_MODES)}, not {extra_columns!r}"
        )
    if schema is None:
        if isinstance(data, Mapping):
            if all(_is_scalar(v) for v in data.values()):
                return pd.DataFrame([dict(data)])
            return pd.DataFrame({k: list(v) for k, v in data.items()})
        if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
            return pd.DataFrame.from_records(data)
        if isinstance(data, list | tuple):
            return np.asarray(data)
        return data
    if schema["kind"] == "tensor":
        return prepare_tensor(schema, data)

    columns = schema["columns"]
    if isinstance(data, Mapping):
        fast = _fast_columns(columns, data)
        if fast is not None:
            return fast
    frame = _to_frame(data, columns)
    names = [c["name"] for c in columns]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise _fail(
            f"input is missing column(s) {', '.join(repr(m) for m in missing)} "
            f"(rule: missing_column; the signature requires {names})",
            "missing_column",
            missing[0],
        )
    extra = [c for c in frame.columns if c not in set(names)]
    if extra:
        if extra_columns == "reject":
            raise _fail(
                f"input has extra column(s) {', '.join(repr(e) for e in extra)} not in the "
                "signature (rule: extra_column; extra_columns='reject'; drop them first or "
                "use extra_columns='drop')",
                "extra_column",
                extra[0],
            )
        new = [e for e in extra if warned is None or e not in warned]
        if new:
            warnings.warn(
                f"dropping input column(s) not in the model signature: "
                f"{', '.join(repr(e) for e in new)} (set extra_columns='reject' to refuse them)",
                UserWarning,
                stacklevel=3,
            )
            if warned is not None:
                warned.update(new)
    if len(frame) == 0:
        raise _fail("input is empty: give at least one row", "bad_input")
    out = {c["name"]: _coerce_column(frame[c["name"]], c) for c in columns}
    return pd.DataFrame(out, index=frame.index)


def output_schema_of(prediction: Any) -> dict[str, Any] | None:
    """Schema of a prediction (array -> tensor, DataFrame -> columns); None if not inferable."""
    try:
        return infer_schema(prediction)
    except InvalidInput:
        return None


def json_safe(value: Any) -> Any:
    """Recursively turn NumPy/pandas values into JSON-able Python (NaN -> None)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    value = _py(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Sequence | Mapping) and not isinstance(value, str):
        return json_safe(value)
    return value
