"""Request payloads to model input, checked against the model's signature before batching.

Every accepted shape becomes a :class:`Payload`: for a model with a *columns* signature, a
dict of equal-length column lists (only the signature's columns, in its order); for a
*tensor* signature, a NumPy array already prepared by the model. Shapes (JSON routes):

* records: ``[{"amount": 1.0, ...}, ...]``, or ``{"records": [...]}``, ``{"dataframe_records":
  [...]}``, ``{"instances": [...]}``, ``{"inputs": [...]}`` with dicts inside;
* columns: ``{"amount": [1.0, 2.0], ...}``, or ``{"columns": {...}}``, ``{"inputs": {...}}``,
  ``{"instances": {...}}``;
* one record: ``{"amount": 1.0, ...}``;
* rows: ``[[1.0, "FR"], ...]`` (columns in the signature's order), also inside ``instances``
  or ``inputs``; ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``.

:func:`check_columns` is the fast, pure-Python check of each request (missing column, wrong
type, null where the signature forbids it, integer range, extra columns when refused) that
runs on the event loop before a request joins a batch, so one bad request is a 4xx for itself
and never fails a batch. Its messages name the column and the rule, like
:func:`dockyard.registry.packaging.signature.prepare_input`, which still runs on every batch
(types it does not know, datetimes and categories, are left to it; a request it refuses there
is isolated by the batch function).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.registry.packaging.errors import ModelInputError

__all__ = ["Payload", "check_columns", "payload_from_json"]

_BODY_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs", "records", "columns")
_IGNORED_KEYS = frozenset({"params", "id"})
MAX_SHOWN = 3


def fail(message: str, rule: str, column: str | None = None) -> ModelInputError:
    details: dict[str, Any] = {"rule": rule}
    if column is not None:
        details["column"] = column
    return ModelInputError(message, **details)


@dataclass(slots=True)
class Payload:
    """A request's input, ready to join a batch: ``columns`` (dict of lists) or ``array``."""

    rows: int
    columns: dict[str, list[Any]] | None = None
    array: Any = None

    def log_rows(self) -> list[dict[str, Any]]:
        """One dict per row, for the prediction log."""
        if self.columns is not None:
            names = list(self.columns)
            columns = list(self.columns.values())
            return [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]
        arr = self.array
        try:
            return [{"input": v} for v in arr.tolist()]
        except Exception:
            return []


def _column_names(schema: Mapping[str, Any] | None) -> list[str] | None:
    if schema is None or schema.get("kind") != "columns":
        return None
    return [c["name"] for c in schema["columns"]]


def _records_to_columns(
    records: Sequence[Any], names: list[str] | None
) -> tuple[dict[str, list[Any]], int]:
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise fail(
                f"record {i} is a {type(r).__name__}, not an object: give a list of records "
                "(objects of column -> value) (rule: bad_input)",
                "bad_input",
            )
    if names is None:
        keys: list[str] = []
        seen: set[str] = set()
        for r in records:
            for k in r:
                if k not in seen:
                    seen.add(k)
                    keys.append(k)
        names_used = keys
    else:
        names_used = names
        for name in names:
            absent = [i for i, r in enumerate(records) if name not in r]
            if absent:
                where = ", ".join(str(i) for i in absent[:MAX_SHOWN])
                more = f" and {len(absent) - MAX_SHOWN} more" if len(absent) > MAX_SHOWN else ""
                raise fail(
                    f"input is missing column {name!r} (in record {where}{more}) "
                    f"(rule: missing_column; the signature requires {names})",
                    "missing_column",
                    name,
                )
    extra = _extra_of(records, names)
    cols = {n: [r.get(n) for r in records] for n in [*names_used, *extra]}
    return cols, len(records)


def _extra_of(records: Sequence[Mapping[str, Any]], names: list[str] | None) -> list[str]:
    if names is None or not records:
        return []
    known = set(names)
    return [str(k) for k in records[0] if k not in known]


def _rows_to_columns(rows: Sequence[Any], names: list[str] | None) -> dict[str, list[Any]]:
    if names is None:
        raise fail(
            "this model has no column signature: send records (objects of column -> value) or "
            "a dict of columns, not rows of values (rule: bad_input)",
            "bad_input",
        )
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple) or len(row) != len(names):
            got = len(row) if isinstance(row, list | tuple) else type(row).__name__
            raise fail(
                f"row {i} has {got} values: each row needs {len(names)}, one per column in the "
                f"order {names} (rule: wrong_shape)",
                "wrong_shape",
            )
    return {n: [row[j] for row in rows] for j, n in enumerate(names)}


