"""Ground-truth labels: they arrive after the predictions, keyed by request id, and join them.

Purpose: ``POST /endpoints/{name}/labels`` and ``dockyard labels ingest labels.csv`` hand
batches of (request id, label) to :class:`LabelService` (permission and audit) which stores
them with a :class:`LabelStore`; the monitors read them back with :meth:`LabelStore.read_labels`
and attach them to prediction log records with :func:`join_labels`.

Layout (append-only; files are never rewritten)::

    <root>/labels/endpoint=<name>/date=<YYYY-MM-DD>/<ingest time ns>-<uuid>.parquet

Decisions
    * **Schema.** ``request_id`` (string), ``row`` (int32), ``label`` (typed as Arrow infers
      it per file: int64, float64, string or bool; unified like the prediction log when
      files differ, text on conflict), ``ingested_at`` (int64 epoch ms), ``ingest_ns``
      (int64, ordering), ``ingested_by`` (string), ``seq`` (int64, position in its batch).
    * **Rows.** A label names a prediction row by ``(request_id, row)``, as the prediction log
      does; ``row`` defaults to 0 -- the only row of a single-row request, the common case
      of ``request id -> label``. Label each row of a multi-row request with its ``row``.
    * **Latest wins.** Labels are corrected by ingesting again: :meth:`LabelStore.read_labels`
      keeps, per ``(request_id, row)``, the label of the latest ingest (and, within one
      batch, the last occurrence). Nothing is ever deleted or updated in place.
    * **Validation** before anything is written: a missing id or label column, an empty id,
      an empty label, a label that is not a scalar (list, object), or a negative or
      non-integer ``row`` is an :class:`~dockyard.core.errors.InvalidInput` naming the row
      (1-based data row; for a CSV file also its line) and the column. A batch is written
      whole or not at all: its files are staged under ``<root>/tmp`` and published only once
      every row validated.
    * **Encryption**: with a cipher, each file is encrypted like the prediction log's.

Boundaries: a service module (serving), framework-free; pyarrow is imported on first use.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import InvalidInput, NotFound
from dockyard.core.serving_entities import check_endpoint_name
from dockyard.governance.audit import Actor, record_event
from dockyard.governance.permissions import ENDPOINT_DEPLOY, ENDPOINT_READ, Authorizer, enforced
from dockyard.serving.predlog import _canonical, _decode, _encode, _parquet_bytes, _Root

if TYPE_CHECKING:
    import pyarrow as pa

    from dockyard.artifacts.crypto import BlobCipher
    from dockyard.store.base import Store

__all__ = [
    "LABELS_DIR",
    "LABEL_PERMISSIONS",
    "IngestResult",
    "LabelService",
    "LabelStore",
    "join_labels",
]

LABELS_DIR = "labels"
MAX_ID_LENGTH = 256
#: Rows per written file (and per progress callback).
BATCH_ROWS = 100_000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestResult:
    """What an ingest stored: the endpoint, the number of labels and of files."""

    endpoint: str
    count: int
    files: int

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "count": self.count, "files": self.files}


# -- validation ----------------------------------------------------------------------------------


def _where(i: int, line_offset: int | None) -> str:
    """Human position of data row ``i`` (0-based over the whole input)."""
    text = f"row {i + 1}"
    if line_offset is not None:
        text += f" (line {i + 1 + line_offset})"
    return text


def _validate(
    table: pa.Table,
    *,
    id_column: str,
    label_column: str,
    row_column: str,
    start: int,
    line_offset: int | None,
    source: str,
) -> pa.Table:
    """(request_id, row, label) of one batch, checked; ``start`` = index of its first row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column_names
    for col, what in ((id_column, "request ids"), (label_column, "labels")):
        if col not in names:
            raise InvalidInput(
                f"{source} has no column {col!r} with the {what} (columns: "
                f"{', '.join(map(repr, names)) or 'none'}); name it with "
                f"--{'id' if col == id_column else 'label'}-column",
                column=col,
            )
    ids = table.column(id_column).combine_chunks()
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        if pa.types.is_integer(ids.type) or pa.types.is_null(ids.type):
            ids = ids.cast(pa.string())
        else:
            raise InvalidInput(
                f"column {id_column!r} of {source} must hold request ids (text), not {ids.type}",
                column=id_column,
            )
    ids = ids.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(ids)
    bad = pc.or_kleene(pc.is_null(trimmed), pc.equal(pc.utf8_length(trimmed), 0))
    bad = pc.fill_null(bad, True)
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise InvalidInput(
            f"{source}: {_where(start + i, line_offset)} has an empty request id "
            f"(column {id_column!r})",
            column=id_column,
            row=start + i + 1,
        )
    too_long = pc.greater(pc.utf8_length(ids), MAX_ID_LENGTH)
    if pc.any(too_long).as_py():
        i = pc.index(too_long, True).as_py()
        raise InvalidInput(
            f"{source}: {_where(start + i, line_offset)} has a request id longer than "
            f"{MAX_ID_LENGTH} characters (column {id_column!r})",
            column=id_column,
            row=start + i + 1,
        )
    labels = table.column(label_column).combine_chunks()
    lt = labels.type
    if pa.types.is_dictionary(lt):
        labels = labels.cast(lt.value_type)
        lt = lt.value_type
    if (
        pa.types.is_nested(lt)
        or pa.types.is_map(lt)
        or pa.types.is_union(lt)
        or pa.types.is_binary(lt)
        or pa.types.is_large_binary(lt)
    ):
        raise InvalidInput(
            f"column {label_column!r} of {source} holds {lt} values; a label is one scalar "
            "(a class, a number, true/false)",
            column=label_column,
        )
    if labels.null_count:
        i = pc.index(pc.is_null(labels), True).as_py()
        raise InvalidInput(
            f"{source}: {_where(start + i, line_offset)} has no label (column {label_column!r} "
            "is empty)",
            column=label_column,
            row=start + i + 1,
        )
    if pa.types.is_null(lt) or len(labels) == 0:
        labels = labels.cast(pa.string())
    if row_column in names:
        rows = table.column(row_column).combine_chunks()
        if not pa.types.is_integer(rows.type):
            if pa.types.is_null(rows.type):
                rows = pa.nulls(len(rows), pa.int32())
            else:
                raise InvalidInput(
                    f"column {row_column!r} of {source} must hold row numbers (integers >= 0), "
                    f"not {rows.type}",
                    column=row_column,
                )
        rows = pc.fill_null(rows, 0)
        neg = pc.less(rows, 0)
        if pc.any(neg).as_py():
            i = pc.index(neg, True).as_py()
            raise InvalidInput(
                f"{source}: {_where(start + i, line_offset)} has a negative row number "
                f"(column {row_column!r})",
                column=row_column,
                row=start + i + 1,
            )
        rows = rows.cast(pa.int32())
    else:
        rows = pa.array([0] * len(ids), pa.int32())
    return pa.table({"request_id": ids, "row": rows, "label": labels})


