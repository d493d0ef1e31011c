"""Describe a dataset for tracking: a content digest, a schema and a row count.

A run records the data it was trained and evaluated on as :class:`DatasetInput` objects. Two
runs fed the same data must record the same digest, in any process and on any day, so the
digest is a SHA-256 over a canonical byte form of the content (column names, logical types and
values), never over a pickle or the in-memory layout of a frame:

* each column is converted to Apache Arrow and hashed chunk by chunk, so large frames and
  Parquet files are streamed and the digest does not depend on how the data is chunked;
* a value's bytes depend on its logical type only: ``string`` and ``large_string`` hash alike,
  a categorical hashes its decoded values, and a float ``NaN`` counts as missing, as pandas
  treats it;
* the index of a DataFrame is not content (``df.reset_index()`` first if it should be).

pandas and pyarrow are imported inside the functions: ``import dockyard`` stays fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from dockyard.core.entities import DatasetInput
from dockyard.core.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

__all__ = ["SCHEMA_TYPES", "dataset_digest", "describe_dataset", "infer_schema"]

#: The logical column types :func:`infer_schema` reports.
SCHEMA_TYPES: Final[tuple[str, ...]] = (
    "integer",
    "float",
    "boolean",
    "string",
    "category",
    "datetime",
)

# Bump when the canonical byte form changes, so old and new digests can never be confused.
_DIGEST_VERSION: Final = b"dockyard-dataset-digest/1\n"
# Rows hashed per step: bounds the temporary copies made while hashing one column.
_CHUNK_ROWS: Final = 1 << 18
_CONTEXT_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MAX_NAME_LEN: Final = 256
_CSV_SUFFIXES: Final = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz")
_PARQUET_SUFFIXES: Final = (".parquet", ".pq")


# --------------------------------------------------------------------------------------------
# Canonical types
# --------------------------------------------------------------------------------------------


def _canonical_type(t: pa.DataType) -> str:
    """A stable name for an Arrow type that ignores physical-only differences."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        ordered = "ordered" if t.ordered else "unordered"
        return f"dictionary<{_canonical_type(t.value_type)}, {ordered}>"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_view(t, "string"):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_view(t, "binary"):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_canonical_type(t.value_type)}>"
    return str(t)  # e.g. int64, double, bool, timestamp[ns, tz=UTC], decimal128(10, 2)


def _is_view(t: pa.DataType, kind: str) -> bool:
    import pyarrow as pa

    # string_view / binary_view exist only in newer pyarrow releases.
    check = getattr(pa.types, f"is_{kind}_view", None)
    return bool(check is not None and check(t))


