"""`dockyard logs` (the prediction log) and `dockyard labels` (delayed ground truth).

Both work on the artifact root of the settings (``DOCKYARD_ARTIFACT_ROOT``, or
``<DOCKYARD_HOME>/artifacts``) with its encryption key, and check permissions on the metadata
store acting as the local user (``DOCKYARD_USER`` or the OS user), like ``dockyard redaction``:
reading a log needs ``endpoint:read`` on the endpoint, ingesting labels ``endpoint:deploy``
(audited as ``labels.ingest``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from dockyard.cli._output import fmt_time, print_json, print_table

logs = typer.Typer(
    help="The prediction log: query and summarise logged requests.", no_args_is_help=True
)
labels = typer.Typer(
    help="Ground-truth labels, joined to predictions by request id.", no_args_is_help=True
)

ENDPOINT = typer.Option(..., "--endpoint", "-e", help="The endpoint.")
SINCE = typer.Option(
    "1h", "--since", help="From: a duration before now (15m, 1h, 2d), ISO 8601 or epoch ms."
)
UNTIL = typer.Option(None, "--until", help="Before: a duration before now, ISO 8601 or epoch ms.")


def _context() -> tuple[Any, Any, Any]:
    """(settings, cipher, actor) of this process."""
    from dockyard.artifacts.crypto import cipher_from_settings
    from dockyard.core.config import load_settings
    from dockyard.governance.audit import Actor

    settings = load_settings()
    return settings, cipher_from_settings(settings), Actor.local(settings.user)


def _store(settings: Any) -> Any:
    from dockyard.client.client import _local_backend

    return _local_backend(settings).store


def _require_read(settings: Any, actor: Any, endpoint: str) -> None:
    from dockyard.core.serving_entities import check_endpoint_name
    from dockyard.governance.permissions import ENDPOINT_READ, Authorizer

    check_endpoint_name(endpoint)
    Authorizer.local(_store(settings), actor.name).require(ENDPOINT_READ, endpoint)


def _read(endpoint: str, since: str | None, until: str | None, columns: Any = None) -> Any:
    from dockyard.serving.predlog import parse_time_spec, read_predictions

    lo = parse_time_spec(since, option="--since")
    hi = parse_time_spec(until, option="--until")
    settings, cipher, actor = _context()
    _require_read(settings, actor, endpoint)
    return read_predictions(
        settings.resolved_artifact_root,
        endpoint,
        since=lo,
        until=hi,
        cipher=cipher,
        columns=columns,
    )


def _cell(value: Any, width: int = 60) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str)
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@logs.command("query")
def query(
    endpoint: str = ENDPOINT,
    since: str = SINCE,
    until: str = UNTIL,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Newest rows to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    csv: Path = typer.Option(
        None, "--csv", help="Write every matching row (not only --limit) to this CSV file."
    ),
) -> None:
    """Show the newest logged records of an endpoint (one per input row)."""
    table = _read(endpoint, since, until)
    if csv is not None:
        _write_csv(table, csv)
        typer.echo(f"{table.num_rows} records written to {csv}")
        return
    newest = table.slice(max(table.num_rows - limit, 0)).to_pylist()[::-1]
    if as_json:
        print_json(newest)
        return
    inputs = [c for c in table.column_names if c.startswith("in.")]
    print_table(
        f"Prediction log of {endpoint} ({len(newest)} newest of {table.num_rows})",
        [
            "time (UTC)",
            "request id",
            "row",
            "variant",
            "version",
            "status",
            "ms",
            "prediction",
            "inputs",
        ],
        [
            (
                fmt_time(r["time"]),
                r["request_id"],
                r["row"],
                r["variant"] + (" (shadow)" if r.get("shadow") else ""),
                r["model_version"],
                r["status"],
                r["latency_ms"],
                _cell(r.get("prediction")),
                _cell({c[3:]: r[c] for c in inputs if r.get(c) is not None}),
            )
            for r in newest
        ],
    )


def _write_csv(table: Any, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from dockyard.serving.predlog import _as_text

    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):  # proba and nested inputs: JSON text
            table = table.set_column(i, field.name, _as_text(table.column(i)))
    pcsv.write_csv(table, str(path))


@logs.command("stats")
def stats(
    endpoint: str = ENDPOINT,
    since: str = typer.Option("24h", "--since", help="From (default 24h before now)."),
    until: str = UNTIL,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Records per hour, variant and status, with mean and p95 latency."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _read(
        endpoint, since, until, columns=["time", "variant", "status", "shadow", "latency_ms"]
    )
    rows: list[dict[str, Any]] = []
    if table.num_rows:
        hour = pc.multiply(pc.divide(table.column("time"), 3_600_000), 3_600_000)
        grouped = (
            pa.table(
                {
                    "hour": hour,
                    "variant": table.column("variant"),
                    "shadow": table.column("shadow"),
                    "status": table.column("status"),
                    "latency_ms": table.column("latency_ms"),
                }
            )
            .group_by(["hour", "variant", "shadow", "status"])
            .aggregate(
                [
                    ("latency_ms", "count"),
                    ("latency_ms", "mean"),
                    ("latency_ms", "tdigest", pc.TDigestOptions(q=0.95)),
                ]
            )
            .sort_by([("hour", "ascending"), ("variant", "ascending"), ("status", "ascending")])
        )
        for r in grouped.to_pylist():
            p95 = r["latency_ms_tdigest"]
            rows.append(
                {
                    "hour": fmt_time(r["hour"])[:13] + ":00",
                    "variant": r["variant"],
                    "shadow": r["shadow"],
                    "status": r["status"],
                    "records": r["latency_ms_count"],
                    "mean_ms": r["latency_ms_mean"],
                    "p95_ms": p95[0] if isinstance(p95, list) and p95 else p95,
                }
            )
    if as_json:
        print_json({"endpoint": endpoint, "records": table.num_rows, "groups": rows})
        return
    print_table(
        f"Prediction log of {endpoint}: {table.num_rows} records",
        ["hour (UTC)", "variant", "status", "records", "mean ms", "p95 ms"],
        [
            (
                r["hour"],
                r["variant"] + (" (shadow)" if r["shadow"] else ""),
                r["status"],
                r["records"],
                r["mean_ms"],
                r["p95_ms"],
            )
            for r in rows
        ],
    )


@labels.command("ingest")
def ingest(
    file: Path = typer.Argument(..., help="Labels: .csv, .tsv or .parquet."),
    endpoint: str = ENDPOINT,
    id_column: str = typer.Option("request_id", "--id-column", help="Column of request ids."),
    label_column: str = typer.Option("label", "--label-column", help="Column of labels."),
    row_column: str = typer.Option(
        "row", "--row-column", help="Column of row numbers, if any (default: row 0)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Store ground-truth labels of an endpoint's predictions (a later ingest wins)."""
    from dockyard.serving.labels import LabelService, LabelStore

    settings, cipher, actor = _context()
    service = LabelService(
        _store(settings), LabelStore(settings.resolved_artifact_root, cipher), actor
    )
    kwargs: dict[str, Any] = {
        "id_column": id_column,
        "label_column": label_column,
        "row_column": row_column,
        "source": file.name,
    }
    big = file.is_file() and file.stat().st_size > 4 * 1024 * 1024
    if big and not as_json:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from dockyard.cli._output import console

        with Progress(
            SpinnerColumn(),
            TextColumn("ingesting {task.fields[rows]:,} labels"),
            TimeElapsedColumn(),
            console=console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("ingest", total=None, rows=0)
            result = service.ingest(
                endpoint, file, progress=lambda n: bar.update(task, rows=n), **kwargs
            )
    else:
        result = service.ingest(endpoint, file, **kwargs)
    if as_json:
        print_json(result)
    else:
        typer.echo(f"{result.count} labels of endpoint {result.endpoint} stored")
