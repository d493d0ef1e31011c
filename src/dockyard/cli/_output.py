"""How the CLI shows things: Rich tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=2, sort_keys=False) + "\n")


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def console(stderr: bool = False) -> Any:
    """A Rich console; when output is not a terminal, wide enough that ids never wrap."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 200)


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = ""
) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        caption=caption or None,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for i, col in enumerate(columns):
        # Ids must stay copyable in one piece; the first column names the row.
        table.add_column(col, overflow="fold", no_wrap=i == 0 or col.endswith(" id"))
    for row in rows:
        table.add_row(*(fmt_value(v) for v in row))
    console().print(table)


def print_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
