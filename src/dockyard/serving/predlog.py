"""The prediction log: every request and shadow call, one record per input row, as Parquet.

Purpose: the serving layer hands each answered (or failed) request to a
:class:`PredictionLogWriter` with :meth:`PredictionLogWriter.log`; a background thread
redacts the inputs with the endpoint's rules, writes them in batches as Parquet files in the
artifact store, and :func:`read_predictions` gives them back as a ``pyarrow.Table`` for
``dockyard logs query`` and the monitors.

Layout::

    <root>/predictions/endpoint=<name>/hour=<YYYY-MM-DDTHH>/<uuid>.parquet

``<root>`` is the artifact root (a folder or an fsspec URI such as ``s3://...`` or
``memory://...``); the hour is the UTC hour of the record's ``time``. One flush writes one
file per (endpoint, hour) it holds records of; files are immutable and never appended to.

Record schema (decisions)
    * **One record per input row.** A request of N rows gives N records sharing its
      ``request_id``, with ``row`` = 0..N-1; ``(request_id, row)`` identifies a row, and is
      what ground-truth labels join on (:mod:`dockyard.serving.labels`). Per-row records make
      drift, quality and performance monitoring a column scan, with no exploding of arrays.
      A request that failed before it had rows (unparseable body) is one record, row 0, with
      no inputs.
    * Fixed columns, in this order: ``request_id`` (string), ``row`` (int32), ``endpoint``,
      ``variant``, ``model`` (registered model name), ``model_version`` (int32, null when
      unknown), ``shadow`` (bool: a shadow call, whose answer never reached the caller),
      ``forced`` (bool: the variant was forced by a debug header; excluded from experiment
      metrics), ``time`` (int64, epoch ms when the request arrived), ``latency_ms``
      (float64), ``status`` (int32, HTTP-like: 200, 400, 500...), ``error`` (string or null;
      never a traceback), ``key_hash`` (string or null: a hash of the sticky assignment key,
      never the key), ``prediction`` and ``proba``.
    * **Inputs are flattened into typed columns** ``in.<feature>`` (``in.amount``,
      ``in.country``...), their Arrow types inferred per file, so the monitors read one
      feature as one typed column. Columns differ between files when requests carry different
      features or a type changes; :func:`read_predictions` unifies them (a feature absent
      from a file is null there; numeric types widen; a column whose types cannot be unified,
      e.g. int64 in one file and string in another, is read as string everywhere). Within a
      file, a feature whose values mix kinds (numbers and strings) is stored as text
      (canonical JSON for lists and objects).
    * ``prediction`` is the model's output for the row, typed like an input (float64 for a
      regression, string or int64 for class labels); ``proba`` is ``list<float64>`` (the
      class probabilities when the model has ``predict_proba``) or null.
    * Redaction (:mod:`dockyard.governance.redaction`) applies to the input features, by
      their names (before the ``in.`` prefix is added), **before anything is written**: a
      dropped column never reaches a file, a hashed one is written hashed. Outputs are not
      redacted. If the endpoint's policy cannot be obtained or applied (the store is down,
      a hash rule and no ``DOCKYARD_REDACTION_KEY``), those records are dropped and counted,
      never written unredacted.

The writer
    :meth:`PredictionLogWriter.log` is O(1) per record, takes a lock only to append to a
    bounded in-memory buffer, never does I/O and never raises: when the buffer is full the
    records that do not fit are dropped and counted in ``dropped_records`` (zero in normal
    operation; export it as a metric). The flush thread wakes every ``flush_seconds`` or as
    soon as ``flush_records`` records wait. A failed write does not stop the thread: its
    records are counted as dropped, ``flush_errors`` grows, and the error is logged once per
    kind, with the exception's class (or a Dockyard error's own message) and never any
    record content. Local files are written to a private temporary file under
    ``<root>/tmp/`` (0600, in 0700 folders), fsynced and renamed into place; remote files go
    through a temporary key and a move, as artifact blobs do. With a
    :class:`~dockyard.artifacts.crypto.BlobCipher` each whole file is encrypted (the same
    key and format as artifacts) and :func:`read_predictions` decrypts it.

Boundaries: a service module (serving); uses artifacts (cipher, private files), governance
(redaction, endpoint names) and core. No web framework. pyarrow and fsspec are imported on
first use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import ConfigError, DockyardError, InvalidInput
from dockyard.core.serving_entities import check_endpoint_name

if TYPE_CHECKING:
    import pyarrow as pa

    from dockyard.artifacts.crypto import BlobCipher
    from dockyard.governance.redaction import RedactionKey, RedactionPolicy

__all__ = [
    "FIXED_COLUMNS",
    "INPUT_PREFIX",
    "PredictionLogWriter",
    "PredictionRecord",
    "hour_partition",
    "iter_prediction_tables",
    "parse_time_spec",
    "read_predictions",
    "records_for_request",
    "unify_tables",
]

log = logging.getLogger("dockyard.serving.predlog")

#: Prefix of the flattened input feature columns.
INPUT_PREFIX = "in."
#: The columns every prediction log file has, in this order (then ``in.*``).
FIXED_COLUMNS = (
    "request_id",
    "row",
    "endpoint",
    "variant",
    "model",
    "model_version",
    "shadow",
    "forced",
    "time",
    "latency_ms",
    "status",
    "error",
    "key_hash",
    "prediction",
    "proba",
)
PREDICTIONS_DIR = "predictions"
_HOUR_MS = 3_600_000
_HOUR_RE = re.compile(r"^hour=(\d{4})-(\d{2})-(\d{2})T(\d{2})$")
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")
_TMP_SUFFIX = ".part"
_MAX_ERROR = 1000


@dataclass(slots=True)
class PredictionRecord:
    """One logged row of one request (or shadow call). See the module notes for the schema.

    ``inputs`` maps feature names to the row's values (None when the request had no
    parseable rows); ``prediction`` is the row's output; ``proba`` the class probabilities
    (or None).
    """

    request_id: str
    endpoint: str
    variant: str
    model: str
    model_version: int | None
    time: int
    latency_ms: float
    status: int = 200
    inputs: Mapping[str, Any] | None = None
    prediction: Any = None
    proba: Sequence[float] | None = None
    row: int = 0
    shadow: bool = False
    forced: bool = False
    error: str | None = None
    key_hash: str | None = None


def records_for_request(
    *,
    request_id: str,
    endpoint: str,
    variant: str,
    model: str,
    model_version: int | None,
    time: int,
    latency_ms: float,
    inputs: Sequence[Mapping[str, Any]] | None,
    predictions: Sequence[Any] | None = None,
    probas: Sequence[Sequence[float] | None] | None = None,
    status: int = 200,
    shadow: bool = False,
    forced: bool = False,
    error: str | None = None,
    key_hash: str | None = None,
) -> list[PredictionRecord]:
    """The records of one request: one per input row (``row`` = 0..N-1), or a single record
    with no inputs when there are none (a request that failed before it had rows).

    ``predictions`` and ``probas``, when given, are per row (None or shorter lists leave the
    remaining rows without an output, as for a failed request)."""
    common = {
        "request_id": request_id,
        "endpoint": endpoint,
        "variant": variant,
        "model": model,
        "model_version": model_version,
        "time": time,
        "latency_ms": latency_ms,
        "status": status,
        "shadow": shadow,
        "forced": forced,
        "error": error,
        "key_hash": key_hash,
    }
    rows = list(inputs or ())
    if not rows:
        return [PredictionRecord(**common)]  # type: ignore[arg-type]
    preds = predictions if predictions is not None else ()
    probs = probas if probas is not None else ()
    n_pred, n_prob = len(preds), len(probs)
    return [
        PredictionRecord(
            **common,  # type: ignore[arg-type]
            inputs=row,
            prediction=preds[i] if i < n_pred else None,
            proba=probs[i] if i < n_prob else None,
            row=i,
        )
        for i, row in enumerate(rows)
    ]


# -- time ----------------------------------------------------------------------------------------


def hour_partition(time_ms: int) -> str:
    """The hour folder of a record time: ``hour=YYYY-MM-DDTHH`` (UTC)."""
    return "hour=" + datetime.fromtimestamp(time_ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H")


def _hour_start(name: str) -> int | None:
    m = _HOUR_RE.match(name)
    if m is None:
        return None
    try:
        when = datetime(*(int(g) for g in m.groups()), tzinfo=UTC)  # type: ignore[misc]
    except ValueError:
        return None
    return int(when.timestamp()) * 1000


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$", re.I)
_UNIT_MS = {"s": 1000, "m": 60_000, "min": 60_000, "h": _HOUR_MS, "d": 86_400_000}
_UNIT_MS["w"] = 7 * _UNIT_MS["d"]


def parse_time_spec(
    text: str | int | None, *, now_ms: int | None = None, option: str = "time"
) -> int | None:
    """Epoch ms from a relative duration before now (``30s``, ``15m``, ``1h``, ``2d``,
    ``1w``), an ISO 8601 date or time (UTC unless it has an offset) or epoch milliseconds.
    None stays None."""
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    value = str(text).strip()
    if value.isdigit():
        return int(value)
    m = _DURATION.match(value)
    if m is not None:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return now - int(float(m.group(1)) * _UNIT_MS[m.group(2).lower()])
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is not a time: use a duration before now (15m, 1h, 2d), "
            "ISO 8601 (2026-05-01 or 2026-05-01T12:00:00+02:00) or epoch milliseconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _as_ms(value: Any, option: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    return parse_time_spec(value, option=option)


# -- where files live ----------------------------------------------------------------------------


class _Root:
    """A local folder (plain ``os`` calls, private files, temp + fsync + rename) or an fsspec
    root (temporary key, then a move). Paths are given as parts already validated."""

    def __init__(self, root_uri: str) -> None:
        if not isinstance(root_uri, str) or not root_uri.strip():
            raise InvalidInput("the prediction log root must be a non-empty path or URI")
        self.uri = root_uri
        self.local: str | None = None
        self._fs: Any = None
        self._remote = ""
        if _URI_RE.match(root_uri):
            from urllib.parse import urlsplit
            from urllib.request import url2pathname

            parts = urlsplit(root_uri)
            if parts.scheme.lower() == "file":
                if parts.netloc not in ("", "localhost"):
                    raise InvalidInput(f"file URI {root_uri!r} names a remote host")
                self.local = os.path.abspath(url2pathname(parts.path))
        else:
            self.local = os.path.abspath(os.path.expanduser(root_uri))

    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            fs, path = fsspec.core.url_to_fs(self.uri)
            self._remote = str(path).rstrip("/")
            self._fs = fs
        return self._fs

    def _remote_path(self, parts: Sequence[str]) -> str:
        self.fs()
        return "/".join([self._remote, *parts])

    def write(self, parts: Sequence[str], data: bytes) -> None:
        """Write ``data`` at ``<root>/<parts...>`` atomically."""
        if self.local is not None:
            from dockyard.artifacts.store import _fsync_dir, _makedirs_private

            tmp_dir = os.path.join(self.local, "tmp")
            _makedirs_private(tmp_dir)
            final = os.path.join(self.local, *parts)
            final_dir = os.path.dirname(final)
            _makedirs_private(final_dir)
            base = os.path.realpath(self.local)
            if not os.path.realpath(final_dir).startswith(base + os.sep):
                # A folder link planted inside the root would carry the write elsewhere.
                raise DockyardError(f"the {parts[0]} folder holds a link leading out of the root")
            fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=_TMP_SUFFIX)  # 0600, O_EXCL
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, final)
                _fsync_dir(final_dir)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            return
        fs = self.fs()
        tmp_dir = self._remote_path(["tmp"])
        tmp = f"{tmp_dir}/{uuid.uuid4().hex}{_TMP_SUFFIX}"
        with contextlib.suppress(Exception):  # object stores have no folders
            fs.makedirs(tmp_dir, exist_ok=True)
        try:
            with fs.open(tmp, "wb") as out:
                out.write(data)
            final = self._remote_path(parts)
            with contextlib.suppress(Exception):
                fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(tmp)
            raise

    def move(self, src: Sequence[str], dst: Sequence[str]) -> None:
        """Rename a file written with :meth:`write` into its final place (atomic locally)."""
        if self.local is not None:
            from dockyard.artifacts.store import _fsync_dir, _makedirs_private

            final = os.path.join(self.local, *dst)
            _makedirs_private(os.path.dirname(final))
            if not os.path.realpath(os.path.dirname(final)).startswith(
                os.path.realpath(self.local) + os.sep
            ):
                raise DockyardError(f"the {dst[0]} folder holds a link leading out of the root")
            os.replace(os.path.join(self.local, *src), final)
            _fsync_dir(os.path.dirname(final))
            return
        fs = self.fs()
        final = self._remote_path(dst)
        with contextlib.suppress(Exception):
            fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        fs.mv(self._remote_path(src), final)

    def remove(self, parts: Sequence[str]) -> None:
        """Delete a file if it exists (best effort)."""
        with contextlib.suppress(Exception):
            if self.local is not None:
                os.unlink(os.path.join(self.local, *parts))
            else:
                self.fs().rm(self._remote_path(parts))

    def list_dir(self, parts: Sequence[str]) -> list[str]:
        """Names of the entries of a folder (none if it does not exist); links are skipped."""
        if self.local is not None:
            try:
                with os.scandir(os.path.join(self.local, *parts)) as it:
                    return sorted(e.name for e in it if not e.is_symlink())
            except (FileNotFoundError, NotADirectoryError):
                return []
        fs = self.fs()
        try:
            entries = fs.ls(self._remote_path(parts), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def read(self, parts: Sequence[str]) -> bytes:
        if self.local is not None:
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
            with os.fdopen(os.open(os.path.join(self.local, *parts), flags), "rb") as f:
                return f.read()
        with self.fs().open(self._remote_path(parts), "rb") as f:
            return f.read()  # type: ignore[no-any-return]


def _encode(data: bytes, cipher: BlobCipher | None) -> bytes:
    if cipher is None:
        return data
    import io

    out = io.BytesIO()
    w = cipher.writer(out)
    w.write(data)
    w.close()
    return out.getvalue()


def _decode(data: bytes, cipher: BlobCipher | None, name: str) -> bytes:
    from dockyard.artifacts.crypto import is_encrypted_header

    if not is_encrypted_header(data[:8]):
        return data
    if cipher is None:
        raise ConfigError(
            f"{name} is stored encrypted and no key is configured; set DOCKYARD_ENCRYPTION_KEY "
            "(or DOCKYARD_KEY_PROVIDER) to the key it was written with"
        )
    import io

    return b"".join(cipher.decrypt(io.BytesIO(data), name=name))


# -- building Arrow columns ----------------------------------------------------------------------


def _canonical(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


def _column(values: list[Any]) -> pa.Array:
    """An Arrow array for Python values: Arrow's inferred type when the values agree (ints
    and floats widen to float64), text (canonical JSON for nested values) when they mix
    kinds -- Arrow refuses booleans mixed with numbers, and numbers mixed with strings."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([_canonical(v) for v in values], pa.string())


