"""Per-feature data drift from a stored reference profile against a current window.

Framework-free: NumPy for the work, SciPy only for distribution tails (``chi2``, ``kstwo``,
exact small-sample KS). The reference side is a *profile* (histogram over reference quantile
edges, a bounded reservoir sample, category frequencies) so training data is never reloaded.

Statistics (each equals SciPy's reference implementation on the same inputs, see the tests):

- ``psi``: classic PSI over the reference's bins, sum((c - r) * ln(c / r)) of proportions;
  empty bins are floored at ``eps`` (default 1e-4, Evidently's fill value) on both sides.
- ``ks``: two-sample Kolmogorov-Smirnov statistic and p-value (= ``scipy.stats.ks_2samp``,
  method ``auto``) between the reference reservoir sample and the current values.
- ``wasserstein_normed``: ``scipy.stats.wasserstein_distance`` / max(reference std, 0.001).
- ``jensen_shannon``: ``scipy.spatial.distance.jensenshannon``, natural log by default (what
  Evidently calls, so its 0.1 threshold means the same thing); ``base=2`` bounds it by 1.
- ``chi_square``: ``scipy.stats.chisquare(cur_counts, f_exp=ref_share * n_cur)``.
- ``z_test_proportions``: pooled two-proportion z-test, two-sided p-value.

Default test per column (Evidently's rule, ``choose_test``), inputs: column kind, number of
reference rows (``count + missing`` of the profile) and the number of distinct non-null values
in reference and current combined:

==============  ==========  ===========  ======================  =========  ============
kind            ref rows    n_unique     test                    threshold  drift when
==============  ==========  ===========  ======================  =========  ============
numeric         <= 1000     > 5          ks                      0.05       p <= 0.05
numeric         <= 1000     3..5         chisquare               0.05       p < 0.05
numeric         <= 1000     <= 2         z                       0.05       p < 0.05
categorical     <= 1000     > 2          chisquare               0.05       p < 0.05
categorical     <= 1000     <= 2         z                       0.05       p < 0.05
numeric         > 1000      > 5          wasserstein (normed)    0.1        d >= 0.1
numeric         > 1000      <= 5         jensenshannon           0.1        d >= 0.1
categorical     > 1000      any          jensenshannon           0.1        d >= 0.1
==============  ==========  ===========  ======================  =========  ============

Boolean columns are categorical. Dataset drift: share of drifted features >= 0.5.

Measured false alarms on same-distribution data (tests/unit/test_monitoring_drift.py): KS
about 5%, as designed; Evidently's ``chisquare`` about 49% with 10 categories and a reference
as large as the window (it takes the reference shares as exact), kept as the default only for
comparability; the override ``chisquare_2samp`` (test of homogeneity) is calibrated (~5%).
Above 1000 reference rows the distance thresholds flagged nothing on noise at 100k rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dockyard.core.errors import InvalidInput
from dockyard.monitoring.profile import histogram
from dockyard.monitoring.stattests import DEFAULT_THRESHOLDS, P_VALUE_TESTS, canonical

__all__ = [
    "DEFAULT_THRESHOLDS",
    "SMALL_DATA_ROWS",
    "DriftResult",
    "FeatureDrift",
    "ProfileLike",
    "chi_square",
    "chi_square_two_sample",
    "choose_test",
    "drift_report",
    "jensen_shannon",
    "ks",
    "psi",
    "wasserstein_normed",
    "z_test_proportions",
]

SMALL_DATA_ROWS = 1000
"""Evidently's switch: reference data with at most this many rows gets the p-value tests."""

PSI_EPS = 1e-4
WASSERSTEIN_STD_FLOOR = 0.001
HISTOGRAM_DISTINCT = 20
"""Numeric columns with more distinct values than this are binned (the profile's quantile
edges) for PSI / Jensen-Shannon / chi-square; fewer get one bin per value (as Evidently)."""


_UNSEEN_EXAMPLES = 20
_PLOT_VALUES = 30


# --------------------------------------------------------------------------- the profile


