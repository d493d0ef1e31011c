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


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = ""
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption or None, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col.endswith(" id"))
    for row in rows:
        table.add_row(*(fmt_value(v) for v in row))
    Console().print(table)


def print_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