_INFER_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,
    OverflowError,
    NotImplementedError,
)


def _inputs_columns(
    records: Sequence[PredictionRecord],
    policy: RedactionPolicy | None,
    key: RedactionKey | None,
) -> tuple[list[str], list[pa.Array]]:
    """The input features of the records as (names, Arrow columns), redacted."""
    import pyarrow as pa

    try:
        # Fast path: Arrow infers one struct over every row (C speed) when each feature
        # holds values of one kind.
        struct = pa.array([r.inputs or {} for r in records])
        if not pa.types.is_struct(struct.type):
            raise TypeError("inputs are not records")
        table = (
            pa.Table.from_arrays(struct.flatten(), names=[f.name for f in struct.type])
            if struct.type.num_fields
            else None
        )
    except _INFER_ERRORS:
        table = None
        names: dict[str, None] = {}
        for r in records:
            if r.inputs:
                for k in r.inputs:
                    names[k] = None
        cols: dict[str, Any] = {
            str(name): [r.inputs.get(name) if r.inputs else None for r in records] for name in names
        }
        if policy:
            # Redaction on the feature names as the caller sent them, before any write.
            cols = policy.apply(cols, key)
        return list(cols), [_column(list(v)) for v in cols.values()]
    if table is None:
        return [], []
    if policy:
        table = policy.apply(table, key)
    return table.column_names, [c.combine_chunks() for c in table.columns]