def _dict_to_columns(data: Mapping[str, Any], names: list[str] | None) -> dict[str, list[Any]]:
    if all(not isinstance(v, list | tuple | Mapping) for v in data.values()):
        return {str(k): [v] for k, v in data.items()}  # one record
    out: dict[str, list[Any]] = {}
    for k, v in data.items():
        if not isinstance(v, list | tuple):
            raise fail(
                f"input column {k!r} is a {type(v).__name__}: in a dict of columns every "
                "value is a list of the column's values (rule: bad_input)",
                "bad_input",
                str(k),
            )
        out[str(k)] = list(v)
    return out


def _select(
    cols: dict[str, list[Any]], names: list[str] | None, extra_columns: str
) -> tuple[dict[str, list[Any]], int]:
    if names is not None:
        known = set(names)
        extra = [k for k in cols if k not in known]
        missing = [n for n in names if n not in cols]
        if missing:
            raise fail(
                f"input is missing column(s) {', '.join(repr(m) for m in missing)} "
                f"(rule: missing_column; the signature requires {names})",
                "missing_column",
                missing[0],
            )
        if extra and extra_columns == "reject":
            raise fail(
                f"input has extra column(s) {', '.join(repr(e) for e in extra[:MAX_SHOWN])} not "
                "in the model signature (rule: extra_column; the server refuses them: setting "
                "model_extra_columns=reject)",
                "extra_column",
                extra[0],
            )
        cols = {n: cols[n] for n in names}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        shown = ", ".join(f"{k!r}: {len(v)}" for k, v in list(cols.items())[:6])
        raise fail(
            f"input columns have different lengths ({shown}) (rule: every column needs the "
            "same number of values)",
            "bad_input",
        )
    n = lengths.pop() if lengths else 0
    if n == 0:
        raise fail("input is empty: give at least one row (rule: bad_input)", "bad_input")
    return cols, n


def payload_from_json(
    body: Any, model: Any, *, extra_columns: str = "drop", max_rows: int | None = None
) -> Payload:
    """The payload of a parsed JSON body for ``model`` (a LoadedModel), checked."""
    schema = model.signature.get("inputs")
    names = _column_names(schema)
    data: Any = body
    form = "auto"
    if isinstance(body, Mapping):
        present = [k for k in _BODY_KEYS if k in body]
        # A dict of columns may itself have a column named like one of the keys.
        if present and not (names is not None and set(present) <= set(names)):
            if len(present) > 1:
                raise fail(
                    f"the body has {', '.join(present)}: give exactly one of "
                    f"{', '.join(_BODY_KEYS)} (rule: bad_input)",
                    "bad_input",
                )
            form = present[0]
            data = body[form]
            params = body.get("params")
            if params:
                raise fail(
                    "'params' are not supported by this server (rule: bad_input)", "bad_input"
                )
    if schema is not None and schema.get("kind") == "tensor":
        arr = data
        if form == "dataframe_split" and isinstance(data, Mapping):
            arr = data.get("data")
        prepared = model.prepare(arr)
        rows = int(prepared.shape[0]) if getattr(prepared, "ndim", 0) else 1
        _check_rows(rows, max_rows)
        return Payload(rows=rows, array=prepared)
    if form == "dataframe_split":
        if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
            raise fail(
                "dataframe_split must be an object with 'columns' (names) and 'data' (rows) "
                "(rule: bad_input)",
                "bad_input",
            )
        cnames = data.get("columns")
        if cnames is None:
            cols = _rows_to_columns(data["data"], names)
        else:
            if not isinstance(cnames, list) or not all(isinstance(c, str) for c in cnames):
                raise fail("dataframe_split.columns must be a list of names", "bad_input")
            cols = _rows_to_columns(data["data"], cnames)
        out, n = _select(cols, names, extra_columns)
    elif isinstance(data, list):
        if not data:
            raise fail("input is empty: give at least one row (rule: bad_input)", "bad_input")
        if isinstance(data[0], Mapping):
            cols, _ = _records_to_columns(data, names)
        elif isinstance(data[0], list | tuple):
            cols = _rows_to_columns(data, names)
        elif names is not None and len(names) == len(data):
            cols = _rows_to_columns([data], names)  # one row of values
        else:
            raise fail(
                "cannot read the input: give records (a list of objects), a dict of columns, "
                "rows of values or one of " + ", ".join(_BODY_KEYS) + " (rule: bad_input)",
                "bad_input",
            )
        out, n = _select(cols, names, extra_columns)
    elif isinstance(data, Mapping):
        cols = _dict_to_columns(
            {k: v for k, v in data.items() if form != "auto" or k not in _IGNORED_KEYS}, names
        )
        out, n = _select(cols, names, extra_columns)
    else:
        raise fail(
            f"cannot read a JSON {type(data).__name__} as model input: give records, a dict of "
            "columns or one of " + ", ".join(_BODY_KEYS) + " (rule: bad_input)",
            "bad_input",
        )
    _check_rows(n, max_rows)
    if schema is not None:
        check_columns(out, schema)
    return Payload(rows=n, columns=out)


