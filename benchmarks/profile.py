"""Profile 1M rows x 25 columns (20 numeric, 5 categorical of 10 categories): time and memory.

    python benchmarks/profile.py [--rows 1000000] [--repeat 3]

Prints, for Dockyard's ``profile_table`` (one call, and a ProfileBuilder fed 100k-row batches),
the median wall time, the peak memory Python allocated during the call (tracemalloc, which
NumPy reports to) on top of the loaded data, and the JSON size of the profile; and, as the
hardware reference, a bare NumPy/Arrow pass doing the core of the same work (per numeric column: NaN
mask, min/max/mean/std, deciles of a 10k prefix, fixed-edge histogram; per categorical column:
Arrow ``value_counts``, since ``np.unique`` on
Python strings would be a straw man).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dockyard.monitoring.profile import ProfileBuilder, profile_table


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i in range(20):
        x = rng.normal(i, 1 + i / 10, rows)
        x[rng.random(rows) < 0.01] = np.nan
        cols[f"num_{i}"] = x
    cats = np.array([f"category_{j}" for j in range(10)])
    for i in range(5):
        cols[f"cat_{i}"] = pa.array(cats[rng.integers(0, 10, rows)])
    return pa.table(cols)


def bare_numpy(table: pa.Table) -> None:
    for name in table.column_names:
        col = table[name]
        if name.startswith("num_"):
            x = col.to_numpy()
            x = x[~np.isnan(x)]
            x.min(), x.max(), x.mean(), x.std()
            edges = np.quantile(x[:10_000], np.linspace(0, 1, 11))
            np.bincount(np.searchsorted(edges, x, side="right"), minlength=12)
        else:
            pc.value_counts(col)


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    times, peaks, result = [], [], None
    for _ in range(repeat):
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(times), max(peaks) / 2**20, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    table = make_table(args.rows)
    data_mb = table.nbytes / 2**20

    def streamed() -> Any:
        b = ProfileBuilder()
        for batch in table.to_batches(max_chunksize=100_000):
            b.update(batch)
        return b.build()

    rows = []
    t_np, m_np, _ = measure(lambda: bare_numpy(table), args.repeat)
    t_one, m_one, prof = measure(lambda: profile_table(table), args.repeat)
    t_st, m_st, prof2 = measure(streamed, args.repeat)
    size = len(json.dumps(prof.to_dict(), separators=(",", ":")))
    rows.append(("bare NumPy/Arrow pass (reference)", t_np, m_np, "-"))
    rows.append(("dockyard profile_table", t_one, m_one, f"{size / 1024:.0f} KiB"))
    rows.append(("dockyard ProfileBuilder (100k batches)", t_st, m_st, "-"))
    assert prof2.columns.keys() == prof.columns.keys()

    print(f"{args.rows:,} rows x {table.num_columns} columns, data {data_mb:.0f} MiB in Arrow")
    print(f"{'':40} {'wall (s)':>9} {'peak alloc (MiB)':>17} {'JSON':>9}")
    for name, t, m, s in rows:
        print(f"{name:40} {t:9.2f} {m:17.1f} {s:>9}")
    print(f"ratio profile_table / bare pass: {t_one / t_np:.2f}x")
    arrow_peak = pa.default_memory_pool().max_memory() / 2**20
    print(f"Arrow memory pool peak (data included, not seen by tracemalloc): {arrow_peak:.0f} MiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS (data included): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