@runtime_checkable
class ProfileLike(Protocol):
    """The reference-profile fields drift needs (``dockyard.monitoring.profile`` provides them).

    ``count`` is the number of non-null values, ``missing`` the number of nulls. For numeric
    columns: ``std``, ``bin_edges`` (reference quantile edges, increasing), ``bin_counts``
    (``len(bin_edges) + 1`` counts: ``(-inf, e0), [e0, e1), ..., [e_last, +inf)``), ``sample``
    (reservoir). For categorical / boolean: ``categories`` (top-K value -> count) and ``other``
    (count of the rest). ``distinct``: number of distinct non-null reference values.
    """

    kind: str
    count: int
    missing: int
    std: float | None
    bin_edges: Sequence[float]
    bin_counts: Sequence[int]
    sample: Sequence[float]
    categories: Mapping[str, int]
    other: int
    distinct: int


def _get(profile: Any, name: str, default: Any = None) -> Any:
    if isinstance(profile, Mapping):
        return profile.get(name, default)
    return getattr(profile, name, default)


def _ref_rows(profile: Any) -> int:
    return int(_get(profile, "count", 0) or 0) + int(_get(profile, "missing", 0) or 0)


def _kind(profile: Any) -> str:
    kind = str(_get(profile, "kind", "numeric"))
    if kind not in ("numeric", "categorical", "boolean"):
        raise InvalidInput(f"unknown column kind {kind!r}")
    return kind


# --------------------------------------------------------------------------- statistics


def _proportions(counts: Any) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    total = c.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, c / np.where(total > 0, total, 1.0), 0.0)


