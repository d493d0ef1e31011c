"""`dockyard runs`: list, show, search, end."""

from __future__ import annotations

from typing import Any

import typer

from dockyard.cli._output import fmt_time, print_json, print_table

app = typer.Typer(help="Runs: params, metrics, tags, inputs and artifacts.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _client():  # type: ignore[no-untyped-def]
    from dockyard.client.client import Client

    return Client()


def _print_runs(
    page: Any, as_json: bool, metric_cols: int = 4, prefer: list[str] | None = None
) -> None:
    """Runs as a table; the metric columns start with those the user sorted or filtered by."""
    if as_json:
        print_json({"items": page.items, "next_page_token": page.next_page_token})
        return
    keys: list[str] = [k for k in prefer or [] if any(k in r.metrics for r in page.items)]
    for r in page.items:
        for k in r.metrics:
            if k not in keys:
                keys.append(k)
    keys = keys[:metric_cols]
    print_table(
        "Runs",
        ["run id", "name", "status", "started", *keys],
        [
            (
                r.run_id,
                r.name,
                r.status.value,
                fmt_time(r.start_time),
                *(r.metrics.get(k) for k in keys),
            )
            for r in page.items
        ],
        caption=f"next page: --page-token {page.next_page_token}" if page.next_page_token else "",
    )


def _experiment_ids(client: Any, experiments: list[str] | None) -> list[str]:
    return [client.resolve_experiment(e).experiment_id for e in experiments or []]


@app.command("list")
def list_(
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Id or name."),
    stage: str = typer.Option("active", help="active, deleted or all."),
    max_results: int = typer.Option(100, help="Page size."),
    page_token: str = typer.Option(None, help="Token from the previous page."),
    as_json: bool = JSON,
) -> None:
    """List runs, newest first."""
    client = _client()
    page = client.search_runs(
        _experiment_ids(client, experiment),
        stage=stage,
        max_results=max_results,
        page_token=page_token,
    )
    _print_runs(page, as_json)


@app.command()
def search(
    filter: str = typer.Option(
        None, "--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\""
    ),
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Id or name."),
    order_by: list[str] = typer.Option(
        None, "--order-by", "-o", help="e.g. 'metrics.auc DESC' (repeatable)."
    ),
    stage: str = typer.Option("active", help="active, deleted or all."),
    max_results: int = typer.Option(100, help="Page size."),
    page_token: str = typer.Option(None, help="Token from the previous page."),
    as_json: bool = JSON,
) -> None:
    """Search runs with a filter over metrics, params, tags and attributes."""
    client = _client()
    page = client.search_runs(
        _experiment_ids(client, experiment),
        filter=filter,
        order_by=order_by or [],
        stage=stage,
        max_results=max_results,
        page_token=page_token,
    )
    import re

    mentioned = re.findall(
        r"metrics\.(`[^`]+`|\"[^\"]+\"|[A-Za-z0-9_.\-/]+)",
        " ".join([*(order_by or []), filter or ""]),
    )
    _print_runs(page, as_json, prefer=list(dict.fromkeys(m.strip('`"') for m in mentioned)))


@app.command()
def show(run_id: str, as_json: bool = JSON) -> None:
    """Show one run: params, latest metrics, tags and inputs."""
    run = _client().get_run(run_id)
    if as_json:
        print_json(run)
        return
    from dockyard.cli._output import console

    console().print(
        f"[bold]{run.name}[/bold]  {run.run_id}\n"
        f"status {run.status.value}   experiment {run.experiment_id}   user {run.user}\n"
        f"started {fmt_time(run.start_time)}   ended {fmt_time(run.end_time)}"
        + (f"\nparent {run.parent_run_id}" if run.parent_run_id else "")
    )
    if run.params:
        print_table("Params", ["key", "value"], sorted(run.params.items()))
    if run.metrics:
        print_table("Metrics (latest)", ["key", "value"], sorted(run.metrics.items()))
    if run.tags:
        print_table("Tags", ["key", "value"], sorted(run.tags.items()))
    if run.inputs:
        print_table(
            "Inputs",
            ["name", "context", "rows", "digest"],
            [(d.name, d.context, d.num_rows, d.digest[:16]) for d in run.inputs],
        )


@app.command()
def end(
    run_id: str,
    status: str = typer.Option("KILLED", help="FINISHED, FAILED or KILLED."),
) -> None:
    """End a run, e.g. one left RUNNING by a crashed process."""
    run = _client().end_run(run_id, status)
    typer.echo(f"run {run.run_id} ended with status {run.status.value}")