def _from_records(rows: Iterable[Any], id_column: str, label_column: str, row_column: str) -> Any:
    """Tuples ``(request_id, label[, row])`` or dicts, as a table; scalars checked by row."""
    import pyarrow as pa

    ids: list[Any] = []
    labels: list[Any] = []
    nums: list[Any] = []
    for i, r in enumerate(rows):
        if isinstance(r, Mapping):
            if id_column not in r:
                raise InvalidInput(f"row {i + 1} has no {id_column!r}", row=i + 1)
            if label_column not in r:
                raise InvalidInput(f"row {i + 1} has no {label_column!r}", row=i + 1)
            rid, label, num = r[id_column], r[label_column], r.get(row_column)
        elif isinstance(r, list | tuple) and len(r) in (2, 3):
            rid, label = r[0], r[1]
            num = r[2] if len(r) == 3 else None
        else:
            raise InvalidInput(
                f"row {i + 1} must be (request_id, label), (request_id, label, row) or an "
                f"object with {id_column!r} and {label_column!r}, got {type(r).__name__}",
                row=i + 1,
            )
        if not isinstance(rid, str | int) or isinstance(rid, bool):
            raise InvalidInput(
                f"row {i + 1}: the request id must be text, got {type(rid).__name__}", row=i + 1
            )
        if label is not None and not isinstance(label, str | int | float | bool):
            raise InvalidInput(
                f"row {i + 1}: a label is one scalar (a class, a number, true/false), got "
                f"{type(label).__name__}",
                row=i + 1,
                column=label_column,
            )
        if num is not None and (isinstance(num, bool) or not isinstance(num, int)):
            raise InvalidInput(
                f"row {i + 1}: the row number must be an integer >= 0, got {num!r}", row=i + 1
            )
        ids.append(str(rid))
        labels.append(label)
        nums.append(num)
    kinds = {type(v) for v in labels if v is not None}
    if len(kinds) > 1 and (bool in kinds or str in kinds):
        labels = [_canonical(v) for v in labels]  # mixed kinds: stored as text
    try:
        label_arr = pa.array(labels)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        label_arr = pa.array([_canonical(v) for v in labels], pa.string())
    return pa.table(
        {
            id_column: pa.array(ids, pa.string()),
            label_column: label_arr,
            row_column: pa.array(nums, pa.int64()),
        }
    )