def psi(ref_counts: Any, cur_counts: Any, eps: float = PSI_EPS) -> np.ndarray | float:
    """Population stability index over the same bins: sum((c - r) * ln(c / r)).

    ``ref_counts`` / ``cur_counts`` are bin counts (last axis = bins; 2-D gives one PSI per
    row). Proportions below ``eps`` (empty bins) are raised to ``eps`` on both sides, so an
    empty bin costs a finite amount; ``eps=1e-4`` is Evidently's fill value. Equals
    ``sum(scipy.special.rel_entr(c, r) + rel_entr(r, c))`` on the floored proportions.
    """
    r = np.maximum(_proportions(ref_counts), eps)
    c = np.maximum(_proportions(cur_counts), eps)
    out = np.sum((c - r) * np.log(c / r), axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def _merged_cdfs(a_sorted: np.ndarray, b_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge two sorted arrays: (merged values, |F_a - F_b| at each merged value but the last).

    The empirical CDFs are counted along the merge (a cumulative sum) instead of looked up with
    ``searchsorted`` at every value. At the last value of a run of equal values the counts are
    the right-continuous CDFs, i.e. SciPy's ``searchsorted(x, v, side="right") / x.size``,
    exactly (same integers, same division); inside a run they are not, which the callers
    handle: Wasserstein multiplies them by a zero width, KS reads only the runs' last values.
    """
    m, n = a_sorted.size, b_sorted.size
    total = m + n
    # the merged position of a[i]: after a[0..i-1] and every b below it (stable: a first)
    pos = np.searchsorted(b_sorted, a_sorted, side="left")
    pos += np.arange(m, dtype=pos.dtype)
    from_a = np.zeros(total, dtype=bool)
    from_a[pos] = True
    merged = np.empty(total, dtype=np.float64)
    merged[pos] = a_sorted
    merged[~from_a] = b_sorted
    count_a = np.cumsum(from_a[:-1], dtype=np.int64)
    cdf_a = count_a / m
    count_a -= np.arange(1, total, dtype=np.int64)  # = -(count of b)
    np.negative(count_a, out=count_a)
    cdf_a -= count_a / n
    np.abs(cdf_a, out=cdf_a)
    return merged, cdf_a


def _ks_statistic(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """max |F_ref - F_cur| over every value of both (both sorted, non-empty)."""
    merged, gap = _merged_cdfs(ref_sorted, cur_sorted)
    # the CDFs are right-continuous: read them at the last of each run of equal values; the
    # last merged value has F_ref = F_cur = 1
    ends = merged[1:] != merged[:-1]
    return float(np.max(gap[ends], initial=0.0))


def ks(ref_sample: Any, cur: Any) -> tuple[float, float]:
    """Two-sample KS (statistic, p-value), equal to ``scipy.stats.ks_2samp`` (two-sided, auto).

    NaNs (and infinities) are dropped from both sides. The statistic is computed here from the
    two sorted arrays merged (cumulative counts along the merge); the p-value uses SciPy's
    asymptotic ``kstwo`` tail when either side has more than 10,000 values (SciPy's own
    ``auto`` switch) and SciPy's exact path otherwise (cheap at that size).
    """
    return _ks_sorted(np.sort(_finite(ref_sample)), np.sort(_finite(cur)))


def _ks_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``ks`` of two sorted arrays of finite values."""
    from scipy import stats

    if a.size == 0 or b.size == 0:
        return math.nan, math.nan
    if max(a.size, b.size) <= 10_000:
        res = stats.ks_2samp(a, b)
        return float(res.statistic), float(res.pvalue)
    d = _ks_statistic(a, b)
    m, n = sorted([float(a.size), float(b.size)], reverse=True)
    en = m * n / (m + n)
    p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return d, p


def _wasserstein(a_sorted: np.ndarray, b_sorted: np.ndarray) -> float:
    """Integral of |F_a - F_b| (both sorted, finite, non-empty), as SciPy sums it."""
    merged, gap = _merged_cdfs(a_sorted, b_sorted)
    gap *= np.diff(merged)  # zero width inside runs of equal values
    return float(np.sum(gap))


def wasserstein_normed(ref_sample: Any, cur: Any, ref_std: float | None = None) -> float:
    """Wasserstein-1 distance / max(``ref_std``, 0.001) (Evidently's normalisation).

    Equals ``scipy.stats.wasserstein_distance(ref_sample, cur) / max(ref_std, 0.001)``.
    ``ref_std`` defaults to the population std (ddof=0) of ``ref_sample``.
    """
    return _wasserstein_normed_sorted(np.sort(_finite(ref_sample)), np.sort(_finite(cur)), ref_std)


def _wasserstein_normed_sorted(a: np.ndarray, b: np.ndarray, ref_std: float | None) -> float:
    """``wasserstein_normed`` of two sorted arrays of finite values."""
    if a.size == 0 or b.size == 0:
        return math.nan
    std = float(np.std(a)) if ref_std is None or not math.isfinite(ref_std) else float(ref_std)
    return _wasserstein(a, b) / max(std, WASSERSTEIN_STD_FLOOR)


def jensen_shannon(ref_freq: Any, cur_freq: Any, base: float | None = None) -> float:
    """Jensen-Shannon *distance* between two frequency vectors over the same bins.

    Equals ``scipy.spatial.distance.jensenshannon(ref_freq, cur_freq, base=base)``: inputs are
    normalised to sum 1; ``base=None`` is the natural log (Evidently's choice, bounded by
    sqrt(ln 2) ~ 0.833), ``base=2`` bounds it by 1 (NannyML's choice). No smoothing.
    """
    p = _proportions(ref_freq)
    q = _proportions(cur_freq)
    if p.sum() == 0 or q.sum() == 0:
        return math.nan
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    js = max((kl_p + kl_q) / 2.0, 0.0)
    if base is not None:
        js /= math.log(base)
    return float(math.sqrt(js))


def chi_square(ref_counts: Any, cur_counts: Any) -> tuple[float, float]:
    """Chi-square goodness of fit of the current counts to the reference proportions.

    (statistic, p-value) equal to ``scipy.stats.chisquare(cur, f_exp=ref / ref.sum() *
    cur.sum())``. A bin the reference never saw but the current window fills (expected 0,
    observed > 0) gives statistic inf and p-value 0, as in Evidently; bins empty on both
    sides are dropped.
    """
    from scipy import stats

    r = np.asarray(ref_counts, dtype=float)
    c = np.asarray(cur_counts, dtype=float)
    if r.shape != c.shape:
        raise InvalidInput("chi_square needs reference and current counts over the same bins")
    if r.sum() <= 0 or c.sum() <= 0:
        return math.nan, math.nan
    keep = (r > 0) | (c > 0)
    r, c = r[keep], c[keep]
    expected = r / r.sum() * c.sum()
    if np.any((expected == 0) & (c > 0)):
        return math.inf, 0.0
    if r.size < 2:
        return 0.0, 1.0
    stat = float(np.sum((c - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, r.size - 1))


def chi_square_two_sample(ref_counts: Any, cur_counts: Any) -> tuple[float, float]:
    """Two-sample chi-square test of homogeneity on the 2 x k table (reference, current).

    (statistic, p-value) equal to ``scipy.stats.chi2_contingency([ref, cur],
    correction=False)`` after dropping bins empty on both sides. Not Evidently's default (its
    ``chisquare`` treats the reference proportions as exact, see ``chi_square``), offered as
    the override ``"chisquare_2samp"`` because it holds its false-alarm rate at the threshold.
    """
    from scipy import stats

    r = np.asarray(ref_counts, dtype=float)
    c = np.asarray(cur_counts, dtype=float)
    if r.shape != c.shape:
        raise InvalidInput("chi_square_two_sample needs counts over the same bins")
    if r.sum() <= 0 or c.sum() <= 0:
        return math.nan, math.nan
    keep = (r > 0) | (c > 0)
    table = np.stack([r[keep], c[keep]])
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, table.shape[1] - 1))


def z_test_proportions(
    ref_successes: float, ref_n: float, cur_successes: float, cur_n: float
) -> tuple[float, float]:
    """Pooled two-proportion z-test (two-sided): (z, p-value); Evidently's ``z`` test.

    z = (p1 - p2) / sqrt(P (1 - P) (1/n1 + 1/n2)), P the pooled share; p = 2 * norm.sf(|z|).
    Identical proportions on both sides (including both 0 or both 1) give z = 0, p = 1.
    """
    if ref_n <= 0 or cur_n <= 0:
        return math.nan, math.nan
    p1, p2 = ref_successes / ref_n, cur_successes / cur_n
    pooled = (ref_successes + cur_successes) / (ref_n + cur_n)
    var = pooled * (1.0 - pooled) * (1.0 / ref_n + 1.0 / cur_n)
    if var <= 0:
        return 0.0, 1.0
    z = (p1 - p2) / math.sqrt(var)
    return float(z), float(math.erfc(abs(z) / math.sqrt(2.0)))


# --------------------------------------------------------------------------- the rule


def _canonical(test: str) -> str:
    name = canonical(test)
    if name is None:
        raise InvalidInput(f"unknown drift test {test!r}; known: {sorted(DEFAULT_THRESHOLDS)}")
    return name


def choose_test(
    kind: str,
    n_ref: int,
    n_unique: int,
    *,
    override: tuple[str, float | None] | str | None = None,
) -> tuple[str, float]:
    """(test, threshold) for one column: Evidently's default rule, or the override.

    ``n_ref``: reference rows; ``n_unique``: distinct non-null values in reference and current
    combined; ``kind``: "numeric", "categorical" or "boolean" (treated as categorical).
    ``override``: a test name or ``(name, threshold)``; a None threshold means the test's
    default.
    """
    if override is not None:
        name, threshold = (override, None) if isinstance(override, str) else override
        test = _canonical(name)
        return test, float(DEFAULT_THRESHOLDS[test] if threshold is None else threshold)
    numeric = kind == "numeric"
    if kind not in ("numeric", "categorical", "boolean"):
        raise InvalidInput(f"unknown column kind {kind!r}")
    if n_ref <= SMALL_DATA_ROWS:
        if numeric and n_unique > 5:
            test = "ks"
        elif n_unique <= 2:
            test = "z"
        else:
            test = "chisquare"
    elif numeric and n_unique > 5:
        test = "wasserstein"
    else:
        test = "jensenshannon"
    return test, DEFAULT_THRESHOLDS[test]


def is_drift(test: str, score: float, threshold: float) -> bool:
    """Evidently's comparison: KS p <= t; chi-square / z p < t; distances (and PSI) >= t."""
    if math.isnan(score):  # nothing to compare (e.g. no current values)
        return False
    if test == "ks":
        return score <= threshold
    if test in P_VALUE_TESTS:
        return score < threshold
    return score >= threshold


# --------------------------------------------------------------------------- results


@dataclass
class FeatureDrift:
    """One column's verdict. ``score`` is a p-value for ks / chisquare / z, else a distance."""

    column: str
    kind: str
    test: str
    score: float
    threshold: float
    drifted: bool
    n_ref: int
    n_cur: int
    n_unique: int
    statistic: float | None = None
    unseen_count: int = 0
    unseen_categories: list[str] = field(default_factory=list)
    note: str = ""
    #: What a report plots: reference vs current counts on the same bins. Numeric columns with
    #: a histogram: ``{"kind": "bins", "edges": [e0..em], "reference": [m+2 counts],
    #: "current": [m+2 counts]}`` (counts[0] below e0, counts[-1] at or above em, as in the
    #: profile); per-value columns and categories: ``{"kind": "values", "labels": [...],
    #: "reference": [...], "current": [...]}`` (at most ``_PLOT_VALUES`` labels, the rest
    #: summed under ``"other"``). None when there is nothing to plot.
    distribution: dict[str, Any] | None = None


@dataclass
class DriftResult:
    """Per-feature drift, prediction drift, and the dataset-level verdict."""

    features: dict[str, FeatureDrift]
    prediction: FeatureDrift | None
    n_drifted: int
    n_features: int
    share_drifted: float
    drift_share: float
    dataset_drift: bool
    missing_columns: list[str] = field(default_factory=list)

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, f in self.features.items() if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"drifted_columns": self.drifted_columns}