def _check_rows(n: int, max_rows: int | None) -> None:
    if max_rows is not None and n > max_rows:
        raise fail(
            f"the request has {n} rows, more than the server's limit of {max_rows} per request "
            "(rule: too_many_rows; send smaller batches)",
            "too_many_rows",
        )


_INT32 = (-(2**31), 2**31 - 1)


def _kind(v: Any) -> str:
    return "boolean" if isinstance(v, bool) else type(v).__name__


def _wrong(name: str, typ: str, bad: list[Any]) -> ModelInputError:
    shown = ", ".join(repr(v) for v in bad[:MAX_SHOWN])
    return fail(
        f"input column {name!r}: wrong type: expected {typ}, got {_kind(bad[0])} value(s) such "
        f"as {shown} (rule: wrong_type)",
        "wrong_type",
        name,
    )


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


_NONE = type(None)
#: Per type, the Python types a column may hold without a closer look (for integers, within
#: the type's range): a column of only these passes every rule of ``_check_column``.
_PLAIN: dict[str, frozenset[type]] = {
    "float": frozenset({float, int, _NONE}),  # float columns are always nullable
    "double": frozenset({float, int, _NONE}),
    "integer": frozenset({int}),
    "long": frozenset({int}),
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
}
_RANGE = {"integer": _INT32, "long": (-(2**63), 2**63 - 1)}


def check_columns(cols: Mapping[str, list[Any]], schema: Mapping[str, Any]) -> None:
    """Check each column's values against the signature (the rules that need no pandas).

    A column whose values are all of the plain Python types its signature type takes (and,
    for integers, in range) passes at once; any other column gets every rule, and the
    message naming the column and the rule."""
    for spec in schema["columns"]:
        values = cols.get(spec["name"])
        if values is None:
            continue
        typ = spec["type"]
        plain = _PLAIN.get(typ)
        if plain is not None:
            kinds = set(map(type, values))
            if spec.get("nullable", False) and _NONE in kinds:
                kinds.discard(_NONE)
                present = [v for v in values if v is not None]
            else:
                present = values
            if kinds <= plain:
                bounds = _RANGE.get(typ)
                if bounds is None or not present:
                    continue
                if bounds[0] <= min(present) and max(present) <= bounds[1]:
                    continue
        _check_column(spec, values)


def _check_column(spec: Mapping[str, Any], values: list[Any]) -> None:
    """Every rule of ``check_columns`` for one column."""
    name, typ = spec["name"], spec["type"]
    nullable = bool(spec.get("nullable", False)) or typ in ("float", "double")
    nulls = [i for i, v in enumerate(values) if _is_null(v)]
    if nulls and not nullable:
        where = ", ".join(str(i) for i in nulls[:MAX_SHOWN])
        raise fail(
            f"input column {name!r}: null/NaN in a non-nullable column ({len(nulls)} "
            f"row(s): position {where}) (rule: not_nullable; the signature says this column "
            "never has missing values)",
            "not_nullable",
            name,
        )
    if typ in ("float", "double"):
        bad = [
            v
            for v in values
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
        ]
        if bad:
            raise _wrong(name, typ, bad)
    elif typ in ("integer", "long"):
        bad = [
            v
            for v in values
            if v is not None
            and (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or (isinstance(v, float) and not (math.isfinite(v) and v.is_integer()))
            )
        ]
        if bad:
            if all(isinstance(v, float) for v in bad):
                raise fail(
                    f"input column {name!r}: wrong type: expected {typ}, got numbers with a "
                    f"fractional part, such as {', '.join(repr(v) for v in bad[:MAX_SHOWN])} "
                    "(rule: wrong_type)",
                    "wrong_type",
                    name,
                )
            raise _wrong(name, typ, bad)
        if typ == "integer":
            out = [v for v in values if v is not None and not _INT32[0] <= v <= _INT32[1]]
            if out:
                raise fail(
                    f"input column {name!r}: wrong type: expected integer, got values "
                    "outside the 32-bit integer range (rule: wrong_type)",
                    "wrong_type",
                    name,
                )
        else:
            out = [v for v in values if v is not None and not -(2**63) <= v < 2**63]
            if out:
                raise fail(
                    f"input column {name!r}: wrong type: expected long, got values outside "
                    "the 64-bit integer range (rule: wrong_type)",
                    "wrong_type",
                    name,
                )
    elif typ == "boolean":
        bad = [
            v
            for v in values
            if v is not None
            and not isinstance(v, bool)
            and not (isinstance(v, int) and v in (0, 1))
        ]
        if bad:
            raise _wrong(name, typ, bad)
    elif typ == "string":
        bad = [v for v in values if v is not None and not isinstance(v, str)]
        if bad:
            raise _wrong(name, typ, bad)
