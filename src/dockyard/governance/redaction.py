"""Redaction of logged inputs: drop, hash or mask named columns before anything is written.

A :class:`RedactionPolicy` is a list of :class:`RedactionRule` (one per column). The prediction
log writer calls :meth:`RedactionPolicy.apply` on every batch of inputs before it writes them;
``dockyard redaction test`` shows its effect on a sample file. Rules per endpoint are stored and
managed by :class:`dockyard.governance.redaction_service.RedactionService`.

Actions
    ``drop``  the column is removed.
    ``hash``  every value becomes ``h:`` + the first 16 bytes (32 hex digits) of
              HMAC-SHA256(K, UTF-8 text of the value), with K = HMAC-SHA256(secret,
              ``"dockyard redaction hash v1"``) (a key of its own for this use, so the same
              secret reused elsewhere stays unrelated). Keyed, so low-entropy personal data
              (phone numbers, birth dates, customer ids) cannot be recovered by hashing every
              candidate without the secret; deterministic, so equal values hash equal and
              joins or counts on the column still work. Nulls stay null.
    ``mask``  every value becomes its text with all but the last ``keep`` characters (4 by
              default) replaced by ``*``: ``4111111111111111`` → ``************1111``. A value
              of at most ``keep`` characters is masked whole (a mask never shows a complete
              value). Nulls stay null.

Decisions
    * **Matching** is on top-level column names, case-insensitive and ignoring surrounding
      whitespace (``Email`` and ``email `` are both caught by a rule for ``email``): a
      redaction rule that misses a column because of its spelling would leak the data, so
      the match errs towards redacting. Two rules whose columns match the same names are
      refused. Nested fields (``customer.email`` inside a struct) are not addressed: redact
      the whole top-level column.
    * **An absent column is a no-op** (input schemas vary between requests);
      :meth:`RedactionPolicy.matches` and :meth:`RedactionPolicy.unmatched` say which rules
      found a column, which ``dockyard redaction test`` prints.
    * **The key** is ``DOCKYARD_REDACTION_KEY`` (setting ``redaction_key``): at least 32
      characters, the same on every replica, kept outside the store (a key stored next to the
      data would let anyone who can read the log run the dictionary attack the key is there to
      stop). A policy with a ``hash`` rule and no key fails with a
      :class:`~dockyard.core.errors.ConfigError` naming the setting -- whether or not the
      column is in the data, so a missing key shows on the first batch, not on the first
      request that carries the column. There is no default key. Changing the key changes
      every hash (values hashed before and after no longer join); :attr:`RedactionKey.key_id`
      is a public fingerprint that tells which key hashed what.
    * **Types.** Hash and mask work on a value's text: strings as they are, integers in
      decimal, floats in Arrow's shortest form (``1.0`` is ``"1"``), booleans as
      ``true``/``false``, dates and times as Arrow writes them. So the number 1001 and the
      string ``"1001"`` hash alike, and a JSON body, a CSV file and a Parquet file give the
      same hash for the same value. A JSON column mixing kinds (numbers and strings) is
      handled value by value, each exactly as in a column of its own kind. Bytes are hashed
      as they are and masked whole. Nested values (lists and objects; Arrow list, struct and
      map columns, taken as their Python form) are hashed as canonical JSON (sorted keys, no
      spaces) and masked whole. Hashed and masked columns become string columns.

Data :meth:`RedactionPolicy.apply` accepts: a ``pyarrow.Table`` or ``RecordBatch``
(vectorised with ``pyarrow.compute``; hashing computes one HMAC per distinct value), a list
of records (dicts, as a JSON body gives) or a dict of columns (name → list of values). It
returns a new object of the same kind and never changes its input.

No FastAPI or Typer here; pyarrow is imported on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ACTIONS",
    "DEFAULT_KEEP",
    "HASH_PREFIX",
    "KEY_SETTING",
    "RedactionKey",
    "RedactionPolicy",
    "RedactionRule",
    "redaction_key",
]

ACTIONS = ("drop", "hash", "mask")
#: Characters a ``mask`` rule keeps at the end of each value unless told otherwise.
DEFAULT_KEEP = 4
MAX_KEEP = 64
MAX_RULES = 1000
MAX_COLUMN = 256
HASH_PREFIX = "h:"
#: Bytes of the HMAC kept in a hashed value (16 bytes: 32 hex digits).
HASH_BYTES = 16
MIN_KEY_LENGTH = 32
KEY_SETTING = "DOCKYARD_REDACTION_KEY"
_KEY_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HASH_CONTEXT = b"dockyard redaction hash v1"


def _fold(name: str) -> str:
    """How column names are compared: case-insensitive, surrounding whitespace ignored."""
    return name.strip().casefold()


def check_column_name(column: Any) -> str:
    if not isinstance(column, str) or not column.strip():
        raise InvalidInput(f"a redaction rule needs a column name, got {column!r}")
    if len(column) > MAX_COLUMN:
        raise InvalidInput(f"column name {column[:40]!r}... is longer than {MAX_COLUMN} characters")
    if column != column.strip():
        raise InvalidInput(
            f"column name {column!r} starts or ends with whitespace (matching ignores it: "
            f"write {column.strip()!r})"
        )
    if _CONTROL.search(column):
        raise InvalidInput(f"column name {column!r} contains control characters")
    return column


@dataclass(frozen=True)
class RedactionRule:
    """What to do with one column: ``drop``, ``hash`` or ``mask`` (keeping the last
    ``keep`` characters; only for ``mask``, 4 by default)."""

    column: str
    action: str
    keep: int | None = None

    def __post_init__(self) -> None:
        check_column_name(self.column)
        if self.action not in ACTIONS:
            raise InvalidInput(
                f"redaction action for column {self.column!r} must be one of "
                f"{', '.join(ACTIONS)}, got {self.action!r}"
            )
        if self.action != "mask":
            if self.keep is not None:
                raise InvalidInput(
                    f"only a mask keeps characters; the {self.action} rule for column "
                    f"{self.column!r} cannot have keep={self.keep!r}"
                )
            return
        keep = DEFAULT_KEEP if self.keep is None else self.keep
        if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= MAX_KEEP:
            raise InvalidInput(
                f"the mask of column {self.column!r} keeps 0 to {MAX_KEEP} trailing "
                f"characters, got {self.keep!r}"
            )
        object.__setattr__(self, "keep", keep)

    @classmethod
    def from_dict(cls, data: Any) -> RedactionRule:
        if isinstance(data, RedactionRule):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput(
                f"a redaction rule is an object with column, action (and keep), got {data!r}"
            )
        unknown = sorted(set(data) - {"column", "action", "keep"})
        if unknown:
            raise InvalidInput(f"unknown fields {unknown} in redaction rule {dict(data)!r}")
        return cls(data.get("column"), data.get("action"), data.get("keep"))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column": self.column, "action": self.action}
        if self.action == "mask":
            out["keep"] = self.keep
        return out

    def describe(self) -> str:
        return f"mask (keep {self.keep})" if self.action == "mask" else self.action


@dataclass(frozen=True)
class RedactionPolicy:
    """An ordered set of rules, at most one per column (compared case-insensitively)."""

    rules: tuple[RedactionRule, ...] = ()
    _by_name: Mapping[str, RedactionRule] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        raw = self.rules
        if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Iterable):
            raise InvalidInput(f"redaction rules must be a list of rules, got {raw!r}")
        rules = tuple(RedactionRule.from_dict(r) for r in raw)
        if len(rules) > MAX_RULES:
            raise InvalidInput(f"a redaction policy has at most {MAX_RULES} rules")
        by_name: dict[str, RedactionRule] = {}
        for rule in rules:
            key = _fold(rule.column)
            if key in by_name:
                first = by_name[key]
                raise InvalidInput(
                    f"column {rule.column!r} has two redaction rules ({first.describe()} of "
                    f"{first.column!r} and {rule.describe()}); columns match case-insensitively, "
                    "keep one rule per column",
                    column=rule.column,
                )
            by_name[key] = rule
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def from_rules(cls, rules: Iterable[RedactionRule | Mapping[str, Any]]) -> RedactionPolicy:
        return cls(tuple(rules))  # type: ignore[arg-type]

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rules]

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def needs_key(self) -> bool:
        """Whether a key is needed to apply the policy (it has a hash rule)."""
        return any(r.action == "hash" for r in self.rules)

    def rule_for(self, column: str) -> RedactionRule | None:
        """The rule that applies to a column of this name, if any."""
        return self._by_name.get(_fold(column)) if self._by_name else None

    def matches(self, columns: Iterable[str]) -> list[tuple[str, RedactionRule]]:
        """The (column, rule) pairs the policy would apply to data with these columns."""
        return [(c, rule) for c in columns if (rule := self.rule_for(c)) is not None]

    def unmatched(self, columns: Iterable[str]) -> list[RedactionRule]:
        """The rules that find no column among ``columns`` (no-ops on such data)."""
        seen = {_fold(c) for c in columns}
        return [r for r in self.rules if _fold(r.column) not in seen]

    def apply(self, data: Any, key: RedactionKey | str | bytes | None = None) -> Any:
        """``data`` with the rules applied; see the module docstring for what ``data`` may be.

        ``key`` is needed when the policy has a hash rule: a :class:`RedactionKey` (see
        :func:`redaction_key`) or the secret itself. Without one that is a ConfigError
        naming ``DOCKYARD_REDACTION_KEY``, even when the hashed column is absent."""
        mac = self._key(key)
        if type(data).__module__.startswith("pyarrow"):
            import pyarrow as pa

            if isinstance(data, pa.Table | pa.RecordBatch):
                return _apply_arrow(data, self, mac)
        if isinstance(data, Mapping):
            return _apply_columns(data, self, mac)
        if isinstance(data, list | tuple):
            return _apply_records(data, self, mac)
        raise InvalidInput(
            "redaction applies to a pyarrow Table or RecordBatch, a list of records (dicts) or a "
            f"dict of columns (name → list of values), got {type(data).__name__}"
            + (
                " (convert a DataFrame with pyarrow.Table.from_pandas)"
                if hasattr(data, "iloc")
                else ""
            )
        )

    def _key(self, key: RedactionKey | str | bytes | None) -> RedactionKey | None:
        if not self.needs_key:
            return None
        if key is None:
            hashed = ", ".join(repr(r.column) for r in self.rules if r.action == "hash")
            raise ConfigError(
                f"the redaction policy hashes {hashed}, which needs a secret key: set "
                f"{KEY_SETTING} (setting redaction_key) to at least {MIN_KEY_LENGTH} random "
                f"characters, the same everywhere logs are written; generate one with "
                f"`{_KEY_HINT}`",
                setting=KEY_SETTING,
            )
        return key if isinstance(key, RedactionKey) else RedactionKey(key)


# -- the key -------------------------------------------------------------------------------------


class RedactionKey:
    """The secret of the keyed hash. Its repr never shows it; ``key_id`` is a public
    fingerprint (16 hex digits) that tells keys apart."""

    __slots__ = ("_inner", "_outer", "key_id")

    def __init__(self, secret: str | bytes, source: str = KEY_SETTING) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        if not isinstance(raw, bytes) or len(raw) < MIN_KEY_LENGTH or raw != raw.strip():
            raise ConfigError(
                f"{source} must be at least {MIN_KEY_LENGTH} characters without surrounding "
                f"whitespace (a short key lets anyone recover hashed values by guessing the "
                f"key); generate one with `{_KEY_HINT}`",
                setting=source,
            )
        # A key of its own for this purpose: the same secret used elsewhere stays unrelated.
        derived = hmac.new(raw, _HASH_CONTEXT, hashlib.sha256).digest()
        # HMAC-SHA256 with its two padded-key states computed once (RFC 2104); each value then
        # costs two hash-object copies, a third less than hmac.HMAC.copy().
        block = derived.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self.key_id = hashlib.sha256(b"dockyard redaction key id\x00" + raw).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"RedactionKey(key_id={self.key_id!r})"

    def hash_one(self, value: bytes) -> str:
        inner = self._inner.copy()
        inner.update(value)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return HASH_PREFIX + outer.hexdigest()[: 2 * HASH_BYTES]

    def hash_many(self, values: Iterable[bytes | None]) -> list[str | None]:
        """The hashed form of each value (None stays None)."""
        inner0, outer0 = self._inner, self._outer
        n, prefix = 2 * HASH_BYTES, HASH_PREFIX
        out: list[str | None] = []
        append = out.append
        for v in values:
            if v is None:
                append(None)
                continue
            inner = inner0.copy()
            inner.update(v)
            outer = outer0.copy()
            outer.update(inner.digest())
            append(prefix + outer.hexdigest()[:n])
        return out


def redaction_key(settings: Any = None) -> RedactionKey | None:
    """The key ``DOCKYARD_REDACTION_KEY`` names (from ``settings``, loaded when None), or None
    when it is not set; a malformed key is a ConfigError."""
    if settings is None:
        from dockyard.core.config import load_settings

        settings = load_settings()
    value = getattr(settings, "redaction_key", None)
    return None if value in (None, "") else RedactionKey(str(value))


# -- Arrow ---------------------------------------------------------------------------------------


def _is_nested(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_nested(t) or pa.types.is_union(t) or pa.types.is_map(t))


def _is_binary(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
    )


def _is_string(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _as_text(col: Any) -> Any:
    """A string (or binary) view of an Arrow column, vectorised where Arrow can cast."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if _is_string(t) or _is_binary(t):
        return col
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        # A type Arrow cannot write as text (durations, extension types ...): per value.
        return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def _redact_arrow(col: Any, rule: RedactionRule, key: RedactionKey | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    if _is_nested(t):
        # No vectorised text form for nested values: canonical JSON per value.
        return pa.array(_redact_python(col.to_pylist(), rule, key), pa.string())
    if rule.action == "hash":
        assert key is not None
        text = _as_text(col)
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        # One HMAC per distinct value: encode, hash the dictionary, expand by the indices.
        encoded = pc.dictionary_encode(text)
        distinct = encoded.dictionary
        if _is_string(distinct.type):  # the UTF-8 bytes, without a Python str per value
            distinct = distinct.cast(
                pa.large_binary() if pa.types.is_large_string(distinct.type) else pa.binary()
            )
        hashed = pa.array(key.hash_many(distinct.to_pylist()), pa.string())
        return pc.take(hashed, encoded.indices)
    # mask
    keep = rule.keep or 0
    if _is_binary(t):
        return pc.binary_repeat("*", pc.binary_length(col))
    text = _as_text(col)
    n = pc.utf8_length(text)
    if keep == 0:
        return pc.binary_repeat("*", n)
    longer = pc.greater(n, keep)
    stars = pc.binary_repeat("*", pc.if_else(longer, pc.subtract(n, keep), n))
    tail = pc.if_else(longer, pc.utf8_slice_codeunits(text, start=-keep), "")
    return pc.binary_join_element_wise(stars, tail, "")


def _apply_arrow(data: Any, policy: RedactionPolicy, key: RedactionKey | None) -> Any:
    import pyarrow as pa

    schema = data.schema
    arrays: list[Any] = []
    fields: list[Any] = []
    changed = False
    for i, f in enumerate(schema):
        rule = policy.rule_for(f.name)
        if rule is None:
            arrays.append(data.column(i))
            fields.append(f)
            continue
        changed = True
        if rule.action == "drop":
            continue
        col = _redact_arrow(data.column(i), rule, key)
        arrays.append(col)
        fields.append(pa.field(f.name, col.type, nullable=True))
    if not changed:
        return data
    metadata = dict(schema.metadata or {})
    metadata.pop(b"pandas", None)  # describes the columns as they were
    new_schema = pa.schema(fields, metadata=metadata or None)
    if isinstance(data, pa.RecordBatch):
        arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
        return pa.RecordBatch.from_arrays(arrays, schema=new_schema)
    return pa.Table.from_arrays(arrays, schema=new_schema)


# -- Python values (JSON bodies) -----------------------------------------------------------------

#: Python scalar types a column of one kind may hold (exact types: a bool is not an int here).
_KINDS: dict[type, str] = {str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes"}


def _canonical_json(value: Any) -> str:
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
    except (TypeError, ValueError):
        return str(value)


def _texts(values: Sequence[Any]) -> list[str | bytes | None]:
    """The text of each value, as the Arrow path would write it (floats through Arrow)."""
    import pyarrow as pa

    out: list[str | bytes | None] = []
    floats: list[int] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, str | bytes):
            out.append(v)
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            out.append(None)
            floats.append(i)
        elif isinstance(v, Mapping | list | tuple):
            out.append(_canonical_json(v))
        else:
            out.append(str(v))
    if floats:
        cast = pa.array([values[i] for i in floats], pa.float64()).cast(pa.string()).to_pylist()
        for i, s in zip(floats, cast, strict=True):
            out[i] = s
    return out


def _mask_text(text: str, keep: int) -> str:
    n = len(text)
    if n <= keep or keep == 0:
        return "*" * n
    return "*" * (n - keep) + text[-keep:]


def _redact_python(values: Sequence[Any], rule: RedactionRule, key: RedactionKey | None) -> list:
    """Per-value redaction: mixed-type columns and nested values (no Arrow form)."""
    texts = _texts(values)
    if rule.action == "hash":
        assert key is not None
        cache: dict[bytes, str] = {}
        out: list[Any] = []
        for t in texts:
            if t is None:
                out.append(None)
                continue
            b = t.encode("utf-8") if isinstance(t, str) else t
            h = cache.get(b)
            if h is None:
                h = cache[b] = key.hash_one(b)
            out.append(h)
        return out
    keep = rule.keep or 0
    return [
        None
        if t is None
        else "*" * len(t)
        if isinstance(t, bytes) or isinstance(v, Mapping | list | tuple)
        else _mask_text(t, keep)
        for v, t in zip(values, texts, strict=True)
    ]


def _redact_values(values: Sequence[Any], rule: RedactionRule, key: RedactionKey | None) -> list:
    """One column of Python values, redacted: through Arrow when every value is a scalar of
    one kind (so it hashes exactly as the same column of a Table would), else per value."""
    kinds = {_KINDS.get(type(v)) for v in values if v is not None}
    if len(kinds) <= 1 and None not in kinds:
        import pyarrow as pa

        try:
            # One kind only: Arrow infers exactly the type a Table column would have (mixed
            # lists would be coerced, e.g. False to 0.0 or a large int to a float).
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass  # an int beyond 64 bits: per value
        else:
            return list(_redact_arrow(arr, rule, key).to_pylist())
    return _redact_python(values, rule, key)


def _apply_columns(
    data: Mapping[Any, Any], policy: RedactionPolicy, key: RedactionKey | None
) -> dict[Any, Any]:
    for name, values in data.items():
        if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
            raise InvalidInput(
                f"a dict is read as columns (name → list of values), but column {name!r} holds "
                f"a {type(values).__name__}; pass one record as a list: [record]"
            )
    out: dict[Any, Any] = {}
    for name, values in data.items():
        rule = policy.rule_for(name) if isinstance(name, str) else None
        if rule is None:
            out[name] = values
        elif rule.action != "drop":
            out[name] = _redact_values(list(values), rule, key)
    return out


def _apply_records(
    data: Sequence[Any], policy: RedactionPolicy, key: RedactionKey | None
) -> list[Any]:
    for i, r in enumerate(data):
        if not isinstance(r, Mapping):
            raise InvalidInput(
                f"record {i} is a {type(r).__name__}, not an object: a list is read as records"
            )
    names: dict[str, None] = {}
    for r in data:
        for k in r:
            if isinstance(k, str):
                names.setdefault(k, None)
    found = policy.matches(names)
    if not found:
        return list(data)
    out = [dict(r) for r in data]
    for name, rule in found:
        if rule.action == "drop":
            for r in out:
                r.pop(name, None)
            continue
        rows = [i for i, r in enumerate(out) if name in r]
        redacted = _redact_values([out[i][name] for i in rows], rule, key)
        for i, v in zip(rows, redacted, strict=True):
            out[i][name] = v
    return out