# --------------------------------------------------------------------------- current data


def _finite(values: Any) -> np.ndarray:
    """Finite values only (NaN and +-inf dropped, like the profile's reservoir)."""
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


def _columns_of(current: Any) -> tuple[list[str], Callable[[str], Any]]:
    if hasattr(current, "column_names") and hasattr(current, "column"):  # pyarrow.Table
        return list(current.column_names), current.column
    if hasattr(current, "columns") and hasattr(current, "__getitem__"):  # pandas.DataFrame
        return [str(c) for c in current.columns], current.__getitem__
    if isinstance(current, Mapping):
        return [str(c) for c in current], current.__getitem__
    raise InvalidInput("current must be a pandas DataFrame, a pyarrow Table or a mapping")


def _as_float(col: Any) -> np.ndarray:
    if hasattr(col, "to_numpy") and hasattr(col, "is_null"):  # pyarrow (Chunked)Array
        import pyarrow.compute as pc

        col = pc.cast(col, "float64").to_numpy(zero_copy_only=False)
    elif hasattr(col, "to_numpy"):
        col = col.to_numpy(dtype=float, na_value=np.nan)
    try:
        return np.asarray(col, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise InvalidInput("a numeric reference column has non-numeric current values") from exc


def _as_str(col: Any) -> np.ndarray:
    """Non-null values as a str array (nulls dropped; numpy/pandas/pyarrow input)."""
    if hasattr(col, "is_null") and hasattr(col, "drop_null"):  # pyarrow
        import pyarrow.compute as pc

        col = col.drop_null()
        if col.type.equals(__import__("pyarrow").bool_()):
            return np.where(col.to_numpy(zero_copy_only=False), "True", "False")
        return np.asarray(pc.cast(col, "string").to_numpy(zero_copy_only=False), dtype=str)
    if hasattr(col, "dropna"):  # pandas
        col = col.dropna().to_numpy()
    a = np.asarray(col)
    if a.dtype.kind == "f":
        a = a[~np.isnan(a)]
    elif a.dtype.kind == "O":
        a = a[a == a]  # NaN != NaN
        a = a[a != None]  # noqa: E711  (elementwise, vectorised)
    return a.astype(str)


# --------------------------------------------------------------------------- per-kind work


def _category_counts(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """(distinct non-null values as str, sorted; their counts) of a current column.

    Arrow columns are counted by Arrow (``value_counts``, no Python string per row); other
    inputs go through a NumPy string array and ``np.unique``. Same keys and counts either way.
    """
    if hasattr(col, "is_null") and hasattr(col, "drop_null"):  # pyarrow
        import pyarrow as pa
        import pyarrow.compute as pc

        col = col.drop_null()
        if col.type.equals(pa.bool_()):
            trues = int(pc.sum(col).as_py() or 0)
            pairs = [("False", len(col) - trues), ("True", trues)]
            pairs = [(k, n) for k, n in pairs if n]
        else:
            if not pa.types.is_string(col.type):
                col = pc.cast(col, "string")
            vc = pc.value_counts(col)
            values = vc.field("values").to_pylist()
            pairs = sorted(zip(values, vc.field("counts").to_pylist(), strict=True))
        keys = np.array([k for k, _ in pairs], dtype=str)
        return keys, np.array([n for _, n in pairs], dtype=np.int64)
    return np.unique(_as_str(col), return_counts=True)


def _value_counts(values: np.ndarray) -> dict[Any, int]:
    keys, counts = np.unique(values, return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))


def _aligned(ref: Mapping[Any, int], cur: Mapping[Any, int]) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(set(ref) | set(cur), key=str)
    return (
        np.array([ref.get(k, 0) for k in keys], dtype=float),
        np.array([cur.get(k, 0) for k in keys], dtype=float),
    )


def _score_counts(test: str, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float | None]:
    """Score for a count-based test over aligned bins: (score, statistic)."""
    if test == "psi":
        return float(psi(ref, cur)), None
    if test == "jensenshannon":
        return jensen_shannon(ref, cur), None
    if test == "chisquare":
        stat, p = chi_square(ref, cur)
        return p, stat
    if test == "chisquare_2samp":
        stat, p = chi_square_two_sample(ref, cur)
        return p, stat
    if test == "z":
        if ref.size > 2 or cur.size > 2:
            raise InvalidInput("the z-test needs a binary column (at most two values)")
        if ref.size < 2:
            return 1.0, 0.0
        z, p = z_test_proportions(ref[0], ref.sum(), cur[0], cur.sum())
        return p, z
    raise InvalidInput(f"test {test!r} needs raw values, not counts")


def _finite_sorted(x_sorted: np.ndarray) -> np.ndarray:
    """The finite part of a sorted array without NaNs (a view: -inf first, +inf last)."""
    lo = int(np.searchsorted(x_sorted, -np.inf, side="right"))
    hi = int(np.searchsorted(x_sorted, np.inf, side="left"))
    return x_sorted[lo:hi]


def _numeric_feature(name: str, profile: Any, column: np.ndarray, override: Any) -> FeatureDrift:
    """One numeric column of the window (float64, NaN = missing) against its profile.

    Columns are done one at a time, so the temporaries are a few copies of one column. ks and
    wasserstein sort the current values once; the histogram over the reference edges is then
    read from the sorted values with ``len(edges)`` binary searches, and the statistics merge
    the sorted sample into them. Other tests bin the values without sorting (``profile.histogram``).
    """
    nan = np.isnan(column)
    n_nan = int(np.count_nonzero(nan))
    cur = column[~nan] if n_nan else column
    del nan
    sample = _finite(_get(profile, "sample", ()) or ())
    n_ref = _ref_rows(profile)
    ref_distinct = int(_get(profile, "distinct", 0) or 0)
    few = ref_distinct <= HISTOGRAM_DISTINCT
    exact = _get(profile, "categories") or {}
    if few and exact:
        # dockyard profiles keep exact value counts of a numeric column with few values
        ref_vc = {float(k): int(v) for k, v in exact.items()}
    else:
        ref_vc = _value_counts(sample) if few else {}
    cur_vc = _value_counts(cur) if few else {}
    # > 20 reference values already decides every branch of the rule
    n_unique = max(len(set(ref_vc) | set(cur_vc)), ref_distinct) if few else ref_distinct
    test, threshold = choose_test("numeric", n_ref, n_unique, override=override)
    per_value = few and n_unique <= HISTOGRAM_DISTINCT

    cur_sorted = np.sort(cur) if cur.size and test in ("ks", "wasserstein") else None
    edges = _get(profile, "bin_edges") or []
    hist: np.ndarray | None = None
    if len(edges):
        # bin of x = number of edges <= x: (-inf, e0), [e0, e1), ..., [e_last, +inf)
        e = np.asarray(list(edges), dtype=np.float64)
        if cur_sorted is not None:
            below = np.searchsorted(cur_sorted, e, side="left")  # values < each edge
            hist = np.diff(below, prepend=0, append=cur_sorted.size).astype(np.int64)
        else:
            hist = histogram(cur, e)

    stat: float | None = None
    note = ""
    if cur.size == 0:
        score, note = math.nan, "no current values"
    elif test == "ks":
        assert cur_sorted is not None
        stat, score = _ks_sorted(np.sort(sample), _finite_sorted(cur_sorted))
    elif test == "wasserstein":
        assert cur_sorted is not None
        score = _wasserstein_normed_sorted(
            np.sort(sample), _finite_sorted(cur_sorted), _get(profile, "std")
        )
    elif per_value:
        # one bin per value; reference frequencies from the profile's exact value counts when
        # it has them, else from the reservoir sample
        score, stat = _score_counts(test, *_aligned(ref_vc, cur_vc))
        note = "per-value bins"
    else:
        if hist is None:
            raise InvalidInput(f"column {name!r}: the profile has no histogram")
        ref_counts = np.asarray(_get(profile, "bin_counts"), dtype=float)
        score, stat = _score_counts(test, ref_counts, hist.astype(float))
        note = "reference quantile bins"
    distribution: dict[str, Any] | None = None
    if per_value:
        distribution = _values_distribution(ref_vc, cur_vc)
    elif hist is not None:
        distribution = {
            "kind": "bins",
            "edges": [float(e) for e in _get(profile, "bin_edges")],
            "reference": [int(c) for c in _get(profile, "bin_counts")],
            "current": [int(c) for c in hist],
        }
    return FeatureDrift(
        column=name,
        kind="numeric",
        test=test,
        score=float(score),
        threshold=threshold,
        drifted=is_drift(test, float(score), threshold),
        n_ref=n_ref,
        n_cur=int(cur.size),
        n_unique=int(n_unique),
        statistic=None if stat is None else float(stat),
        note=note,
        distribution=distribution,
    )


def _categorical_feature(
    name: str, profile: Any, kind: str, keys: np.ndarray, counts: np.ndarray, override: Any
) -> FeatureDrift:
    """``keys``: the distinct non-null current values (str, sorted), ``counts`` their counts."""
    cats = {str(k): int(v) for k, v in (_get(profile, "categories", {}) or {}).items()}
    other = int(_get(profile, "other", 0) or 0)
    n_ref = _ref_rows(profile)
    n_cur = int(counts.sum())
    known = np.isin(keys, np.array(list(cats), dtype=str)) if cats else np.zeros(keys.size, bool)
    unseen = keys[~known]
    cur_counts = {str(k): int(c) for k, c in zip(keys[known], counts[known], strict=True)}
    cur_other = int(counts[~known].sum())
    n_unique = max(len(set(cats) | set(keys.tolist())), int(_get(profile, "distinct", 0) or 0))
    test, threshold = choose_test(kind, n_ref, n_unique, override=override)
    if test in ("ks", "wasserstein"):
        raise InvalidInput(f"column {name!r}: {test} needs a numeric column")
    ref_map = dict(cats)
    cur_map = dict(cur_counts)
    note = ""
    if test == "z":
        # binary: compare the two actual values (reference keys or unseen current values)
        for k, c in zip(unseen.tolist(), counts[~known].tolist(), strict=True):
            cur_map[str(k)] = int(c)
        if other:
            note = "reference has an 'other' bucket; z-test uses the named values"
    else:
        # unseen current values and the reference's 'other' share one bin; when the reference
        # kept every category (other == 0) this equals per-value bins for JS and chi-square
        ref_map["\x00other"] = other
        cur_map["\x00other"] = cur_other
    score, stat = (
        (math.nan, None) if n_cur == 0 else _score_counts(test, *_aligned(ref_map, cur_map))
    )
    if n_cur == 0:
        note = "no current values"
    return FeatureDrift(
        column=name,
        kind=kind,
        test=test,
        score=float(score),
        threshold=threshold,
        drifted=is_drift(test, float(score), threshold),
        n_ref=n_ref,
        n_cur=n_cur,
        n_unique=int(n_unique),
        statistic=None if stat is None else float(stat),
        unseen_count=int(cur_other),
        unseen_categories=[str(u) for u in unseen[:_UNSEEN_EXAMPLES].tolist()],
        note=note,
        distribution=_values_distribution(ref_map, cur_map),
    )


def _values_distribution(ref: Mapping[Any, int], cur: Mapping[Any, int]) -> dict[str, Any]:
    """Counts per value for a plot: the most frequent ``_PLOT_VALUES`` values (reference and
    current together), the rest summed under ``"other"``."""
    keys = sorted(set(ref) | set(cur), key=lambda k: -(ref.get(k, 0) + cur.get(k, 0)))
    shown, rest = keys[:_PLOT_VALUES], keys[_PLOT_VALUES:]

    def label(k: Any) -> str:
        if k == "\x00other":
            return "other"
        if isinstance(k, float) and k.is_integer():
            return str(int(k))
        return str(k)

    labels = [label(k) for k in shown]
    r = [int(ref.get(k, 0)) for k in shown]
    c = [int(cur.get(k, 0)) for k in shown]
    if rest:
        labels.append("other")
        r.append(int(sum(ref.get(k, 0) for k in rest)))
        c.append(int(sum(cur.get(k, 0) for k in rest)))
    return {"kind": "values", "labels": labels, "reference": r, "current": c}


# --------------------------------------------------------------------------- the report


def drift_report(
    reference: Mapping[str, Any] | Any,
    current: Any,
    *,
    overrides: Mapping[str, tuple[str, float | None] | str] | None = None,
    share: float = 0.5,
    prediction: str | Iterable[str] | None = None,
) -> DriftResult:
    """Compare a current window with reference profiles, column by column.

    ``reference``: column -> profile (``ProfileLike`` object or mapping with those fields), or
    a ``dockyard.monitoring.profile.DatasetProfile`` (its ``columns`` are used).
    ``current``: pandas DataFrame, pyarrow Table or mapping of column -> array. Columns of the
    reference missing from the window are listed in ``missing_columns``; extra current columns
    are ignored. ``overrides``: column -> test name or ``(test, threshold)``. ``prediction``:
    the model-output column(s); reported in ``DriftResult.prediction`` (the first one) and not
    counted in the dataset share. Dataset drift = share of drifted features >= ``share``.
    """
    if not isinstance(reference, Mapping) and isinstance(
        getattr(reference, "columns", None), Mapping
    ):
        reference = reference.columns  # a dockyard.monitoring.profile.DatasetProfile
    overrides = dict(overrides or {})
    pred_cols = [prediction] if isinstance(prediction, str) else list(prediction or [])
    names, getter = _columns_of(current)
    present = set(names)
    missing = [c for c in reference if c not in present]
    cols = [c for c in reference if c in present]
    unknown = set(overrides) - set(reference)
    if unknown:
        raise InvalidInput(f"overrides for columns without a reference: {sorted(unknown)}")

    results: dict[str, FeatureDrift] = {}

    # one column at a time: memory beyond the window is a few copies of one column
    for c in cols:
        kind = _kind(reference[c])
        if kind == "numeric":
            results[c] = _numeric_feature(c, reference[c], _as_float(getter(c)), overrides.get(c))
        else:
            keys, counts = _category_counts(getter(c))
            results[c] = _categorical_feature(c, reference[c], kind, keys, counts, overrides.get(c))

    ordered = {c: results[c] for c in cols}
    pred = next((ordered[c] for c in pred_cols if c in ordered), None)
    features = {c: f for c, f in ordered.items() if c not in pred_cols}
    n_drifted = sum(f.drifted for f in features.values())
    n = len(features)
    share_drifted = n_drifted / n if n else 0.0
    return DriftResult(
        features=features,
        prediction=pred,
        n_drifted=n_drifted,
        n_features=n,
        share_drifted=share_drifted,
        drift_share=share,
        dataset_drift=bool(n) and share_drifted >= share,
        missing_columns=missing,
    )