def _schema_type(t: pa.DataType) -> str:
    """Map an Arrow type to one of :data:`SCHEMA_TYPES`."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return "category"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    # Strings, bytes, durations, times, nested and all-null columns: "string" is the one
    # type every value can be rendered as, which is what a schema check falls back on.
    return "string"


# --------------------------------------------------------------------------------------------
# Column hashing
# --------------------------------------------------------------------------------------------


class _ColumnHasher:
    """Hash one column fed in chunks; the result does not depend on the chunk boundaries.

    Three streams are kept apart, so that no byte sequence of one can be mistaken for
    another: *validity* gets one byte per row, *lengths* one 8-byte length per row of a
    variable-width column, *data* the concatenated value bytes. Feeding chunks one after the
    other appends to each stream, so the result is the same whatever the chunking.
    """

    def __init__(self, name: str, type_name: str) -> None:
        self.name = name
        self.type_name = type_name
        self.validity = hashlib.sha256()
        self.lengths = hashlib.sha256()
        self.data = hashlib.sha256()
        self.null_count = 0

    def update(self, arr: pa.Array) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(arr)
        if n == 0:
            return
        if pa.types.is_dictionary(arr.type):
            # Hash what the values are, not which code a dictionary happens to give them.
            arr = arr.dictionary_decode()
        valid = _validity(arr)
        t = arr.type
        if pa.types.is_floating(t):
            values = _fixed_width_values(arr, np.dtype(f"<f{t.bit_width // 8}"))
            nan = np.isnan(values)
            if nan.any():
                valid &= ~nan
                values[nan] = 0.0
            values[~valid] = 0.0
            self._feed(valid, values.tobytes())
        elif pa.types.is_boolean(t):
            values = pc.fill_null(arr, False).to_numpy(zero_copy_only=False)
            self._feed(valid, values.astype(np.uint8).tobytes())
        elif pa.types.is_null(t):
            self._feed(valid, b"")
        elif _is_fixed_width(t):
            width = t.bit_width // 8
            values = _fixed_width_values(arr, np.dtype("u1"), width).reshape(n, width)
            # Arrow leaves whatever bytes it likes under a null slot; zero them.
            values[~valid] = 0
            self._feed(valid, values.tobytes())
        elif _canonical_type(t) in ("string", "binary"):
            target = pa.large_string() if _canonical_type(t) == "string" else pa.large_binary()
            filled = pc.fill_null(arr.cast(target), "" if target == pa.large_string() else b"")
            self._feed_varlen(valid, filled)
        else:
            # Nested and exotic types: a canonical JSON rendering of each value. Slower, but
            # such columns are rare in tabular training data.
            texts = [
                json.dumps(v, sort_keys=True, default=str, separators=(",", ":"))
                for v in arr.to_pylist()
            ]
            self._feed_varlen(valid, pc.fill_null(pa.array(texts, type=pa.large_string()), ""))
        self.null_count += int(n - valid.sum())

    def _feed(self, valid: np.ndarray, payload: bytes) -> None:
        self.validity.update(valid.astype("u1").tobytes())
        self.data.update(payload)

    def _feed_varlen(self, valid: np.ndarray, arr: pa.Array) -> None:
        import numpy as np

        # After cast + fill_null the array is a fresh large_(string|binary) array: buffers
        # are [validity, int64 offsets, data]; ``arr.offset`` still counts for slices.
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offsets_buf, dtype="<i8", count=len(arr) + 1, offset=arr.offset * 8)
        lengths = np.diff(offsets)
        self.validity.update(valid.astype("u1").tobytes())
        self.lengths.update(lengths.astype("<i8").tobytes())
        if data_buf is not None and offsets[-1] > offsets[0]:
            self.data.update(memoryview(data_buf)[int(offsets[0]) : int(offsets[-1])])

    def digest(self) -> bytes:
        header = json.dumps([self.name, self.type_name], ensure_ascii=False).encode()
        return hashlib.sha256(
            len(header).to_bytes(8, "little")
            + header
            + self.validity.digest()
            + self.lengths.digest()
            + self.data.digest()
        ).digest()


def _is_fixed_width(t: pa.DataType) -> bool:
    try:
        width = t.bit_width
    except ValueError:  # variable-width types refuse bit_width
        return False
    return width > 0 and width % 8 == 0


def _validity(arr: pa.Array) -> np.ndarray:
    import numpy as np

    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return arr.is_valid().to_numpy(zero_copy_only=False).astype(bool)


def _fixed_width_values(arr: pa.Array, dtype: np.dtype, per_value: int = 1) -> np.ndarray:
    """The values of a fixed-width array as a writable NumPy copy (slice-aware).

    ``per_value`` items of ``dtype`` make one value (bytes of a decimal, say).
    """
    import numpy as np

    count = len(arr) * per_value
    buf = arr.buffers()[1]
    if buf is None:  # an all-null array may carry no value buffer
        return np.zeros(count, dtype=dtype)
    offset = arr.offset * per_value * dtype.itemsize
    return np.frombuffer(buf, dtype=dtype, count=count, offset=offset).copy()


def _finish(hashers: list[_ColumnHasher], num_rows: int) -> str:
    total = hashlib.sha256(_DIGEST_VERSION)
    total.update(len(hashers).to_bytes(8, "little"))
    total.update(num_rows.to_bytes(8, "little"))
    for h in hashers:
        total.update(h.digest())
    return total.hexdigest()


def _schema_of(columns: Iterable[tuple[str, str, int]]) -> dict[str, Any]:
    return {
        "columns": [
            {"name": name, "type": kind, "nullable": nulls > 0} for name, kind, nulls in columns
        ]
    }


# --------------------------------------------------------------------------------------------
# pandas frames
# --------------------------------------------------------------------------------------------


def _dense(series: pd.Series) -> pd.Series:
    import pandas as pd

    # Sparse storage is a memory layout, not content; Arrow would not know the dtype anyway.
    if isinstance(series.dtype, pd.SparseDtype):
        return series.sparse.to_dense()
    return series


def _column_as_arrow(series: pd.Series) -> tuple[pa.ChunkedArray, str]:
    """Convert one column to Arrow, with a fallback for object columns Arrow refuses."""
    import pyarrow as pa

    series = _dense(series)
    try:
        converted = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        # Mixed Python objects (say ints and strings in one column): hash a typed text
        # rendering of each value. ``repr`` is stable for plain values; an object whose repr
        # shows its memory address cannot have a stable digest anyway.
        import pandas as pd

        texts = [
            None if _is_missing(v, pd) else f"{type(v).__module__}.{type(v).__qualname__}:{v!r}"
            for v in series.tolist()
        ]
        return pa.chunked_array([pa.array(texts, type=pa.large_string())]), "object"
    if isinstance(converted, pa.Array):
        converted = pa.chunked_array([converted])
    return converted, _canonical_type(converted.type)


def _is_missing(value: object, pd: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like cells: isna is element-wise, so not missing
        return False


def _iter_chunks(arr: pa.ChunkedArray) -> Iterator[pa.Array]:
    for chunk in arr.chunks:
        for start in range(0, len(chunk), _CHUNK_ROWS):
            yield chunk.slice(start, _CHUNK_ROWS)


def _hash_frame(df: pd.DataFrame) -> tuple[str, dict[str, Any]]:
    """Digest and schema of a frame in one pass, one column at a time."""
    hashers: list[_ColumnHasher] = []
    kinds: list[str] = []
    # By position, not by label: pandas allows duplicate and non-string column labels.
    for j in range(df.shape[1]):
        series = df.iloc[:, j]
        arr, type_name = _column_as_arrow(series)
        hasher = _ColumnHasher(str(df.columns[j]), type_name)
        for chunk in _iter_chunks(arr):
            hasher.update(chunk)
        hashers.append(hasher)
        kinds.append("string" if type_name == "object" else _schema_type(arr.type))
    schema = _schema_of((h.name, k, h.null_count) for h, k in zip(hashers, kinds, strict=True))
    return _finish(hashers, len(df)), schema


def _require_frame(df: object, what: str) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(
            f"{what} expects a pandas DataFrame, got {type(df).__name__}",
            argument="df",
            type=type(df).__name__,
        )
    return df


def dataset_digest(df: pd.DataFrame) -> str:
    """A stable SHA-256 hex digest of a DataFrame's content.

    Parameters
    ----------
    df : pandas.DataFrame
        The data. Column names, their order, their logical types and every value count; the
        index does not.

    Returns
    -------
    str
        64 lowercase hex characters. The same content gives the same digest in every run and
        process; changing a cell, a column name or a column type gives another.

    Raises
    ------
    InvalidInput
        If ``df`` is not a DataFrame.

    Notes
    -----
    Columns are converted to Arrow and hashed in chunks of a quarter of a million rows; no
    pickling is involved. Physical details do not count: a pandas ``str`` column and an
    ``object`` column of the same strings, or the same Parquet data read back, hash alike.
    Float ``NaN`` and ``None`` are both "missing".
    """
    return _hash_frame(_require_frame(df, "dataset_digest"))[0]


def infer_schema(df: pd.DataFrame) -> dict[str, Any]:
    """The logical schema of a DataFrame, as a JSON-serialisable dict.

    Parameters
    ----------
    df : pandas.DataFrame
        The data.

    Returns
    -------
    dict
        ``{"columns": [{"name": str, "type": str, "nullable": bool}, ...]}`` in column order,
        where ``type`` is one of :data:`SCHEMA_TYPES` and ``nullable`` says whether the
        column holds a missing value (``None``, ``NaN``, ``NaT``, ``pd.NA``). Object columns
        are typed by their values; mixed or unknown values give ``"string"``.

    Raises
    ------
    InvalidInput
        If ``df`` is not a DataFrame.
    """
    import pyarrow as pa

    df = _require_frame(df, "infer_schema")
    columns = []
    for j in range(df.shape[1]):
        series = _dense(df.iloc[:, j])
        try:
            t = pa.array(series.iloc[:0], from_pandas=True).type
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            t = None
        if t is None or pa.types.is_null(t):
            # Object columns: an empty slice says nothing, convert the values themselves.
            arr, type_name = _column_as_arrow(series)
            kind = "string" if type_name == "object" else _schema_type(arr.type)
        else:
            kind = _schema_type(t)
        columns.append((str(df.columns[j]), kind, int(series.isna().sum())))
    return _schema_of(columns)


# --------------------------------------------------------------------------------------------
# describe_dataset
# --------------------------------------------------------------------------------------------


def _check_context(context: object) -> str:
    if not isinstance(context, str) or not _CONTEXT_RE.fullmatch(context):
        raise InvalidInput(
            f"context must be a short lowercase identifier such as 'training' or 'holdout' "
            f"(a letter, then up to 63 letters, digits or underscores), got {context!r}",
            argument="context",
            value=repr(context),
        )
    return context


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME_LEN:
        raise InvalidInput(
            f"name must be a non-empty string of at most {_MAX_NAME_LEN} characters, got {name!r}",
            argument="name",
            value=repr(name)[:300],
        )
    if any(ord(ch) < 32 for ch in name):
        raise InvalidInput(
            f"name must not contain control characters, got {name!r}",
            argument="name",
            value=repr(name)[:300],
        )
    return name


def _frame_from_array(arr: np.ndarray) -> pd.DataFrame:
    import pandas as pd

    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise InvalidInput(
            f"a NumPy array dataset must be 1- or 2-dimensional, got shape {arr.shape}",
            argument="data",
            shape=list(arr.shape),
        )
    return pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])])


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,
        ImportError,  # a compression codec that is not installed
    ) as exc:
        raise InvalidInput(
            f"cannot read CSV file {str(path)!r}: {exc}", argument="data", path=str(path)
        ) from exc


def _describe_parquet(path: Path) -> tuple[str, dict[str, Any], int]:
    """Digest, schema and row count of a Parquet file, streamed batch by batch.

    The result equals what the frame ``pandas.read_parquet(path)`` would give, without
    loading the file whole: columns that pandas stored for its index are skipped.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"cannot read Parquet file {str(path)!r}: {exc}", argument="data", path=str(path)
        ) from exc
    schema = pf.schema_arrow
    meta = schema.pandas_metadata or {}
    index_columns = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    names = [name for name in schema.names if name not in index_columns]
    hashers = [_ColumnHasher(name, _canonical_type(schema.field(name).type)) for name in names]
    try:
        for batch in pf.iter_batches(batch_size=_CHUNK_ROWS, columns=names):
            for hasher, column in zip(hashers, batch.columns, strict=True):
                hasher.update(column)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"cannot read Parquet file {str(path)!r}: {exc}", argument="data", path=str(path)
        ) from exc
    num_rows = pf.metadata.num_rows
    kinds = [_schema_type(schema.field(name).type) for name in names]
    columns = ((h.name, k, h.null_count) for h, k in zip(hashers, kinds, strict=True))
    return _finish(hashers, num_rows), _schema_of(columns), num_rows


