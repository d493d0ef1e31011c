"""`dockyard redaction`: what the prediction log drops, hashes or masks, per endpoint.

These commands work on the metadata store named by the settings (``DOCKYARD_DB_URL``, or the
SQLite file in ``DOCKYARD_HOME``), acting as the local user (``DOCKYARD_USER`` or the OS user),
like ``dockyard users``: setting or deleting a policy needs ``endpoint:deploy`` on the
endpoint, reading it ``endpoint:read``. ``test`` applies an endpoint's policy to the first rows
of a local file, so you can see what would be logged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from dockyard.cli._output import fmt_time, print_json, print_table

app = typer.Typer(
    help="Redaction rules per endpoint: drop, hash or mask columns before inputs are logged.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _settings() -> Any:
    from dockyard.core.config import load_settings

    return load_settings()


def _service(settings: Any = None) -> Any:
    from dockyard.client.client import _local_backend
    from dockyard.governance.audit import Actor
    from dockyard.governance.redaction_service import RedactionService

    settings = settings or _settings()
    return RedactionService(_local_backend(settings).store, Actor.local(settings.user))


def _mask_rule(spec: str) -> dict[str, Any]:
    """``COLUMN`` or ``COLUMN:N`` (N characters kept; taken after the last colon)."""
    column, sep, keep = spec.rpartition(":")
    if sep and keep.strip().isdigit():
        return {"column": column, "action": "mask", "keep": int(keep)}
    return {"column": spec, "action": "mask"}


def _rules_text(rules: Any) -> str:
    return "; ".join(
        f"{r.action} {r.column}" + (f" (keep {r.keep})" if r.action == "mask" else "")
        for r in rules
    )


def _show_rules(title: str, rules: Any, caption: str = "") -> None:
    print_table(
        title,
        ["column", "action", "keep"],
        [(r.column, r.action, r.keep if r.action == "mask" else "") for r in rules],
        caption=caption,
    )


@app.command("set")
def set_policy(
    endpoint: str,
    drop: list[str] = typer.Option(None, "--drop", help="A column to remove (repeatable)."),
    hash_: list[str] = typer.Option(
        None,
        "--hash",
        help="A column whose values become keyed hashes (HMAC-SHA256, needs "
        "DOCKYARD_REDACTION_KEY where logs are written; repeatable).",
    ),
    mask: list[str] = typer.Option(
        None,
        "--mask",
        help="COLUMN[:N]: all but the last N characters (default 4) become '*' (repeatable).",
    ),
    expected_version: int = typer.Option(
        None,
        "--expected-version",
        help="Only replace this version of the policy (0: only if there is none yet).",
    ),
    as_json: bool = JSON,
) -> None:
    """Set the endpoint's redaction rules (replacing any it had)."""
    rules = (
        [{"column": c, "action": "drop"} for c in drop or []]
        + [{"column": c, "action": "hash"} for c in hash_ or []]
        + [_mask_rule(c) for c in mask or []]
    )
    settings = _settings()
    saved = _service(settings).set_policy(endpoint, rules, expected_version=expected_version)
    if as_json:
        print_json(saved)
    else:
        typer.echo(
            f"redaction policy of endpoint {saved.endpoint} set (version {saved.version}): "
            + _rules_text(saved.rules)
        )
    if saved.policy.needs_key and not getattr(settings, "redaction_key", None):
        typer.echo(
            "note: DOCKYARD_REDACTION_KEY is not set here; hash rules need it wherever inputs "
            "are logged (and for `dockyard redaction test`)",
            err=True,
        )


@app.command("show")
def show_policy(endpoint: str, as_json: bool = JSON) -> None:
    """Show the endpoint's redaction rules."""
    saved = _service().get_policy(endpoint)
    if as_json:
        print_json(saved)
        return
    _show_rules(
        f"Redaction of endpoint {saved.endpoint}",
        saved.rules,
        caption=f"version {saved.version}, set by {saved.updated_by} at "
        f"{fmt_time(saved.updated_at)} UTC",
    )


@app.command("list")
def list_policies(as_json: bool = JSON) -> None:
    """List the endpoints that have redaction rules."""
    items = _service().list_policies()
    if as_json:
        print_json(items)
        return
    print_table(
        "Redaction policies",
        ["endpoint", "rules", "version", "updated by", "updated at"],
        [
            (p.endpoint, _rules_text(p.rules), p.version, p.updated_by, fmt_time(p.updated_at))
            for p in items
        ],
    )


