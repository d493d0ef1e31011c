"""Windows of the prediction log: which rows a monitor run looks at.

A window is either a span of time (``1h``, ``15m``, ``30s``, ``1d``) or a number of rows
(``1000rows``, ``rows=1000``). :func:`parse_window` reads the text a user gives
(``dockyard monitor run --window 1h``), :func:`tumbling` cuts a table into consecutive
windows, :func:`last_window` / :func:`latest` give the window an on-demand run looks at.

Decisions
    * **Spec syntax.** One positive integer and a unit: ``s``, ``m``, ``h``, ``d`` (case and
      spaces ignored, so ``"1 H"`` works); compound forms such as ``2h30m`` are refused (write
      ``150m``). Count windows: ``<n>rows`` / ``<n> rows`` / ``<n>row`` or ``rows=<n>``.
      Anything else is an :class:`~dockyard.core.errors.InvalidInput` naming the spec.
    * **Time windows are half-open** ``[start_ms, end_ms)`` in epoch milliseconds, UTC.
      :func:`tumbling` aligns them on ``origin_ms`` (default 0, the Unix epoch, so ``1h``
      windows start on the hour and ``1d`` windows at 00:00 UTC): window ``k`` is
      ``[origin + k*size, origin + (k+1)*size)`` and :attr:`Window.index` is that ``k``
      (absolute, so the same window gets the same index in every run: a scheduler can store
      results idempotently by it). Only non-empty windows are returned, in time order; rows
      keep their time order inside a window (stable sort). ``since_ms``/``until_ms`` drop
      rows outside ``[since, until)``; a window cut by them is flagged ``complete=False``
      (the scheduler passes ``until_ms=now`` and stores complete windows only).
    * **Count windows** are consecutive runs of ``size`` rows after a stable sort by time;
      index ``0, 1, ...``; ``start_ms`` is the first row's time and ``end_ms`` the last
      row's time + 1 (so the window is still ``[start, end)``); the last, partial window is
      included with ``complete=False``.
    * **On-demand runs** (:func:`last_window`): ``--window 1h`` means *the last hour ending
      now*, ``[now - size, now)``, not aligned (index 0). ``aligned=True`` gives instead the
      most recent complete aligned window before now, as the scheduler sees it.
      :func:`latest` applies that to a table (for a count spec: the last ``size`` rows with
      ``time < now``).
    * Rows with a null time belong to no window. ``time`` may be int64 epoch ms or an Arrow
      timestamp/date (converted to epoch ms).

Everything is vectorised (NumPy on the time column, then one ``take`` and zero-copy slices).
NumPy and pyarrow are imported on first use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from dockyard.core.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "UNIT_MS",
    "Window",
    "WindowSpec",
    "last_window",
    "latest",
    "parse_window",
    "tumbling",
]

#: Milliseconds per unit of a time window spec.
UNIT_MS: Final[dict[str, int]] = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TIME_RE: Final = re.compile(r"^(\d+)\s*([smhd])$")
_COUNT_RE: Final = re.compile(r"^(?:(\d+)\s*rows?|rows\s*=\s*(\d+))$")
_HELP: Final = "use one number and a unit (30s, 15m, 1h, 1d) or a row count (1000rows, rows=1000)"


@dataclass(frozen=True)
class WindowSpec:
    """A parsed window spec: ``kind`` "time" (``size`` in ms) or "count" (``size`` in rows)."""

    kind: str
    size: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "text": self.text}


@dataclass(frozen=True)
class Window:
    """One window: ``[start_ms, end_ms)``, its number of ``rows``, and whether it is whole."""

    index: int
    start_ms: int
    end_ms: int
    rows: int
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "rows": self.rows,
            "complete": self.complete,
        }


def parse_window(spec: str | WindowSpec) -> WindowSpec:
    """``"1h"`` -> time window of 3,600,000 ms; ``"1000rows"`` -> count window of 1000 rows."""
    if isinstance(spec, WindowSpec):
        return spec
    if not isinstance(spec, str):
        raise InvalidInput(f"window {spec!r} is not a window spec: {_HELP}", window=repr(spec))
    text = spec.strip()
    low = text.lower()
    m = _TIME_RE.match(low)
    if m is not None:
        n = int(m.group(1))
        if n <= 0:
            raise InvalidInput(f"window {spec!r} must be longer than 0: {_HELP}", window=spec)
        return WindowSpec("time", n * UNIT_MS[m.group(2)], text)
    m = _COUNT_RE.match(low)
    if m is not None:
        n = int(m.group(1) or m.group(2))
        if n <= 0:
            raise InvalidInput(f"window {spec!r} must hold at least 1 row: {_HELP}", window=spec)
        return WindowSpec("count", n, text)
    raise InvalidInput(f"window {spec!r} is not a window spec: {_HELP}", window=spec)


def last_window(
    now_ms: int, spec: str | WindowSpec, *, aligned: bool = False, origin_ms: int = 0
) -> Window:
    """The time window an on-demand run at ``now_ms`` looks at (``rows`` is 0: not counted).

    Default: ``[now - size, now)``, index 0. ``aligned=True``: the most recent complete
    window of the :func:`tumbling` grid (``end <= now``), with its absolute index.
    """
    ws = parse_window(spec)
    if ws.kind != "time":
        raise InvalidInput(
            f"window {ws.text!r} counts rows and has no time bounds; use latest() on the table",
            window=ws.text,
        )
    now = int(now_ms)
    if not aligned:
        return Window(0, now - ws.size, now, 0, True)
    k = (now - origin_ms) // ws.size - 1
    start = origin_ms + k * ws.size
    return Window(int(k), start, start + ws.size, 0, True)


def latest(
    table: pa.Table,
    spec: str | WindowSpec,
    *,
    now_ms: int,
    time_column: str = "time",
) -> tuple[Window, pa.Table]:
    """The rows an on-demand run looks at: ``[now - size, now)`` for a time spec, the last
    ``size`` rows (by time, ``time < now``) for a count spec (``complete`` False if fewer)."""
    import numpy as np

    ws = parse_window(spec)
    t = _times(table, time_column)
    now = int(now_ms)
    if ws.kind == "time":
        win = last_window(now, ws)
        keep = (t >= win.start_ms) & (t < win.end_ms) & ~_null_mask(table, time_column)
        idx = np.flatnonzero(keep)
        order = idx[np.argsort(t[idx], kind="stable")]
        return Window(0, win.start_ms, win.end_ms, int(order.size), True), _take(table, order)
    valid = ~_null_mask(table, time_column) & (t < now)
    idx = np.flatnonzero(valid)
    order = idx[np.argsort(t[idx], kind="stable")][-ws.size :]
    if order.size == 0:
        return Window(0, now, now, 0, False), table.slice(0, 0)
    ts = t[order]
    win = Window(0, int(ts[0]), int(ts[-1]) + 1, int(order.size), order.size == ws.size)
    return win, _take(table, order)


def tumbling(
    table: pa.Table,
    spec: str | WindowSpec,
    *,
    time_column: str = "time",
    origin_ms: int = 0,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[tuple[Window, pa.Table]]:
    """Cut ``table`` into consecutive windows (see the module notes for the rules)."""
    import numpy as np

    ws = parse_window(spec)
    t = _times(table, time_column)
    keep = ~_null_mask(table, time_column)
    if since_ms is not None:
        keep &= t >= since_ms
    if until_ms is not None:
        keep &= t < until_ms
    idx = np.flatnonzero(keep) if not keep.all() else None
    ts_all = t if idx is None else t[idx]
    perm = np.argsort(ts_all, kind="stable")
    sorted_t = ts_all[perm]
    order = perm if idx is None else idx[perm]
    if order.size == 0:
        return []
    if idx is None and bool(np.all(perm == np.arange(perm.size))):
        ordered = table  # already in time order: no copy
    else:
        ordered = _take(table, order)
    out: list[tuple[Window, pa.Table]] = []
    if ws.kind == "count":
        n = sorted_t.size
        for i, a in enumerate(range(0, n, ws.size)):
            b = min(a + ws.size, n)
            win = Window(i, int(sorted_t[a]), int(sorted_t[b - 1]) + 1, b - a, b - a == ws.size)
            out.append((win, ordered.slice(a, b - a)))
        return out
    k = np.floor_divide(sorted_t - origin_ms, ws.size)
    cuts = np.flatnonzero(np.diff(k)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [k.size]))
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        kk = int(k[a])
        start = origin_ms + kk * ws.size
        end = start + ws.size
        complete = not (
            (since_ms is not None and start < since_ms) or (until_ms is not None and end > until_ms)
        )
        out.append((Window(kk, start, end, b - a, complete), ordered.slice(a, b - a)))
    return out


# -- helpers -------------------------------------------------------------------------------------


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise InvalidInput(
            f"the table has no time column {name!r} (columns: {', '.join(table.column_names)})",
            column=name,
        )
    return table.column(name)


def _times(table: pa.Table, name: str) -> np.ndarray:
    """Epoch ms as int64 (nulls as 0; see :func:`_null_mask`)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    col = _column(table, name)
    typ = col.type
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        col = pc.cast(col, pa.timestamp("ms", tz=getattr(typ, "tz", None)), safe=False)
        col = pc.cast(col, pa.int64())
    elif pa.types.is_floating(typ):
        col = pc.cast(pc.floor(col), pa.int64(), safe=False)
    elif not pa.types.is_integer(typ):
        raise InvalidInput(f"time column {name!r} must hold epoch ms or timestamps, not {typ}")
    col = pc.fill_null(pc.cast(col, pa.int64()), 0)
    if col.num_chunks == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(col.to_numpy(), dtype=np.int64)


def _null_mask(table: pa.Table, name: str) -> np.ndarray:
    import numpy as np
    import pyarrow.compute as pc

    col = _column(table, name)
    if col.null_count == 0:
        return np.zeros(len(col), dtype=bool)
    return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)


def _take(table: pa.Table, order: np.ndarray) -> pa.Table:
    import pyarrow as pa

    if order.size == 0:
        return table.slice(0, 0)
    return table.take(pa.array(order, pa.int64()))