def describe_dataset(
    data: pd.DataFrame | np.ndarray | str | os.PathLike[str],
    name: str,
    context: str = "training",
    source: str | None = None,
) -> DatasetInput:
    """Describe a dataset as a run input: content digest, schema and row count.

    Parameters
    ----------
    data : pandas.DataFrame, numpy.ndarray, str or path-like
        The data: a DataFrame; a 1- or 2-dimensional NumPy array (its columns are named
        ``f0``, ``f1``, ...); or the path of a ``.csv`` (optionally compressed, e.g.
        ``.csv.gz``) or ``.parquet`` / ``.pq`` file. A CSV file is read with
        ``pandas.read_csv`` defaults; a Parquet file is streamed, never loaded whole, and
        describes exactly like ``pandas.read_parquet`` of it.
    name : str
        A human name for the dataset, e.g. ``"fraud-2026-01"``.
    context : str, default "training"
        The role of the data in the run: a lowercase identifier (``training``,
        ``validation``, ``test``, ``evaluation``, ``production``, ``holdout``, or your own,
        matching ``[a-z][a-z0-9_]{0,63}``).
    source : str, optional
        Where the data came from (a URI, a table name). For a file it defaults to the
        file's absolute ``file://`` URI.

    Returns
    -------
    DatasetInput
        ``DatasetInput(name, digest, context, num_rows, schema, source)``; ``schema`` is the
        dict :func:`infer_schema` returns.

    Raises
    ------
    InvalidInput
        If ``name`` or ``context`` is malformed, the file does not exist or cannot be read,
        its type is not supported, or ``data`` is of an unsupported kind; the message names
        the offending value.
    """
    import numpy as np
    import pandas as pd

    name = _check_name(name)
    context = _check_context(context)
    if source is not None and not isinstance(source, str):
        raise InvalidInput(
            f"source must be a string or None, got {type(source).__name__}",
            argument="source",
            type=type(source).__name__,
        )

    if isinstance(data, (str, os.PathLike)):
        path = Path(os.fspath(data)).expanduser()
        lower = path.name.lower()
        if not lower.endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES):
            raise InvalidInput(
                f"unsupported dataset file type: {str(path)!r}; use a .csv or .parquet file",
                argument="data",
                path=str(path),
            )
        if not path.is_file():
            raise InvalidInput(
                f"dataset file not found: {str(path)!r}", argument="data", path=str(path)
            )
        if source is None:
            source = path.resolve().as_uri()
        if lower.endswith(_PARQUET_SUFFIXES):
            digest, schema, num_rows = _describe_parquet(path)
            return DatasetInput(name, digest, context, num_rows, schema, source)
        frame = _read_csv(path)
    elif isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, np.ndarray):
        frame = _frame_from_array(data)
    else:
        raise InvalidInput(
            f"unsupported dataset type {type(data).__name__}: pass a pandas DataFrame, "
            f"a NumPy array, or the path of a .csv or .parquet file",
            argument="data",
            type=type(data).__name__,
        )
    digest, schema = _hash_frame(frame)
    return DatasetInput(name, digest, context, len(frame), schema, source)