@app.command("delete")
def delete_policy(endpoint: str, as_json: bool = JSON) -> None:
    """Delete the endpoint's redaction rules (its inputs are then logged as they come)."""
    removed = _service().delete_policy(endpoint)
    if as_json:
        print_json(removed)
    else:
        typer.echo(f"redaction policy of endpoint {removed.endpoint} deleted")


# -- test ----------------------------------------------------------------------------------------


def _read_sample(path: Path, rows: int) -> Any:
    """The first ``rows`` rows of a file: a pyarrow Table (CSV, Parquet) or a list of records /
    dict of columns (JSON, JSON lines), as a request body would give them."""
    from dockyard.core.errors import InvalidInput, NotFound

    if not path.is_file():
        raise NotFound(f"sample file {path} does not exist")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow as pa
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            batch = next(pf.iter_batches(batch_size=rows), None)
            if batch is None:
                return pf.schema_arrow.empty_table()
            return pa.Table.from_batches([batch])
        if name.endswith((".csv", ".csv.gz", ".csv.bz2")):
            import pyarrow as pa
            import pyarrow.csv as pcsv

            batches, n = [], 0
            with pcsv.open_csv(path) as reader:
                for batch in reader:
                    batches.append(batch)
                    n += batch.num_rows
                    if n >= rows:
                        break
                schema = reader.schema
            return pa.Table.from_batches(batches, schema=schema).slice(0, rows)
        if name.endswith((".jsonl", ".ndjson")):
            out = []
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        out.append(json.loads(line))
                        if len(out) >= rows:
                            break
            return out
        if name.endswith(".json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, list):
                return data[:rows]
            if isinstance(data, dict):
                return {k: v[:rows] if isinstance(v, list) else v for k, v in data.items()}
            raise InvalidInput(
                f"sample file {path} holds a JSON {type(data).__name__}; expected a list of "
                "records or an object of columns"
            )
    except (ValueError, OSError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"sample file {path} cannot be read: {exc}") from None
    raise InvalidInput(
        f"sample file {path} must be .csv, .parquet, .json (records or columns) or .jsonl "
        f"(got {path.name!r})"
    )


def _records(data: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows of redacted data, for display."""
    if hasattr(data, "to_pylist"):
        return list(data.schema.names), data.to_pylist()
    if isinstance(data, dict):
        names = [str(k) for k in data]
        cols = [v if isinstance(v, list) else [v] for v in data.values()]
        n = max((len(c) for c in cols), default=0)
        return names, [
            {k: (c[i] if i < len(c) else None) for k, c in zip(names, cols, strict=True)}
            for i in range(n)
        ]
    names: dict[str, None] = {}
    for r in data:
        for k in r:
            names.setdefault(str(k), None)
    return list(names), list(data)


def _columns_of(data: Any) -> list[str]:
    if hasattr(data, "schema"):
        return list(data.schema.names)
    if isinstance(data, dict):
        return [str(k) for k in data]
    names: dict[str, None] = {}
    for r in data:
        if isinstance(r, dict):
            for k in r:
                names.setdefault(str(k), None)
    return list(names)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bytes):
        return value.hex()
    return "" if value is None else str(value)


@app.command("test")
def test_policy(
    endpoint: str,
    file: Path = typer.Option(
        ...,
        "--file",
        "-f",
        help="Sample inputs: .csv, .parquet, .json (records or columns), .jsonl.",
    ),
    rows: int = typer.Option(10, "--rows", "-n", min=1, max=1000, help="Rows to show."),
    as_json: bool = JSON,
) -> None:
    """Apply the endpoint's rules to the first rows of a file and print what would be logged."""
    from dockyard.governance.redaction import redaction_key

    settings = _settings()
    policy = _service(settings).get_policy(endpoint).policy
    sample = _read_sample(file, rows)
    columns = _columns_of(sample)
    applied = policy.matches(columns)
    absent = policy.unmatched(columns)
    redacted = policy.apply(sample, redaction_key(settings) if policy.needs_key else None)
    names, records = _records(redacted)
    if as_json:
        print_json(
            {
                "endpoint": endpoint,
                "applied": [{"column": c, **r.to_dict()} for c, r in applied],
                "absent": [r.to_dict() for r in absent],
                "rows": records,
            }
        )
        return
    print_table(
        f"{file.name} as endpoint {endpoint} would log it (first {len(records)} rows)",
        names,
        [[_cell(r.get(n)) for n in names] for r in records],
    )
    typer.echo("applied: " + (", ".join(f"{c}: {r.describe()}" for c, r in applied) or "no rule"))
    if absent:
        typer.echo(
            "not in the file (no-op): " + ", ".join(f"{r.column}: {r.describe()}" for r in absent)
        )
