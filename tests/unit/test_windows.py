"""Window specs, tumbling windows over the prediction log, and the on-demand window."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dockyard.core.errors import InvalidInput
from dockyard.monitoring.windows import (
    Window,
    WindowSpec,
    last_window,
    latest,
    parse_window,
    tumbling,
)

H = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, on the hour and on the day


def _table(times: list[int | None]) -> pa.Table:
    n = len(times)
    return pa.table(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "time": pa.array(times, pa.int64()),
            "proba": pa.array([[0.1 * (i % 10), 1 - 0.1 * (i % 10)] for i in range(n)]),
        }
    )


@pytest.mark.parametrize(
    ("text", "kind", "size"),
    [
        ("1h", "time", H),
        ("15m", "time", 15 * 60_000),
        ("30s", "time", 30_000),
        ("1d", "time", 86_400_000),
        (" 2 H ", "time", 2 * H),
        ("1000rows", "count", 1000),
        ("1000 rows", "count", 1000),
        ("1row", "count", 1),
        ("rows=1000", "count", 1000),
        ("ROWS = 50", "count", 50),
    ],
)
def test_parse_window(text: str, kind: str, size: int) -> None:
    spec = parse_window(text)
    assert (spec.kind, spec.size, spec.text) == (kind, size, text.strip())
    assert parse_window(spec) is spec
    assert spec.to_dict() == {"kind": kind, "size": size, "text": text.strip()}


@pytest.mark.parametrize("text", ["", "h", "1", "0h", "1.5h", "2h30m", "1w", "-1h", "rows=0", "x"])
def test_parse_window_rejects_with_the_spec_named(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_window(text)
    assert repr(text) in str(err.value)


def test_parse_window_rejects_non_text() -> None:
    with pytest.raises(InvalidInput):
        parse_window(3600)  # type: ignore[arg-type]


def test_tumbling_aligns_on_the_hour_and_skips_empty_windows() -> None:
    times = [T0 + 5, T0 + H - 1, T0 + H, T0 + 3 * H + 10, T0 + 2, T0 + H + 7]
    out = tumbling(_table(times), "1h")
    assert [w.rows for w, _ in out] == [3, 2, 1]
    first, second, third = (w for w, _ in out)
    assert first.start_ms == T0 and first.end_ms == T0 + H
    assert first.index == T0 // H  # absolute index: the same window gets the same number
    assert second.start_ms == T0 + H and third.start_ms == T0 + 3 * H  # hour 2 is empty: absent
    assert all(w.complete for w, _ in out)
    # Rows inside a window in time order; every column (lists too) follows.
    t0 = out[0][1]
    assert t0.column("time").to_pylist() == [T0 + 2, T0 + 5, T0 + H - 1]
    assert t0.column("request_id").to_pylist() == ["r4", "r0", "r1"]
    assert t0.column("proba").to_pylist()[0] == pytest.approx([0.4, 0.6])
    assert first.to_dict() == {
        "index": T0 // H,
        "start_ms": T0,
        "end_ms": T0 + H,
        "rows": 3,
        "complete": True,
    }


def test_tumbling_origin_since_until_and_nulls() -> None:
    times = [T0 + 10 * 60_000, T0 + 40 * 60_000, T0 + 70 * 60_000, None, T0 + 100 * 60_000]
    # Windows of 1h starting at :30 past.
    out = tumbling(_table(times), "1h", origin_ms=T0 + 30 * 60_000)
    assert [(w.start_ms - T0) // 60_000 for w, _ in out] == [-30, 30, 90]
    assert [w.rows for w, _ in out] == [1, 2, 1]  # the null-time row belongs to no window
    # since/until cut the rows and mark the cut windows incomplete.
    out = tumbling(_table(times), "1h", since_ms=T0 + 20 * 60_000, until_ms=T0 + 80 * 60_000)
    assert [(w.rows, w.complete) for w, _ in out] == [(1, False), (1, False)]
    out = tumbling(_table(times), "1h", until_ms=T0 + 2 * H)
    assert [(w.rows, w.complete) for w, _ in out] == [(2, True), (2, True)]
    assert tumbling(_table(times), "1h", since_ms=T0 + 5 * H) == []


def test_tumbling_count_windows_keep_the_partial_last() -> None:
    rng = np.random.default_rng(0)
    times = (T0 + rng.permutation(10) * 1000).tolist()
    out = tumbling(_table(times), "rows=4")
    assert [(w.index, w.rows, w.complete) for w, _ in out] == [
        (0, 4, True),
        (1, 4, True),
        (2, 2, False),
    ]
    assert out[0][0].start_ms == T0 and out[0][0].end_ms == T0 + 3000 + 1
    assert out[2][1].column("time").to_pylist() == [T0 + 8000, T0 + 9000]
    flat = [t for _, tab in out for t in tab.column("time").to_pylist()]
    assert flat == sorted(times)


def test_tumbling_timestamp_column_and_large_table() -> None:
    n = 200_000
    rng = np.random.default_rng(1)
    ms = T0 + rng.integers(0, 24 * H, n)
    table = pa.table({"time": pa.array(ms.astype("datetime64[ms]")), "x": np.arange(n)})
    out = tumbling(table, "1h")
    assert len(out) == 24
    assert sum(w.rows for w, _ in out) == n
    for w, tab in out:
        t = tab.column("time").cast(pa.int64()).to_numpy()
        assert t.min() >= w.start_ms and t.max() < w.end_ms
        assert np.all(np.diff(t) >= 0)
    expected = np.bincount((ms - T0) // H, minlength=24)
    assert [w.rows for w, _ in out] == expected.tolist()


def test_tumbling_rejects_a_missing_or_non_time_column() -> None:
    with pytest.raises(InvalidInput, match="no time column 'ts'"):
        tumbling(_table([T0]), "1h", time_column="ts")
    with pytest.raises(InvalidInput, match="epoch ms"):
        tumbling(pa.table({"time": ["x"]}), "1h")


def test_last_window_on_demand_and_aligned() -> None:
    now = T0 + 90 * 60_000  # 01:30
    assert last_window(now, "1h") == Window(0, now - H, now, 0, True)
    aligned = last_window(now, "1h", aligned=True)
    assert (aligned.start_ms, aligned.end_ms, aligned.index) == (T0, T0 + H, T0 // H)
    # Exactly on a boundary: the window that just ended.
    assert last_window(T0 + H, "1h", aligned=True).start_ms == T0
    with pytest.raises(InvalidInput, match="counts rows"):
        last_window(now, "100rows")
    assert isinstance(parse_window("1h"), WindowSpec)


def test_latest_time_and_count() -> None:
    now = T0 + 2 * H
    times = [T0 + 10, T0 + H + 5, T0 + 2 * H - 1, T0 + 2 * H, T0 + H + 1]
    win, rows = latest(_table(times), "1h", now_ms=now)
    assert (win.start_ms, win.end_ms, win.rows) == (now - H, now, 3)
    assert rows.column("time").to_pylist() == [T0 + H + 1, T0 + H + 5, T0 + 2 * H - 1]
    win, rows = latest(_table(times), "2rows", now_ms=now)
    assert rows.column("time").to_pylist() == [T0 + H + 5, T0 + 2 * H - 1]
    assert win.complete and win.rows == 2
    win, rows = latest(_table(times), "10rows", now_ms=now)
    assert win.rows == 4 and not win.complete
    win, rows = latest(_table(times), "10rows", now_ms=T0)
    assert rows.num_rows == 0 and not win.complete
