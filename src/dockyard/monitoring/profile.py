"""Reference profiles: a compact, mergeable summary of a table, one entry per column.

A profile is what monitoring compares production windows against, so the training data never
has to be reloaded. It is computed once when a dataset version is logged (or a model version is
registered with its training data), stored as JSON, and merged when the data comes in parts.

Per column (:class:`ColumnProfile`):

* every kind: the logical ``dtype``, ``count`` (non-missing values) and ``missing`` (nulls and
  float ``NaN``);
* ``numeric`` (integers, floats, decimals, datetimes as epoch seconds): ``min``/``max``,
  ``mean``/``std`` (population std, ``ddof=0``, as NumPy and Evidently's Wasserstein norm use;
  over the finite values, ``infinite`` counts the others), a histogram, a reservoir sample,
  quantiles, and exact value counts in ``categories`` while the column has at most ``top_k``
  distinct values (a numeric column with 3 values is tested like a categorical one);
* ``categorical`` (strings, dictionaries, anything else): the ``top_k`` most frequent values
  with their counts, ``other`` = the count of every other value, ``distinct``;
* ``boolean``: ``categories`` ``{"False": n, "True": m}`` (keys are ``str`` of the value,
  as for every category) and ``mean`` = the share of true.

Histogram. ``bin_edges`` are the reference quantiles at ``0, 1/bins, ..., 1`` (deduplicated,
so a discrete column may get fewer bins), which makes PSI the classic decile PSI rather than
Evidently's Sturges bins over reference and current combined (its issue #1400). The last edge
is the reference maximum moved up by one ulp (``nextafter(max, +inf)``), so that with plain
half-open bins the maximum is inside; a constant column ``c`` gets ``[c, nextafter(c)]``.
``bin_counts`` has ``len(bin_edges) + 1`` entries, bin of x = the number of edges ``<= x``::

    counts[0]       x <  e[0]                 (open lower bin: below the reference minimum)
    counts[i]       e[i-1] <= x < e[i]        (i = 1 .. m, m = len(e) - 1)
    counts[m + 1]   x >= e[m]                 (open upper bin: above the reference maximum)

so a production window binned with the reference edges counts values outside the reference range
in the two outer bins (this is also the convention of ``dockyard.monitoring.drift``, and
``searchsorted(edges, x, side="right")``). :func:`bin_counts` does that binning for anyone.
Edges given by the caller (``bin_edges=``) are used as they are.

Edges are fixed from the *first* ``sample_size`` non-missing values of a column, which is the
reservoir before it starts replacing: exact reference deciles when the column has at most
``sample_size`` values, an estimate from a prefix otherwise (later reference values beyond that
prefix's range land in the outer bins; pass ``bin_edges=`` to choose edges instead, e.g. the
reference's edges when profiling a production window). Because the edges depend only on the
order of the values, a :class:`ProfileBuilder` fed any batching gives exactly the profile
:func:`profile_table` gives for the whole table.

Sample. A uniform reservoir of at most ``sample_size`` finite values (Algorithm R, with a
generator seeded by ``seed`` and the column name, so the result is reproducible and does not
depend on the batching), kept sorted. Quantiles ``p1 .. p99`` come from it (exact while the
column has at most ``sample_size`` values). In JSON the sample is stored as little-endian bytes,
byte-shuffled, deflated and base64-encoded, as float32 when that is lossless for every value
(the builder rounds the sample of a float column to float32 precision, 24 bits, enough for rank
tests; integer columns keep exact values), else float64.

Merging (``a.merge(b)``): counts, missing, min/max add up exactly; mean/std combine with Chan's
parallel formula; histograms add when the edges are equal, otherwise the edges are recomputed
from the merged sample and the counts estimated by re-binning the merged sample scaled to the
total count (``bins_estimated`` is then true); samples merge by drawing how many values come
from each side from the hypergeometric law and subsampling each side, which keeps the merged
sample a uniform sample of the union; category counts add (exact while each part has at most
``top_k`` distinct values; beyond that a value in one part's ``other`` is undercounted, as in a
heavy-hitters sketch). ``distinct`` is exact while every value of both parts is known, and a
lower bound flagged by ``distinct_exact = False`` otherwise.

NumPy, pandas and pyarrow are imported inside the functions: ``import dockyard`` stays fast,
and reading a stored profile (:meth:`DatasetProfile.from_dict`) needs none of them.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from dockyard.core.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "PROFILE_FORMAT",
    "QUANTILES",
    "ColumnProfile",
    "DatasetProfile",
    "ProfileBuilder",
    "bin_counts",
    "profile_table",
]

#: Version tag written in every serialised profile.
PROFILE_FORMAT: Final = "dockyard-profile/1"
#: The quantiles every numeric column reports, by name.
QUANTILES: Final[dict[str, float]] = {
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
KINDS: Final = ("numeric", "categorical", "boolean")
# Exact distinct values tracked per categorical column while building; beyond this the count is
# a lower bound and flagged approximate. Bounds the builder's memory.
_DISTINCT_CAP: Final = 100_000
# Rows per internal step when a whole table is profiled: bounds temporary copies.
_CHUNK_ROWS: Final = 1 << 17
# Up to this many bin edges, histograms count x >= edge per edge instead of a binary search.
_COMPARE_EDGES: Final = 32
# Values whose magnitude exceeds this are scaled before mean/variance, so squares never overflow.
_BIG: Final = 1e150


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnProfile:
    """The profile of one column; see the module docstring for what each field means."""

    name: str
    kind: str
    dtype: str
    count: int = 0
    missing: int = 0
    infinite: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    bin_edges: list[float] = field(default_factory=list)
    bin_counts: list[int] = field(default_factory=list)
    bins_estimated: bool = False
    sample: list[float] = field(default_factory=list)
    sample_size: int = 0
    quantiles: dict[str, float] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    other: int = 0
    distinct: int = 0
    distinct_exact: bool = True
    top_k: int = 0

    @property
    def rows(self) -> int:
        """Values plus missing values: the number of rows the column was profiled over."""
        return self.count + self.missing

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; the sample is packed (see the module docstring)."""
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "missing": self.missing,
        }
        if self.kind == "numeric":
            d.update(
                infinite=self.infinite,
                min=_json_float(self.min),
                max=_json_float(self.max),
                mean=_json_float(self.mean),
                std=_json_float(self.std),
                bin_edges=[_json_float(e) for e in self.bin_edges],
                bin_counts=list(self.bin_counts),
                bins_estimated=self.bins_estimated,
                sample=_pack_sample(self.sample),
                sample_size=self.sample_size,
                quantiles={k: _json_float(v) for k, v in self.quantiles.items()},
            )
        elif self.kind == "boolean":
            d["mean"] = self.mean
        d.update(
            categories=dict(self.categories),
            other=self.other,
            distinct=self.distinct,
            distinct_exact=self.distinct_exact,
            top_k=self.top_k,
        )
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnProfile:
        try:
            kind = str(d["kind"])
            if kind not in KINDS:
                raise InvalidInput(f"unknown column profile kind {kind!r}; expected one of {KINDS}")
            return cls(
                name=str(d["name"]),
                kind=kind,
                dtype=str(d["dtype"]),
                count=int(d["count"]),
                missing=int(d["missing"]),
                infinite=int(d.get("infinite", 0)),
                min=_from_json_float(d.get("min")),
                max=_from_json_float(d.get("max")),
                mean=_from_json_float(d.get("mean")),
                std=_from_json_float(d.get("std")),
                bin_edges=[float(_from_json_float(e)) for e in d.get("bin_edges", [])],  # type: ignore[arg-type]
                bin_counts=[int(c) for c in d.get("bin_counts", [])],
                bins_estimated=bool(d.get("bins_estimated", False)),
                sample=_unpack_sample(d.get("sample")),
                sample_size=int(d.get("sample_size", 0)),
                quantiles={
                    str(k): float(_from_json_float(v))  # type: ignore[arg-type]
                    for k, v in d.get("quantiles", {}).items()
                },
                categories={str(k): int(v) for k, v in d.get("categories", {}).items()},
                other=int(d.get("other", 0)),
                distinct=int(d.get("distinct", 0)),
                distinct_exact=bool(d.get("distinct_exact", True)),
                top_k=int(d.get("top_k", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a column profile: {exc}") from exc

    # -- merging ------------------------------------------------------------------------------

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of the two parts together (see the module docstring for exactness)."""
        import numpy as np

        if other.name != self.name or other.kind != self.kind:
            raise InvalidInput(
                f"cannot merge column {self.name!r} ({self.kind}) "
                f"with column {other.name!r} ({other.kind})"
            )
        a, b = self, other
        top_k = max(a.top_k, b.top_k)
        cats, rest, distinct, distinct_exact = _merge_categories(a, b, top_k)
        common: dict[str, Any] = dict(
            count=a.count + b.count,
            missing=a.missing + b.missing,
            categories=cats,
            other=rest,
            distinct=distinct,
            distinct_exact=distinct_exact,
            top_k=top_k,
            dtype=a.dtype if a.dtype == b.dtype or a.kind != "numeric" else "float",
        )
        if a.kind == "boolean":
            n = a.count + b.count
            mean = None if n == 0 else cats.get("True", 0) / n
            return replace(a, mean=mean, **common)
        if a.kind == "categorical":
            return replace(a, **common)

        # numeric
        n_fin_a, n_fin_b = a.count - a.infinite, b.count - b.infinite
        mean, std = _chan(n_fin_a, a.mean, a.std, n_fin_b, b.mean, b.std)
        lo = _opt(min, a.min, b.min)
        hi = _opt(max, a.max, b.max)
        capacity = min(a.sample_size, b.sample_size) or max(a.sample_size, b.sample_size)
        rng = np.random.default_rng([a.count, b.count, _name_seed(a.name)])
        sample = _merge_samples(
            np.asarray(a.sample, dtype=np.float64),
            a.count - a.infinite,
            np.asarray(b.sample, dtype=np.float64),
            b.count - b.infinite,
            capacity,
            rng,
        )
        estimated = a.bins_estimated or b.bins_estimated
        if not b.bin_edges:
            edges, counts = list(a.bin_edges), list(a.bin_counts)
        elif not a.bin_edges:
            edges, counts = list(b.bin_edges), list(b.bin_counts)
        elif a.bin_edges == b.bin_edges:
            edges = list(a.bin_edges)
            counts = [x + y for x, y in zip(a.bin_counts, b.bin_counts, strict=True)]
        else:
            bins = max(len(a.bin_edges), len(b.bin_edges)) - 1
            edge_arr = _quantile_edges(sample, max(bins, 1))
            edges = edge_arr.tolist()
            counts = _scaled_counts(sample, edge_arr, a.count + b.count, a.infinite + b.infinite)
            estimated = True
        return replace(
            a,
            infinite=a.infinite + b.infinite,
            min=lo,
            max=hi,
            mean=mean,
            std=std,
            bin_edges=edges,
            bin_counts=counts,
            bins_estimated=estimated,
            sample=sample.tolist(),
            sample_size=capacity,
            quantiles=_quantiles(sample),
            **common,
        )


@dataclass(frozen=True)
class DatasetProfile:
    """The profiles of a table's columns, in column order, plus its row count."""

    columns: dict[str, ColumnProfile]
    row_count: int
    version: str = PROFILE_FORMAT
    params: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise InvalidInput(f"no column {name!r} in the profile") from None

    def bin_edges(self) -> dict[str, list[float]]:
        """Each numeric column's edges: pass as ``bin_edges=`` to profile a window alike."""
        return {n: list(c.bin_edges) for n, c in self.columns.items() if c.kind == "numeric"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "row_count": self.row_count,
            "params": dict(self.params),
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetProfile:
        try:
            version = str(d["version"])
            if version != PROFILE_FORMAT:
                raise InvalidInput(
                    f"unsupported profile format {version!r}; this Dockyard reads {PROFILE_FORMAT}"
                )
            cols = [ColumnProfile.from_dict(c) for c in d["columns"]]
            return cls(
                columns={c.name: c for c in cols},
                row_count=int(d["row_count"]),
                version=version,
                params={str(k): int(v) for k, v in d.get("params", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a dataset profile: {exc}") from exc

    def merge(self, other: DatasetProfile) -> DatasetProfile:
        """The profile of both tables stacked: the columns must be the same."""
        if list(self.columns) != list(other.columns):
            missing = sorted(set(self.columns) ^ set(other.columns))
            raise InvalidInput(
                "cannot merge profiles of different columns"
                + (f": {missing} in only one" if missing else " (different order)")
            )
        return DatasetProfile(
            columns={n: c.merge(other.columns[n]) for n, c in self.columns.items()},
            row_count=self.row_count + other.row_count,
            version=self.version,
            params=dict(self.params) if self.params == other.params else {},
        )


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def profile_table(
    data: Any,
    *,
    bins: int = 10,
    sample_size: int = 10_000,
    top_k: int = 50,
    seed: int = 0,
    bin_edges: Mapping[str, Sequence[float]] | None = None,
) -> DatasetProfile:
    """Profile a pandas DataFrame or a pyarrow Table (or RecordBatch) in one call.

    Equal to feeding the same rows to a :class:`ProfileBuilder` in any batching.
    """
    builder = ProfileBuilder(
        bins=bins, sample_size=sample_size, top_k=top_k, seed=seed, bin_edges=bin_edges
    )
    builder.update(data)
    return builder.build()


class ProfileBuilder:
    """Profile a table fed batch by batch, with memory bounded by the parameters, not the rows.

    ``update`` accepts pandas DataFrames, pyarrow Tables and RecordBatches (or an iterable of
    them); every batch must have the columns of the first one. ``build`` may be called more than
    once and does not change the builder.
    """

    def __init__(
        self,
        *,
        bins: int = 10,
        sample_size: int = 10_000,
        top_k: int = 50,
        seed: int = 0,
        bin_edges: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        if bins < 1:
            raise InvalidInput(f"bins must be at least 1, got {bins}")
        if sample_size < 1:
            raise InvalidInput(f"sample_size must be at least 1, got {sample_size}")
        if top_k < 0:
            raise InvalidInput(f"top_k must be 0 or more, got {top_k}")
        self.bins = bins
        self.sample_size = sample_size
        self.top_k = top_k
        self.seed = seed
        self.fixed_edges = dict(bin_edges or {})
        self._columns: dict[str, _ColumnState] | None = None
        self.row_count = 0

    def update(self, batch: Any) -> ProfileBuilder:
        """Add rows; returns the builder so calls can be chained."""
        import pyarrow as pa

        if _is_iterable_of_batches(batch):
            for b in batch:
                self.update(b)
            return self
        table = _to_arrow(batch)
        if self._columns is None:
            self._columns = {}
            for name, col in zip(table.column_names, table.columns, strict=True):
                edges = self.fixed_edges.get(name)
                self._columns[name] = _ColumnState(name, col.type, self, edges)
            unknown = sorted(set(self.fixed_edges) - set(table.column_names))
            if unknown:
                raise InvalidInput(f"bin_edges given for unknown columns: {unknown}")
        elif table.column_names != list(self._columns):
            raise InvalidInput(
                f"batch columns {table.column_names} differ from the first batch's "
                f"{list(self._columns)}"
            )
        for start in range(0, max(table.num_rows, 1), _CHUNK_ROWS):
            part = table.slice(start, _CHUNK_ROWS)
            if part.num_rows == 0:
                break
            for name, col in zip(part.column_names, part.columns, strict=True):
                arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
                self._columns[name].update(arr)
            self.row_count += part.num_rows
        return self

    def build(self) -> DatasetProfile:
        cols = {n: s.build() for n, s in (self._columns or {}).items()}
        return DatasetProfile(
            columns=cols,
            row_count=self.row_count,
            params={
                "bins": self.bins,
                "sample_size": self.sample_size,
                "top_k": self.top_k,
                "seed": self.seed,
            },
        )


class _ColumnState:
    """Running state of one column: bounded by sample_size, top_k and the distinct cap."""

    def __init__(
        self, name: str, arrow_type: pa.DataType, owner: ProfileBuilder, edges: Any
    ) -> None:
        import numpy as np

        self.name = name
        self.dtype, self.kind = _kind_of(arrow_type)
        self.owner = owner
        self.count = 0
        self.missing = 0
        self.infinite = 0
        # numeric
        self.n_fin = 0
        self.mean: float | None = None
        self.std: float | None = None
        self.min: float | None = None
        self.max: float | None = None
        self.reservoir = np.empty(0, dtype=np.float64)
        self.seen = 0  # finite values offered to the reservoir
        self.prefix: np.ndarray | None = None  # the first sample_size values, until edges fixed
        self.rng = np.random.default_rng([owner.seed & 0xFFFFFFFF, _name_seed(name)])
        self.edges: np.ndarray | None = None
        if edges is not None:
            e = np.asarray(edges, dtype=np.float64)
            if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
                raise InvalidInput(
                    f"bin_edges for {name!r} must be a non-empty, sorted list of finite numbers"
                )
            self.edges = e
        self.pending: list[np.ndarray] = []  # values seen before the edges are fixed
        self.counts: np.ndarray | None = None
        # categories (and small-domain numerics)
        self.values: dict[Any, int] | None = {}
        self.distinct_exact = True
        self.distinct_floor = 0

    # -- update -------------------------------------------------------------------------------

    def update(self, arr: pa.Array) -> None:
        if self.kind == "numeric":
            self._update_numeric(arr)
        elif self.kind == "boolean":
            self._update_boolean(arr)
        else:
            self._update_categorical(arr)

    def _update_boolean(self, arr: pa.Array) -> None:
        import pyarrow.compute as pc

        n_valid = len(arr) - arr.null_count
        trues = int(pc.sum(arr).as_py() or 0)
        self.missing += arr.null_count
        self.count += n_valid
        assert self.values is not None
        for key, c in (("False", n_valid - trues), ("True", trues)):
            if c:
                self.values[key] = self.values.get(key, 0) + c

    def _update_categorical(self, arr: pa.Array) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        self.missing += arr.null_count
        self.count += len(arr) - arr.null_count
        if self.values is None:
            return
        vc = pc.value_counts(arr.drop_null())
        keys = vc.field("values").to_pylist()
        counts = vc.field("counts").to_pylist()
        values = self.values
        for k, c in zip(keys, counts, strict=True):
            key = _category_key(k)
            if key in values:
                values[key] += c
            elif len(values) < _DISTINCT_CAP:
                values[key] = c
            else:
                # Too many values to track: keep counting the ones known, flag the rest.
                self.distinct_exact = False
                self.distinct_floor = max(self.distinct_floor, len(values) + 1)

    def _update_numeric(self, arr: pa.Array) -> None:
        import numpy as np

        x = _float_values(arr)
        nan = np.isnan(x)
        n_missing = int(nan.sum())
        if n_missing:
            x = x[~nan]
        self.missing += n_missing
        if x.size == 0:
            return
        self.count += x.size
        lo, hi = float(x.min()), float(x.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        fin = x
        if not (math.isfinite(lo) and math.isfinite(hi)):
            finite = np.isfinite(x)
            fin = x[finite]
            self.infinite += int(x.size - fin.size)
        if fin.size:
            m, s = _mean_std(fin)
            self.mean, self.std = _chan(self.n_fin, self.mean, self.std, fin.size, m, s)
            self.n_fin += fin.size
            self._offer(fin)
        self._track_small_domain(x)
        if self.edges is not None:
            self._bin(x)
        else:
            self.pending.append(x)
            if self.prefix is not None:
                self._fix_edges(self.prefix)
                self.prefix = None

    def _track_small_domain(self, x: np.ndarray) -> None:
        import numpy as np

        if self.values is None:
            return
        cap = self.owner.top_k
        # A cheap first look: a continuous column exceeds the cap within a few hundred values.
        head = np.unique(x[: 4 * cap + 4])
        if head.size > cap:
            self._drop_small_domain()
            return
        keys, counts = np.unique(x, return_counts=True)
        new = sum(1 for k in keys.tolist() if k not in self.values)
        if len(self.values) + new > cap:
            self._drop_small_domain()
            return
        for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
            self.values[k] = self.values.get(k, 0) + c

    def _drop_small_domain(self) -> None:
        self.distinct_floor = max(self.distinct_floor, len(self.values or ()) + 1)
        self.distinct_exact = False
        self.values = None

    def _offer(self, fin: np.ndarray) -> None:
        """Algorithm R over the finite values, vectorised per batch."""
        import numpy as np

        k = self.owner.sample_size
        take = min(max(k - self.reservoir.size, 0), fin.size)
        if take:
            self.reservoir = np.concatenate([self.reservoir, fin[:take]])
            if self.reservoir.size == k:
                # The first k values, before any replacement: the edges come from them.
                self.prefix = self.reservoir.copy()
        rest = fin[take:]
        if rest.size:
            # Item number i (0-based, i >= k) replaces slot j = floor(u * (i + 1)) if j < k,
            # i.e. if u * (i + 1) < k (k is an integer): floor only the hits.
            i1 = self.seen + take + 1  # i + 1 of the first of them
            y = self.rng.random(rest.size)
            y *= np.arange(i1, i1 + rest.size, dtype=np.float64)
            hit = np.flatnonzero(y < k)
            if hit.size:
                slots, vals = np.floor(y[hit]).astype(np.int64), rest[hit]
                # The last write to a slot wins, as in the sequential algorithm.
                rev_slots = slots[::-1]
                uniq, first = np.unique(rev_slots, return_index=True)
                self.reservoir[uniq] = vals[::-1][first]
        self.seen += fin.size

    def _fix_edges(self, values: np.ndarray) -> None:
        import numpy as np

        self.edges = _quantile_edges(values, self.owner.bins)
        pending, self.pending = self.pending, []
        for x in pending:
            self._bin(x)
        if self.counts is None:
            self.counts = np.zeros(self.edges.size + 1, dtype=np.int64)

    def _bin(self, x: np.ndarray) -> None:
        assert self.edges is not None
        c = histogram(x, self.edges)
        self.counts = c if self.counts is None else self.counts + c

    # -- build --------------------------------------------------------------------------------

    def build(self) -> ColumnProfile:
        top_k = self.owner.top_k
        if self.kind != "numeric":
            cats, other, distinct, exact = self._categories(top_k)
            mean = None
            if self.kind == "boolean":
                mean = None if self.count == 0 else cats.get("True", 0) / self.count
            return ColumnProfile(
                name=self.name,
                kind=self.kind,
                dtype=self.dtype,
                count=self.count,
                missing=self.missing,
                mean=mean,
                categories=cats,
                other=other,
                distinct=distinct,
                distinct_exact=exact,
                top_k=top_k,
            )
        return self._build_numeric(top_k)

    def _categories(self, top_k: int) -> tuple[dict[str, int], int, int, bool]:
        values = self.values or {}
        ranked = sorted(values.items(), key=lambda kv: (-kv[1], str(kv[0])))
        cats = {_category_key(k): int(c) for k, c in ranked[:top_k]}
        other = self.count - sum(cats.values())
        distinct = len(values) if self.distinct_exact else max(self.distinct_floor, len(values))
        return cats, other, distinct, self.distinct_exact

    def _build_numeric(self, top_k: int) -> ColumnProfile:
        import numpy as np

        edges = self.edges
        counts = self.counts
        if edges is None:
            # Fewer values than the sample size: the edges are the exact quantiles of them all.
            if self.reservoir.size:
                edges = _quantile_edges(self.reservoir, self.owner.bins)
                counts = np.zeros(edges.size + 1, dtype=np.int64)
                for x in self.pending:
                    counts += histogram(x, edges)
        elif counts is None:
            counts = np.zeros(edges.size + 1, dtype=np.int64)
        sample = np.sort(_round_sample(self.reservoir, self.dtype))
        if self.values is not None:
            cats, other, distinct, exact = self._categories(top_k)
        else:
            cats, other = {}, 0
            distinct = max(self.distinct_floor, int(np.unique(self.reservoir).size))
            exact = False
        return ColumnProfile(
            name=self.name,
            kind="numeric",
            dtype=self.dtype,
            count=self.count,
            missing=self.missing,
            infinite=self.infinite,
            min=self.min,
            max=self.max,
            mean=self.mean,
            std=self.std,
            bin_edges=[] if edges is None else edges.tolist(),
            bin_counts=[] if counts is None else [int(c) for c in counts],
            sample=sample.tolist(),
            sample_size=self.owner.sample_size,
            quantiles=_quantiles(sample),
            categories=cats,
            other=other,
            distinct=distinct,
            distinct_exact=exact,
            top_k=top_k,
        )


# --------------------------------------------------------------------------------------------
# Numeric helpers
# --------------------------------------------------------------------------------------------


def bin_counts(values: Any, edges: Sequence[float]) -> list[int]:
    """Count ``values`` (NaN ignored) in the bins of ``edges``, outer open bins included."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    e = np.asarray(edges, dtype=np.float64)
    return [int(c) for c in histogram(x, e)]


def histogram(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``x`` over sorted ``edges``: bin = number of edges <= x (NaN: the last bin);
    the binning of profiles and of the windows drift compares with them.

    Equal to ``bincount(searchsorted(edges, x, side="right"))``. With few edges (the usual
    deciles) it counts ``x >= e`` for each edge instead: a few linear passes, several times
    faster than a binary search per value.
    """
    import numpy as np

    if edges.size > _COMPARE_EDGES or x.size < 4 * edges.size or np.isnan(x).any():
        idx = np.searchsorted(edges, x, side="right")
        return np.bincount(idx, minlength=edges.size + 1).astype(np.int64)
    at_or_above = np.fromiter(
        (np.count_nonzero(x >= e) for e in edges.tolist()), dtype=np.int64, count=edges.size
    )
    return -np.diff(at_or_above, prepend=x.size, append=0)


def _quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    import numpy as np

    v = values[np.isfinite(values)]
    if v.size == 0:
        return np.zeros(0)
    edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, bins + 1)))
    # One ulp above the maximum: the maximum falls in the last inner bin, not the outer one.
    top = np.nextafter(edges[-1], np.inf)
    return np.append(edges[:-1], top) if edges.size > 1 else np.append(edges, top)


def _scaled_counts(sample: np.ndarray, edges: np.ndarray, total: int, infinite: int) -> list[int]:
    """Counts over ``edges`` estimated from a sample, summing to ``total`` (largest remainder)."""
    import numpy as np

    if edges.size == 0 or sample.size == 0:
        return [0] * (edges.size + 1) if edges.size else []
    share = histogram(sample, edges) / sample.size
    raw = share * (total - infinite)
    counts = np.floor(raw).astype(np.int64)
    short = (total - infinite) - int(counts.sum())
    if short > 0:
        counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    # Infinities never enter the sample: they belong to the outer bins. Without their sign, split
    # them by nothing better than the upper bin (they were counted there or in the lower one).
    counts[-1] += infinite
    return [int(c) for c in counts]


def _quantiles(sample: np.ndarray) -> dict[str, float]:
    import numpy as np

    if sample.size == 0:
        return {}
    qs = np.quantile(sample, list(QUANTILES.values()))
    return {k: float(q) for k, q in zip(QUANTILES, qs, strict=True)}


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and population std of finite values, without overflow for huge magnitudes."""
    import numpy as np

    scale = max(abs(float(x.min())), abs(float(x.max())))
    if scale > _BIG:
        y = x / scale
        m = float(y.mean())
        return m * scale, float(np.sqrt(np.mean((y - m) ** 2))) * scale
    m = float(x.mean())
    return m, float(np.sqrt(np.mean((x - m) ** 2)))


def _chan(
    na: int, ma: float | None, sa: float | None, nb: int, mb: float | None, sb: float | None
) -> tuple[float | None, float | None]:
    """Chan et al.'s parallel combination of (count, mean, population std), overflow-safe."""
    if nb == 0 or mb is None or sb is None:
        return ma, sa
    if na == 0 or ma is None or sa is None:
        return mb, sb
    n = na + nb
    c = max(abs(ma), abs(mb), sa, sb, 1.0)
    ua, ub, va, vb = ma / c, mb / c, sa / c, sb / c
    delta = ub - ua
    mean = ua + delta * (nb / n)
    var = (na * va * va + nb * vb * vb) / n + delta * delta * (na / n) * (nb / n)
    return mean * c, math.sqrt(max(var, 0.0)) * c


def _merge_samples(
    a: np.ndarray, na: int, b: np.ndarray, nb: int, capacity: int, rng: np.random.Generator
) -> np.ndarray:
    """A uniform sample of the union from uniform samples of the parts (sizes na, nb)."""
    import numpy as np

    total = na + nb
    k = min(capacity, total)
    if k >= a.size + b.size:
        return np.sort(np.concatenate([a, b]))
    if na == 0:
        return np.sort(rng.choice(b, size=min(k, b.size), replace=False))
    if nb == 0:
        return np.sort(rng.choice(a, size=min(k, a.size), replace=False))
    # How many of k draws without replacement from the union land in part a.
    from_a = int(rng.hypergeometric(na, nb, k))
    from_a = min(max(from_a, k - b.size), a.size)
    pick_a = rng.choice(a, size=from_a, replace=False)
    pick_b = rng.choice(b, size=k - from_a, replace=False)
    return np.sort(np.concatenate([pick_a, pick_b]))


def _round_sample(x: np.ndarray, dtype: str) -> np.ndarray:
    """Float samples keep float32 precision (compact, ample for rank tests) when in range."""
    import numpy as np

    if dtype != "float" or x.size == 0:
        return x.copy()
    if float(np.max(np.abs(x))) >= 3.0e38:
        return x.copy()
    return x.astype(np.float32).astype(np.float64)


def _pack_sample(sample: Sequence[float]) -> dict[str, Any]:
    import numpy as np

    x = np.asarray(sample, dtype=np.float64)
    fits = x.size > 0 and float(np.max(np.abs(x[np.isfinite(x)]), initial=0.0)) < 3.0e38
    x32 = x.astype(np.float32) if fits else None
    if x32 is not None and np.array_equal(x32.astype(np.float64), x):
        fmt, raw = "f4", x32.astype("<f4")
    else:
        fmt, raw = "f8", x.astype("<f8")
    width = raw.dtype.itemsize
    # Byte shuffle: all first bytes, then all second bytes...; sorted values then deflate well.
    shuffled = raw.view(np.uint8).reshape(-1, width).T.tobytes()
    data = base64.b64encode(zlib.compress(shuffled, 6)).decode("ascii")
    return {"dtype": fmt, "n": int(x.size), "data": data}


def _unpack_sample(packed: Any) -> list[float]:
    import numpy as np

    if packed is None:
        return []
    if isinstance(packed, list):
        return [float(v) for v in packed]
    fmt, n = packed["dtype"], int(packed["n"])
    if fmt not in ("f4", "f8"):
        raise InvalidInput(f"unknown sample encoding {fmt!r}")
    width = 4 if fmt == "f4" else 8
    raw = zlib.decompress(base64.b64decode(packed["data"]))
    if len(raw) != n * width:
        raise InvalidInput("corrupt profile sample: wrong length")
    buf = np.frombuffer(raw, dtype=np.uint8).reshape(width, n).T.copy()
    return buf.view("<" + fmt).reshape(n).astype(np.float64).tolist()


def _json_float(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _from_json_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt(f: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return f(a, b)


# --------------------------------------------------------------------------------------------
# Categorical helpers
# --------------------------------------------------------------------------------------------


def _category_key(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    return str(v)


def _merge_categories(
    a: ColumnProfile, b: ColumnProfile, top_k: int
) -> tuple[dict[str, int], int, int, bool]:
    if a.kind == "numeric" and not (a.distinct_exact and b.distinct_exact):
        # One part had too many distinct values to count them: no value counts kept.
        return {}, 0, max(a.distinct, b.distinct), False
    merged: dict[str, int] = dict(a.categories)
    for k, c in b.categories.items():
        merged[k] = merged.get(k, 0) + c
    if a.kind == "numeric" and len(merged) > top_k:
        return {}, 0, len(merged), False  # as the builder does past top_k distinct values
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
    cats = dict(ranked[:top_k])
    count = a.count + b.count
    other = count - sum(cats.values())
    a_complete = a.distinct_exact and a.other == 0
    b_complete = b.distinct_exact and b.other == 0
    exact = a_complete and b_complete
    distinct = len(merged) if exact else max(a.distinct, b.distinct, len(merged))
    return cats, other, distinct, exact


def _name_seed(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Input conversion
# --------------------------------------------------------------------------------------------


def _kind_of(t: pa.DataType) -> tuple[str, str]:
    """(dtype, kind) for an Arrow type; dtype uses the names of dockyard.data's schema."""
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return "boolean", "boolean"
    if pa.types.is_integer(t):
        return "integer", "numeric"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float", "numeric"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime", "numeric"
    if pa.types.is_dictionary(t):
        return "category", "categorical"
    return "string", "categorical"


def _float_values(arr: pa.Array) -> np.ndarray:
    """float64 values with NaN for nulls; datetimes as epoch seconds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        arr = pc.cast(arr, pa.timestamp("ns")).cast(pa.int64())
        x = _float_values(arr)
        return x / 1e9
    if not pa.types.is_float64(t):
        arr = pc.cast(arr, pa.float64(), safe=False)
    if arr.null_count:
        arr = pc.fill_null(arr, math.nan)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _is_iterable_of_batches(obj: Any) -> bool:
    if isinstance(obj, (str, bytes, Mapping)):
        return False
    mod = type(obj).__module__
    if mod.startswith(("pandas", "pyarrow")):
        return False
    return isinstance(obj, Iterable)


def _to_arrow(data: Any) -> pa.Table:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    mod = type(data).__module__
    if mod.startswith("pandas") and type(data).__name__ == "DataFrame":
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # Mixed-type object columns: profile them as strings, nulls kept.
            fixed = data.copy()
            for name in fixed.columns:
                if fixed[name].dtype == object:
                    col = fixed[name]
                    fixed[name] = col.where(col.isna(), col.astype(str))
            return pa.Table.from_pandas(fixed, preserve_index=False)
    raise InvalidInput(
        f"cannot profile a {type(data).__name__}: pass a pandas DataFrame or a pyarrow Table"
    )