def _records_table(
    records: Sequence[PredictionRecord],
    policy: RedactionPolicy | None,
    key: RedactionKey | None,
) -> pa.Table:
    """One Arrow table for records of one endpoint: fixed columns, then the redacted inputs."""
    import pyarrow as pa

    in_names, in_cols = _inputs_columns(records, policy, key)
    n = len(records)
    probas = [r.proba for r in records]
    try:
        proba = pa.array(probas, pa.list_(pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        proba = pa.array(
            [None if p is None else [float(x) for x in p] for p in probas],
            pa.list_(pa.float64()),
        )
    arrays = [
        pa.array([str(r.request_id) for r in records], pa.string()),
        pa.array([r.row for r in records], pa.int32()),
        pa.array([r.endpoint for r in records], pa.string()),
        pa.array([r.variant for r in records], pa.string()),
        pa.array([r.model for r in records], pa.string()),
        pa.array([r.model_version for r in records], pa.int32()),
        pa.array([bool(r.shadow) for r in records], pa.bool_()),
        pa.array([bool(r.forced) for r in records], pa.bool_()),
        pa.array([r.time for r in records], pa.int64()),
        pa.array([float(r.latency_ms) for r in records], pa.float64()),
        pa.array([r.status for r in records], pa.int32()),
        pa.array(
            [None if r.error is None else str(r.error)[:_MAX_ERROR] for r in records], pa.string()
        ),
        pa.array([r.key_hash for r in records], pa.string()),
        _column([r.prediction for r in records]),
        proba,
    ]
    fields = list(FIXED_COLUMNS)
    for name, col in zip(in_names, in_cols, strict=True):
        assert len(col) == n
        arrays.append(col)
        fields.append(INPUT_PREFIX + name)
    return pa.Table.from_arrays(arrays, names=fields)


def _parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue())


# -- the writer ----------------------------------------------------------------------------------

PolicySource = Callable[[str], "RedactionPolicy | None"]


@dataclass
class _Counters:
    written_records: int = 0
    written_files: int = 0
    dropped_records: int = 0
    flush_errors: int = 0
    errors_seen: set[str] = field(default_factory=set)


class PredictionLogWriter:
    """Buffers prediction records and writes them as Parquet from a background thread.

    Parameters
    ----------
    root_uri:
        The artifact root (folder or fsspec URI); files go under ``<root>/predictions/``.
    cipher:
        Encrypt every file with this :class:`~dockyard.artifacts.crypto.BlobCipher`
        (``cipher_from_settings(settings)``); None writes plaintext.
    redaction:
        ``endpoint -> RedactionPolicy | None``, called for each endpoint at each flush (so a
        changed policy applies from the next flush), e.g.
        ``RedactionService(store, actor).effective_policy``; or a mapping endpoint → policy.
        If it raises, that endpoint's records of the flush are dropped, never written
        unredacted.
    redaction_key:
        The :class:`~dockyard.governance.redaction.RedactionKey` (or secret) for hash rules:
        ``redaction_key(settings)``.
    max_buffer_records:
        Most records waiting in memory; past it, ``log`` drops and counts.
    flush_records, flush_seconds:
        The thread flushes when this many records wait, or this often.
    start:
        False starts no thread (records are written only by :meth:`flush` / :meth:`close`).

    Counters (read them for metrics; :meth:`stats` gives all at once): ``written_records``,
    ``written_files``, ``dropped_records`` (buffer full, writer closed, failed write or
    redaction), ``flush_errors``, ``buffered``.
    """

    def __init__(
        self,
        root_uri: str,
        *,
        cipher: BlobCipher | None = None,
        redaction: PolicySource | Mapping[str, RedactionPolicy] | None = None,
        redaction_key: RedactionKey | str | None = None,
        max_buffer_records: int = 100_000,
        flush_records: int = 5_000,
        flush_seconds: float = 1.0,
        start: bool = True,
    ) -> None:
        if isinstance(max_buffer_records, bool) or int(max_buffer_records) < 1:
            raise InvalidInput(f"max_buffer_records must be >= 1, got {max_buffer_records!r}")
        if int(flush_records) < 1:
            raise InvalidInput(f"flush_records must be >= 1, got {flush_records!r}")
        if not float(flush_seconds) > 0:
            raise InvalidInput(f"flush_seconds must be > 0, got {flush_seconds!r}")
        self._root = _Root(root_uri)
        self.root_uri = root_uri
        self._cipher = cipher
        if isinstance(redaction, Mapping):
            policies = dict(redaction)
            self._policy_for: PolicySource | None = policies.get
        else:
            self._policy_for = redaction
        if isinstance(redaction_key, str):
            from dockyard.governance.redaction import RedactionKey

            redaction_key = RedactionKey(redaction_key)
        self._key = redaction_key
        self.max_buffer_records = int(max_buffer_records)
        self.flush_records = min(int(flush_records), self.max_buffer_records)
        self.flush_seconds = float(flush_seconds)
        self._buf: deque[PredictionRecord] = deque()
        self._lock = threading.Lock()  # guards _buf, counters and _closed
        self._write_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._c = _Counters()
        self._inflight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="dockyard-predlog", daemon=True)
            self._thread.start()

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        redaction: PolicySource | Mapping[str, RedactionPolicy] | None = None,
        root_uri: str | None = None,
    ) -> PredictionLogWriter:
        """A writer on the settings' artifact root, encryption key, redaction key and
        ``predlog_*`` buffer settings."""
        from dockyard.artifacts.crypto import cipher_from_settings
        from dockyard.governance.redaction import redaction_key

        return cls(
            root_uri or settings.resolved_artifact_root,
            cipher=cipher_from_settings(settings),
            redaction=redaction,
            redaction_key=redaction_key(settings),
            max_buffer_records=getattr(settings, "predlog_buffer_records", None) or 100_000,
            flush_seconds=getattr(settings, "predlog_flush_seconds", None) or 1.0,
        )

    # ------------------------------------------------------------------ the request path

    def log(self, records: PredictionRecord | Iterable[PredictionRecord]) -> int:
        """Queue records for writing; returns how many were accepted (the rest were dropped
        and counted). Never blocks on I/O, never raises."""
        try:
            if isinstance(records, PredictionRecord):
                batch: Sequence[PredictionRecord] = (records,)
            elif isinstance(records, list | tuple):
                batch = records
            else:
                batch = list(records)
            n = len(batch)
            with self._lock:
                if self._closed:
                    self._c.dropped_records += n
                    accepted = 0
                else:
                    room = self.max_buffer_records - len(self._buf) - self._inflight
                    accepted = n if n <= room else max(room, 0)
                    if accepted == n:
                        self._buf.extend(batch)
                    elif accepted:
                        self._buf.extend(batch[:accepted])
                    self._c.dropped_records += n - accepted
                    waiting = len(self._buf)
            if accepted and waiting >= self.flush_records:
                self._wake.set()
            return accepted
        except Exception as exc:  # never on the request path
            self._note_error("log", exc, count_flush_error=False)
            return 0

    # ------------------------------------------------------------------ counters

    @property
    def written_records(self) -> int:
        return self._c.written_records

    @property
    def written_files(self) -> int:
        return self._c.written_files

    @property
    def dropped_records(self) -> int:
        return self._c.dropped_records

    @property
    def dropped(self) -> int:
        """Alias of :attr:`dropped_records`."""
        return self._c.dropped_records

    @property
    def flush_errors(self) -> int:
        return self._c.flush_errors

    @property
    def buffered(self) -> int:
        """Records waiting to be written (in the buffer or in a flush under way)."""
        with self._lock:
            return len(self._buf) + self._inflight

    def stats(self) -> dict[str, int]:
        """The counters, for metrics: written_records, written_files, dropped_records,
        flush_errors, buffered."""
        with self._lock:
            return {
                "written_records": self._c.written_records,
                "written_files": self._c.written_files,
                "dropped_records": self._c.dropped_records,
                "flush_errors": self._c.flush_errors,
                "buffered": len(self._buf) + self._inflight,
            }

    # ------------------------------------------------------------------ flushing

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            with self._lock:
                closed = self._closed
            try:
                self._flush_once()
            except Exception as exc:  # pragma: no cover - _flush_once catches per group
                self._note_error("flush", exc)
            if closed:
                return

    def flush(self) -> None:
        """Write everything buffered now (blocking). For tests and shutdown."""
        self._flush_once()

    def _flush_once(self) -> None:
        with self._write_lock:
            while True:
                with self._lock:
                    if not self._buf:
                        return
                    batch, self._buf = self._buf, deque()  # O(1) under the lock
                    self._inflight = len(batch)
                try:
                    self._write_batch(batch)
                finally:
                    with self._lock:
                        self._inflight = 0

    def _write_batch(self, batch: Iterable[PredictionRecord]) -> None:
        groups: dict[tuple[str, int], list[PredictionRecord]] = {}
        for r in batch:
            try:
                hour = int(r.time) // _HOUR_MS
            except (TypeError, ValueError):
                hour = -1
            groups.setdefault((r.endpoint, hour), []).append(r)
        policies: dict[str, Any] = {}
        for (endpoint, hour), records in groups.items():
            try:
                if hour < 0:
                    raise InvalidInput("a prediction record has no valid time (epoch ms)")
                check_endpoint_name(endpoint)
                if endpoint not in policies:
                    policies[endpoint] = (
                        self._policy_for(endpoint) if self._policy_for is not None else None
                    )
                table = _records_table(records, policies[endpoint], self._key)
                data = _encode(_parquet_bytes(table), self._cipher)
                parts = [
                    PREDICTIONS_DIR,
                    f"endpoint={endpoint}",
                    hour_partition(hour * _HOUR_MS),
                    f"{uuid.uuid4().hex}.parquet",
                ]
                self._root.write(parts, data)
            except Exception as exc:
                with self._lock:
                    self._c.dropped_records += len(records)
                self._note_error("write", exc)
                continue
            with self._lock:
                self._c.written_records += len(records)
                self._c.written_files += 1

    def _note_error(self, stage: str, exc: BaseException, count_flush_error: bool = True) -> None:
        """Count an error and log it once per kind -- its class, or a Dockyard error's own
        message (written without data), never the text of other exceptions, which may quote
        a record's values."""
        what = exc.message if isinstance(exc, DockyardError) else type(exc).__name__
        kind = f"{stage}:{type(exc).__name__}:{what}"
        with self._lock:
            if count_flush_error:
                self._c.flush_errors += 1
            first = kind not in self._c.errors_seen
            if first:
                self._c.errors_seen.add(kind)
        if first:
            log.error(
                "prediction log %s failed (%s): %s; the records are dropped and counted "
                "(logged once per kind)",
                stage,
                type(exc).__name__,
                what,
            )

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush what is buffered and stop the thread. Idempotent; ``log`` drops (and counts)
        afterwards."""
        with self._lock:
            already = self._closed
            self._closed = True
        if already:
            return
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._flush_once()

    def __enter__(self) -> PredictionLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        enc = ", encrypted" if self._cipher is not None else ""
        return f"PredictionLogWriter({self.root_uri!r}{enc})"


# -- reading -------------------------------------------------------------------------------------


def _hours(root: _Root, endpoint: str, since: int | None, until: int | None) -> list[str]:
    out = []
    for name in root.list_dir([PREDICTIONS_DIR, f"endpoint={endpoint}"]):
        start = _hour_start(name)
        if start is None:
            continue
        if since is not None and start + _HOUR_MS <= since:
            continue
        if until is not None and start >= until:
            continue
        out.append(name)
    return out


def iter_prediction_tables(
    root_uri: str,
    endpoint: str,
    *,
    since: int | datetime | str | None = None,
    until: int | datetime | str | None = None,
    cipher: BlobCipher | None = None,
    columns: Sequence[str] | None = None,
) -> Iterator[pa.Table]:
    """The endpoint's log one file at a time (hour by hour, oldest first), each filtered to
    ``since <= time < until`` and to the ``columns`` it has. Memory stays at one file: what
    the monitors use to scan long windows. Schemas may differ between tables."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    check_endpoint_name(endpoint)
    lo, hi = _as_ms(since, "since"), _as_ms(until, "until")
    root = _Root(root_uri)
    base = [PREDICTIONS_DIR, f"endpoint={endpoint}"]
    for hour in _hours(root, endpoint, lo, hi):
        for name in root.list_dir([*base, hour]):
            if not name.endswith(".parquet") or name.startswith("."):
                continue
            parts = [*base, hour, name]
            data = _decode(root.read(parts), cipher, f"prediction log file {'/'.join(parts)}")
            buf = pa.BufferReader(data)
            if columns is not None:
                have = set(pq.ParquetFile(buf).schema_arrow.names)
                wanted = [c for c in columns if c in have]
                if lo is not None or hi is not None:
                    wanted_read = wanted + (["time"] if "time" not in wanted else [])
                else:
                    wanted_read = wanted
                table = pq.read_table(pa.BufferReader(data), columns=wanted_read)
            else:
                table = pq.read_table(buf)
                wanted = None
            if lo is not None or hi is not None:
                t = table.column("time")
                mask = None
                if lo is not None:
                    mask = pc.greater_equal(t, lo)
                if hi is not None:
                    m2 = pc.less(t, hi)
                    mask = m2 if mask is None else pc.and_(mask, m2)
                table = table.filter(mask)
            if wanted is not None and table.column_names != wanted:
                table = table.select(wanted)
            yield table