# -- the store -----------------------------------------------------------------------------------


class LabelStore:
    """Ground-truth labels of every endpoint, under ``<root>/labels/`` (see the module notes)."""

    def __init__(self, root_uri: str, cipher: BlobCipher | None = None) -> None:
        self._root = _Root(root_uri)
        self.root_uri = root_uri
        self._cipher = cipher

    def _batches(
        self,
        data: Any,
        id_column: str,
        label_column: str,
        row_column: str,
    ) -> tuple[Iterable[Any], int | None, str]:
        """(Arrow record batches or tables, line offset for messages, source name)."""
        import pyarrow as pa

        if isinstance(data, str | os.PathLike):
            path = Path(data)
            if not path.is_file():
                raise NotFound(f"labels file {path} does not exist", path=str(path))
            name = path.name.lower()
            if name.endswith((".parquet", ".pq")):
                import pyarrow.parquet as pq

                return pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS), None, path.name
            if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".tsv")):
                import pyarrow.csv as pcsv

                parse = pcsv.ParseOptions(delimiter="\t" if name.endswith(".tsv") else ",")
                convert = pcsv.ConvertOptions(
                    column_types={id_column: pa.string()}, strings_can_be_null=False
                )
                read = pcsv.ReadOptions(block_size=8 << 20)
                try:
                    reader = pcsv.open_csv(
                        path, read_options=read, parse_options=parse, convert_options=convert
                    )
                except (pa.ArrowInvalid, OSError) as exc:
                    raise InvalidInput(f"labels file {path.name} cannot be read: {exc}") from None
                return _csv_batches(reader, path.name), 1, path.name
            raise InvalidInput(
                f"labels file {path.name!r} must be .csv, .tsv or .parquet", path=str(path)
            )
        if hasattr(data, "iloc") and hasattr(data, "columns"):  # a pandas DataFrame
            data = pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        if isinstance(data, pa.Table):
            if data.num_rows <= BATCH_ROWS:
                return [data], None, "the labels"
            return data.to_batches(max_chunksize=BATCH_ROWS), None, "the labels"
        if isinstance(data, Mapping):
            values = list(data.values())
            if id_column in data and values and all(isinstance(v, list) for v in values):
                # A dict of columns: {"request_id": [...], "label": [...], "row": [...]}.
                try:
                    return [pa.table(dict(data))], None, "the labels"
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise InvalidInput(f"the label columns cannot be read: {exc}") from None
            # {request id: label}: the plain form of `POST /endpoints/{name}/labels`.
            return (
                [_from_records(data.items(), id_column, label_column, row_column)],
                None,
                "the labels",
            )
        if isinstance(data, Iterable) and not isinstance(data, str | bytes):
            return (
                [_from_records(data, id_column, label_column, row_column)],
                None,
                "the labels",
            )
        raise InvalidInput(f"cannot read labels from a {type(data).__name__}")

    def ingest(
        self,
        endpoint: str,
        data: Any,
        *,
        id_column: str = "request_id",
        label_column: str = "label",
        row_column: str = "row",
        ingested_by: str | None = None,
        progress: Progress | None = None,
    ) -> IngestResult:
        """Store a batch of labels for ``endpoint``; returns how many.

        ``data``: a mapping ``{request_id: label}``; an iterable of ``(request_id, label)``
        or ``(request_id, label, row)`` or of dicts; a dict of columns; a pyarrow Table /
        RecordBatch; a pandas DataFrame (tables over :data:`BATCH_ROWS` rows are written in
        several files); or the path of a CSV, TSV or
        Parquet file (streamed in batches of :data:`BATCH_ROWS`). ``progress`` is called with
        the rows done so far after each batch. Nothing is published unless every row is valid.
        """
        check_endpoint_name(endpoint)
        batches, line_offset, source = self._batches(data, id_column, label_column, row_column)
        now_ns = time.time_ns()
        by = ingested_by or ""
        date = datetime.fromtimestamp(now_ns / 1e9, tz=UTC).strftime("%Y-%m-%d")
        base = [LABELS_DIR, f"endpoint={endpoint}", f"date={date}"]
        staged: list[tuple[list[str], list[str]]] = []
        done = 0
        try:
            import pyarrow as pa

            for n, batch in enumerate(batches):
                table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
                if table.num_rows == 0:
                    continue
                clean = _validate(
                    table,
                    id_column=id_column,
                    label_column=label_column,
                    row_column=row_column,
                    start=done,
                    line_offset=line_offset,
                    source=source,
                )
                rows = clean.num_rows
                clean = clean.append_column(
                    "ingested_at", pa.array([now_ns // 1_000_000] * rows, pa.int64())
                )
                clean = clean.append_column("ingest_ns", pa.array([now_ns] * rows, pa.int64()))
                clean = clean.append_column("ingested_by", pa.array([by] * rows, pa.string()))
                clean = clean.append_column("seq", pa.array(range(done, done + rows), pa.int64()))
                name = f"{now_ns:020d}-{uuid.uuid4().hex[:12]}-{n:05d}.parquet"
                tmp = ["tmp", f"labels-{uuid.uuid4().hex}.parquet.part"]
                self._root.write(tmp, _encode(_parquet_bytes(clean), self._cipher))
                staged.append((tmp, [*base, name]))
                done += rows
                if progress is not None:
                    progress(done)
        except BaseException:
            for tmp, _ in staged:
                self._root.remove(tmp)
            raise
        for tmp, final in staged:
            self._root.move(tmp, final)
        return IngestResult(endpoint, done, len(staged))

    def files(self, endpoint: str) -> list[list[str]]:
        """The endpoint's label files, as path parts."""
        base = [LABELS_DIR, f"endpoint={endpoint}"]
        out = []
        for date in self._root.list_dir(base):
            if not date.startswith("date="):
                continue
            for name in self._root.list_dir([*base, date]):
                if name.endswith(".parquet") and not name.startswith("."):
                    out.append([*base, date, name])
        return out

    def read_all(self, endpoint: str) -> pa.Table:
        """Every label ever ingested for the endpoint (corrections included), oldest first."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from dockyard.serving.predlog import unify_tables

        check_endpoint_name(endpoint)
        tables = []
        for parts in self.files(endpoint):
            data = _decode(self._root.read(parts), self._cipher, f"labels file {'/'.join(parts)}")
            tables.append(pq.read_table(pa.BufferReader(data)))
        if not tables:
            return pa.table(
                {
                    "request_id": pa.array([], pa.string()),
                    "row": pa.array([], pa.int32()),
                    "label": pa.array([], pa.string()),
                    "ingested_at": pa.array([], pa.int64()),
                    "ingest_ns": pa.array([], pa.int64()),
                    "ingested_by": pa.array([], pa.string()),
                    "seq": pa.array([], pa.int64()),
                }
            )
        table = unify_tables(tables)
        return table.sort_by([("ingest_ns", "ascending"), ("seq", "ascending")])

    def read_labels(self, endpoint: str) -> pa.Table:
        """The current label of each ``(request_id, row)``: the latest ingest wins (and the
        last occurrence within a batch). Columns: request_id, row, label, ingested_at,
        ingested_by."""
        import pyarrow as pa

        table = self.read_all(endpoint)
        if table.num_rows == 0:
            return table.select(["request_id", "row", "label", "ingested_at", "ingested_by"])
        table = table.append_column("_i", pa.array(range(table.num_rows), pa.int64()))
        last = table.group_by(["request_id", "row"]).aggregate([("_i", "max")])
        import pyarrow.compute as pc

        idx = pc.sort_indices(last.column("_i_max"))
        keep = pc.take(last.column("_i_max"), idx)
        return table.take(keep).select(["request_id", "row", "label", "ingested_at", "ingested_by"])


def _csv_batches(reader: Any, name: str) -> Iterable[Any]:
    import pyarrow as pa

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"labels file {name} cannot be read: {exc}") from None
        yield batch


def join_labels(predictions: pa.Table, labels: pa.Table) -> pa.Table:
    """``predictions`` with a ``label`` column: each row's current label by
    ``(request_id, row)`` (a left join; unlabeled rows get null), rows in their order.

    ``labels`` is what :meth:`LabelStore.read_labels` returns (one label per key). A
    ``label`` column already in ``predictions`` is replaced."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for t, what in ((predictions, "predictions"), (labels, "labels")):
        for col in ("request_id", "row"):
            if col not in t.column_names:
                raise InvalidInput(f"the {what} table has no {col!r} column to join on")
    if "label" not in labels.column_names:
        raise InvalidInput("the labels table has no 'label' column")
    if "label" in predictions.column_names:
        predictions = predictions.drop_columns(["label"])
    n = predictions.num_rows
    left = pa.table(
        {
            "request_id": predictions.column("request_id").cast(pa.string()),
            "row": predictions.column("row").cast(pa.int32()),
            "_i": pa.array(range(n), pa.int64()),
        }
    )
    right = pa.table(
        {
            "request_id": labels.column("request_id").cast(pa.string()),
            "row": labels.column("row").cast(pa.int32()),
            "_j": pa.array(range(labels.num_rows), pa.int64()),
        }
    )
    # Only keys and positions go through the join (Acero refuses list payloads such as
    # proba); the label is then taken by position, and the order of predictions restored.
    joined = left.join(right, keys=["request_id", "row"], join_type="left outer")
    joined = joined.sort_by([("_i", "ascending")])
    label = pc.take(labels.column("label"), joined.column("_j"))
    return predictions.append_column("label", label)


# -- permission and audit ------------------------------------------------------------------------

LABEL_PERMISSIONS: Mapping[str, str] = {"ingest": ENDPOINT_DEPLOY, "read": ENDPOINT_READ}


@enforced(LABEL_PERMISSIONS)
class LabelService:
    """Labels on behalf of ``actor``: ingesting needs ``endpoint:deploy`` on the endpoint
    (the ``deployer`` role; a data pipeline's service account gets it per endpoint), reading
    ``endpoint:read``. Every ingest writes one ``labels.ingest`` audit event (endpoint,
    count, files; never label values) once the labels are stored."""

    def __init__(self, store: Store, labels: LabelStore, actor: Actor) -> None:
        self.store = store
        self.labels = labels
        self.actor = actor
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)

    def ingest(
        self,
        endpoint: str,
        data: Any,
        *,
        id_column: str = "request_id",
        label_column: str = "label",
        row_column: str = "row",
        source: str | None = None,
        progress: Progress | None = None,
    ) -> IngestResult:
        """Validate and store a batch of labels (see :meth:`LabelStore.ingest`), then audit."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_DEPLOY, endpoint)
        result = self.labels.ingest(
            endpoint,
            data,
            id_column=id_column,
            label_column=label_column,
            row_column=row_column,
            ingested_by=self.actor.name,
            progress=progress,
        )
        details: dict[str, Any] = {"count": result.count, "files": result.files}
        if source:
            details["source"] = source[:200]
        self.store.write(
            lambda u: record_event(u, self.actor, "labels.ingest", "endpoint", endpoint, **details)
        )
        return result

    def read(self, endpoint: str) -> pa.Table:
        """The current labels of the endpoint (:meth:`LabelStore.read_labels`)."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_READ, endpoint)
        return self.labels.read_labels(endpoint)
