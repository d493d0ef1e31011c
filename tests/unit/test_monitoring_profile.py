"""Reference profiles: exact merge, streaming equals one-shot, edge cases, compact JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.core.errors import InvalidInput
from dockyard.monitoring.profile import (
    ColumnProfile,
    DatasetProfile,
    ProfileBuilder,
    bin_counts,
    profile_table,
)

EDGES = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 4, n),
            "c": pd.Series(rng.choice(["a", "b", "c", None], n), dtype=object),
            "b": rng.random(n) < 0.3,
        }
    )


def _assert_close(a: ColumnProfile, b: ColumnProfile) -> None:
    assert a.count == b.count and a.missing == b.missing and a.infinite == b.infinite
    assert a.min == b.min and a.max == b.max
    for f in ("mean", "std"):
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None) == (vb is None)
        if va is not None:
            assert math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12), (f, va, vb)
    assert a.categories == b.categories and a.other == b.other


def test_numeric_profile_matches_numpy() -> None:
    df = _frame(5000)
    p = profile_table(df)
    col = p["x"]
    x = df["x"].to_numpy()
    fin = x[~np.isnan(x)]
    assert col.kind == "numeric" and col.dtype == "float"
    assert col.count == fin.size and col.missing == int(np.isnan(x).sum())
    assert col.min == fin.min() and col.max == fin.max()
    assert math.isclose(col.mean, fin.mean(), rel_tol=1e-12)
    assert math.isclose(col.std, fin.std(), rel_tol=1e-12)  # population std, as np.std
    # Fewer values than the sample size: exact deciles as edges, every value binned inside.
    deciles = np.quantile(fin, np.linspace(0, 1, 11))
    assert col.bin_edges[:-1] == deciles[:-1].tolist()
    assert col.bin_edges[-1] == np.nextafter(fin.max(), np.inf)  # the maximum is inside
    assert len(col.bin_counts) == len(col.bin_edges) + 1
    assert col.bin_counts[0] == 0 and col.bin_counts[-1] == 0
    assert sum(col.bin_counts) == col.count
    assert all(abs(c - col.count / 10) <= 1 for c in col.bin_counts[1:-1])
    assert sorted(col.sample) == col.sample and len(col.sample) == col.count
    assert col.quantiles["p50"] == pytest.approx(float(np.median(fin)), rel=1e-6)
    assert set(col.quantiles) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
    assert col.distinct_exact is False  # continuous: beyond top_k distinct values


def test_categorical_boolean_and_small_domain_numeric() -> None:
    df = _frame(3000)
    p = profile_table(df)
    c = p["c"]
    assert c.kind == "categorical"
    assert c.missing == int(df["c"].isna().sum())
    assert c.categories == df["c"].value_counts().to_dict()
    assert c.other == 0 and c.distinct == 3 and c.distinct_exact
    b = p["b"]
    assert b.kind == "boolean"
    assert b.categories == {"False": int((~df["b"]).sum()), "True": int(df["b"].sum())}
    assert b.mean == pytest.approx(df["b"].mean())
    k = p["k"]
    assert k.kind == "numeric" and k.dtype == "integer"
    assert k.distinct == 4 and k.distinct_exact
    assert {float(key): v for key, v in k.categories.items()} == {
        float(v): int(n) for v, n in df["k"].value_counts().items()
    }


def test_top_k_and_other() -> None:
    values = [f"v{i}" for i in range(20) for _ in range(20 - i)]
    p = profile_table(pd.DataFrame({"c": values}), top_k=5)
    c = p["c"]
    assert list(c.categories) == ["v0", "v1", "v2", "v3", "v4"]
    assert c.other == len(values) - sum(c.categories.values())
    assert c.distinct == 20 and c.distinct_exact


def test_streaming_builder_equals_one_shot() -> None:
    df = _frame(25_000, seed=3)
    one = profile_table(df, sample_size=4000)
    builder = ProfileBuilder(sample_size=4000)
    for start in range(0, len(df), 1733):
        builder.update(pa.Table.from_pandas(df.iloc[start : start + 1733], preserve_index=False))
    streamed = builder.build()
    assert streamed.row_count == one.row_count == len(df)
    for name in df.columns:
        a, b = one[name], streamed[name]
        _assert_close(a, b)
        assert a.bin_edges == b.bin_edges and a.bin_counts == b.bin_counts
        assert a.sample == b.sample and a.quantiles == b.quantiles


def test_merge_equals_profile_of_union_with_fixed_edges() -> None:
    df = _frame(20_000, seed=5)
    whole = profile_table(df, bin_edges={"x": EDGES})
    a = profile_table(df.iloc[:7000], bin_edges={"x": EDGES})
    b = profile_table(df.iloc[7000:], bin_edges={"x": EDGES})
    merged = a.merge(b)
    assert merged.row_count == whole.row_count
    for name in df.columns:
        _assert_close(merged[name], whole[name])
    assert merged["x"].bin_edges == EDGES
    assert merged["x"].bin_counts == whole["x"].bin_counts
    assert merged["x"].bins_estimated is False
    assert len(merged["x"].sample) == 10_000  # capacity kept, uniform over both parts
    assert merged["k"].distinct == 4 and merged["c"].distinct == 3


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.just(math.nan), st.floats(-1e6, 1e6)),
        max_size=60,
    ),
    st.lists(
        st.one_of(st.none(), st.just(math.nan), st.floats(-1e6, 1e6)),
        max_size=60,
    ),
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=0, max_size=60),
)
def test_merge_property(xs: list, ys: list, cats: list) -> None:
    n = min(len(xs), len(ys), len(cats))
    part_a = pd.DataFrame({"x": pd.array(xs[:n], dtype="Float64"), "c": cats[:n]})
    part_b = pd.DataFrame({"x": pd.array(ys[:n], dtype="Float64"), "c": cats[::-1][:n]})
    union = pd.concat([part_a, part_b], ignore_index=True)
    kw = {"bin_edges": {"x": EDGES}, "sample_size": 50}
    merged = profile_table(part_a, **kw).merge(profile_table(part_b, **kw))
    whole = profile_table(union, **kw)
    for name in ("x", "c"):
        _assert_close(merged[name], whole[name])
    assert merged["x"].bin_counts == whole["x"].bin_counts
    assert sorted(merged["x"].sample) == merged["x"].sample
    assert len(merged["x"].sample) == min(50, whole["x"].count)


def test_merge_with_different_edges_rebins_from_the_samples() -> None:
    rng = np.random.default_rng(0)
    a = profile_table(pd.DataFrame({"x": rng.normal(size=3000)}))
    b = profile_table(pd.DataFrame({"x": rng.normal(3, 1, size=3000)}))
    m = a.merge(b)["x"]
    assert m.bins_estimated is True
    assert sum(m.bin_counts) == 6000 and len(m.bin_counts) == len(m.bin_edges) + 1
    # Edges from the merged sample (float32 precision) span the data.
    assert m.bin_edges[0] == pytest.approx(m.min, rel=1e-6)
    assert m.bin_edges[-1] == pytest.approx(m.max, rel=1e-6)


def test_merge_rejects_mismatched_columns() -> None:
    a = profile_table(pd.DataFrame({"x": [1.0]}))
    b = profile_table(pd.DataFrame({"y": [1.0]}))
    with pytest.raises(InvalidInput, match="different columns"):
        a.merge(b)
    c = profile_table(pd.DataFrame({"x": ["s"]}))
    with pytest.raises(InvalidInput, match="cannot merge column"):
        a.merge(c)


def test_nan_none_all_null_and_constant_columns() -> None:
    df = pd.DataFrame(
        {
            "nan": [np.nan, 1.0, None, 2.0],
            "null": pd.array([None, None, None, None], dtype="Float64"),
            "obj": [None, "a", np.nan, "a"],
            "const": [7.0, 7.0, 7.0, 7.0],
        }
    )
    p = profile_table(df)
    assert (p["nan"].count, p["nan"].missing) == (2, 2)
    null = p["null"]
    assert (null.count, null.missing, null.min, null.mean, null.std) == (0, 4, None, None, None)
    assert null.bin_edges == [] and null.sample == [] and null.quantiles == {}
    assert (p["obj"].count, p["obj"].missing, p["obj"].categories) == (2, 2, {"a": 2})
    const = p["const"]
    assert const.bin_edges == [7.0, np.nextafter(7.0, 8.0)] and const.bin_counts == [0, 4, 0]
    assert const.std == 0.0 and const.distinct == 1
    # Production values around a degenerate reference land in the outer bins.
    assert bin_counts([6.0, 7.0, 8.0, np.nan], const.bin_edges) == [1, 1, 1]
    # Merging with an all-null part keeps the other part's histogram.
    empty = profile_table(pd.DataFrame({"nan": pd.array([None, None], dtype="Float64")}))
    merged = empty["nan"].merge(p["nan"])
    assert (merged.count, merged.missing) == (2, 4)
    assert merged.bin_counts == p["nan"].bin_counts and merged.mean == p["nan"].mean
    json.dumps(p.to_dict(), allow_nan=False)


def test_huge_values_and_infinities() -> None:
    big = np.array([1e300, -1e300, 5e299, 1e308, -1e308, 3.0])
    p = profile_table(pd.DataFrame({"x": np.concatenate([big, [np.inf, -np.inf]])}))
    col = p["x"]
    assert col.count == 8 and col.infinite == 2
    assert col.min == -np.inf and col.max == np.inf
    # Cancellation at a 1e308 scale: equal to NumPy within rounding at that scale.
    assert math.isclose(col.mean, big.mean(), abs_tol=1e-14 * 1e308)
    assert math.isclose(col.std, np.std(big / 1e308) * 1e308, rel_tol=1e-9)
    assert math.isfinite(col.std)
    a = profile_table(pd.DataFrame({"x": big[:3]}))
    b = profile_table(pd.DataFrame({"x": big[3:]}))
    m = a.merge(b)["x"]
    assert math.isclose(m.std, col.std, rel_tol=1e-9)
    assert math.isclose(m.mean, col.mean, abs_tol=1e-14 * 1e308)
    text = json.dumps(p.to_dict(), allow_nan=False)
    assert DatasetProfile.from_dict(json.loads(text)) == p


def test_outer_bins_count_values_outside_the_reference_range() -> None:
    ref = profile_table(pd.DataFrame({"x": np.arange(100.0)}))
    edges = ref.bin_edges()
    window = profile_table(pd.DataFrame({"x": [-5.0, 0.0, 99.0, 150.0, 200.0]}), bin_edges=edges)
    counts = window["x"].bin_counts
    assert counts[0] == 1 and counts[-1] == 2 and sum(counts) == 5
    assert counts == bin_counts([-5.0, 0.0, 99.0, 150.0, 200.0], edges["x"])


def test_round_trip_through_json() -> None:
    df = _frame(4000)
    df["t"] = pd.date_range("2024-01-01", periods=len(df), freq="min")
    df["cat"] = df["c"].astype("category")
    p = profile_table(df, sample_size=500)
    text = json.dumps(p.to_dict(), allow_nan=False)
    back = DatasetProfile.from_dict(json.loads(text))
    assert back == p
    assert back["t"].dtype == "datetime" and back["cat"].kind == "categorical"
    with pytest.raises(InvalidInput, match="unsupported profile format"):
        DatasetProfile.from_dict({**p.to_dict(), "version": "other/9"})


def test_size_bound_for_a_large_wide_table() -> None:
    rng = np.random.default_rng(1)
    n = 200_000  # enough to fill every reservoir; the size does not grow with the rows
    data = {f"n{i}": rng.normal(size=n) for i in range(20)}
    cats = np.array([f"cat_{i}" for i in range(10)])
    data.update({f"c{i}": cats[rng.integers(0, 10, n)] for i in range(5)})
    p = profile_table(pa.table(data))
    size = len(json.dumps(p.to_dict(), separators=(",", ":")))
    assert all(len(p[f"n{i}"].sample) == 10_000 for i in range(20))
    assert size < 1_000_000, size


def test_vectorised_on_a_million_rows() -> None:
    # A sanity run, not a timing assertion: per-row Python would take minutes here.
    rng = np.random.default_rng(2)
    n = 1_000_000
    p = profile_table(pa.table({"x": rng.normal(size=n), "y": rng.integers(0, 10, n)}))
    assert p["x"].count == n and sum(p["x"].bin_counts) == n
    # Edges from the first 10,000 values are close to the true deciles.
    inner = np.array(p["x"].bin_counts[1:-1]) / n
    assert np.all(np.abs(inner - 0.1) < 0.01)
    assert p["y"].distinct == 10 and sum(p["y"].categories.values()) == n


def test_invalid_inputs() -> None:
    with pytest.raises(InvalidInput, match="cannot profile"):
        profile_table([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="bins"):
        ProfileBuilder(bins=0)
    with pytest.raises(InvalidInput, match="unknown columns"):
        profile_table(pd.DataFrame({"x": [1.0]}), bin_edges={"y": [0.0, 1.0]})
    with pytest.raises(InvalidInput, match="sorted"):
        profile_table(pd.DataFrame({"x": [1.0]}), bin_edges={"x": [1.0, 0.0]})
    b = ProfileBuilder().update(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(InvalidInput, match="differ"):
        b.update(pd.DataFrame({"y": [1.0]}))


def test_reservoir_is_uniform_and_merge_keeps_it_so() -> None:
    n = 200_000
    values = np.arange(n, dtype=np.float64)
    p = profile_table(pd.DataFrame({"x": values}), sample_size=5000, seed=7)["x"]
    s = np.array(p.sample)
    assert s.size == 5000 and np.unique(s).size == 5000
    # A uniform sample of 0..n-1: its mean is n/2 within a few standard errors (~0.004 n).
    assert abs(s.mean() - n / 2) < 0.02 * n
    assert abs(np.mean(s < n / 10) - 0.1) < 0.02
    # Unequal parts: the merged sample draws from each in proportion to its size.
    a = profile_table(pd.DataFrame({"x": values[: n // 4]}), sample_size=5000)
    b = profile_table(pd.DataFrame({"x": values[n // 4 :]}), sample_size=5000)
    m = np.array(a.merge(b)["x"].sample)
    assert m.size == 5000 and abs(np.mean(m < n // 4) - 0.25) < 0.03


def test_merge_of_booleans_and_of_categories_beyond_top_k() -> None:
    a = profile_table(pd.DataFrame({"b": [True, False, True], "c": ["x", "y", "z"]}), top_k=2)
    b = profile_table(pd.DataFrame({"b": [None, True, True], "c": ["x", "x", "w"]}), top_k=2)
    m = a.merge(b)
    assert m["b"].categories == {"False": 1, "True": 4} and m["b"].missing == 1
    assert m["b"].mean == pytest.approx(0.8)
    c = m["c"]
    assert c.categories["x"] == 3 and sum(c.categories.values()) + c.other == 6
    assert c.distinct_exact is False and c.distinct >= 3  # a part had values in 'other'