def unify_tables(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate tables whose schemas differ: missing columns become null, numeric types
    widen, and a column with types that cannot be unified becomes text everywhere."""
    import pyarrow as pa

    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    seen: dict[str, pa.DataType] = {}
    conflicting: set[str] = set()
    for t in tables:
        for f in t.schema:
            if f.name in seen and seen[f.name] != f.type:
                try:
                    pa.unify_schemas(
                        [pa.schema([(f.name, seen[f.name])]), pa.schema([f])],
                        promote_options="permissive",
                    )
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    conflicting.add(f.name)
            seen.setdefault(f.name, f.type)
    fixed = []
    for t in tables:
        for name in conflicting & set(t.column_names):
            i = t.column_names.index(name)
            t = t.set_column(i, name, _as_text(t.column(i)))
        fixed.append(t)
    return pa.concat_tables(fixed, promote_options="permissive")


def _as_text(col: Any) -> Any:
    import pyarrow as pa

    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array([_canonical(v) for v in col.to_pylist()], pa.string())


def read_predictions(
    root_uri: str,
    endpoint: str,
    *,
    since: int | datetime | str | None = None,
    until: int | datetime | str | None = None,
    cipher: BlobCipher | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The endpoint's logged records with ``since <= time < until`` (epoch ms, datetimes, or
    ``"1h"``/ISO text), sorted by time, schemas of all files unified (see the module notes).

    Only the hour folders that can hold such records are listed. Encrypted files need the
    ``cipher`` (a ConfigError otherwise); ``columns`` reads only those columns (absent ones
    are skipped). An endpoint with no log gives an empty table with the fixed columns."""
    import pyarrow as pa

    tables = [
        t
        for t in iter_prediction_tables(
            root_uri, endpoint, since=since, until=until, cipher=cipher, columns=columns
        )
        if t.num_columns
    ]
    if not tables:
        names = list(columns) if columns is not None else list(FIXED_COLUMNS)
        return pa.table({n: pa.array([], pa.null()) for n in names})
    table = unify_tables(tables)
    if "time" in table.column_names and table.num_rows:
        sort_keys = [("time", "ascending")]
        if "request_id" in table.column_names:
            sort_keys.append(("request_id", "ascending"))
        if "row" in table.column_names:
            sort_keys.append(("row", "ascending"))
        table = table.sort_by(sort_keys)
    return table
