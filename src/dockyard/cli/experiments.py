"""`dockyard experiments`: list, create, rename, delete, restore."""

from __future__ import annotations

import typer

from dockyard.cli._output import fmt_time, print_json, print_table

app = typer.Typer(help="Experiments: groups of runs.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _client():  # type: ignore[no-untyped-def]
    from dockyard.client.client import Client

    return Client()


@app.command("list")
def list_(
    stage: str = typer.Option("active", help="active, deleted or all."),
    max_results: int = typer.Option(1000, help="Page size."),
    page_token: str = typer.Option(None, help="Token from the previous page."),
    as_json: bool = JSON,
) -> None:
    """List experiments."""
    page = _client().list_experiments(stage=stage, max_results=max_results, page_token=page_token)
    if as_json:
        print_json({"items": page.items, "next_page_token": page.next_page_token})
        return
    print_table(
        "Experiments",
        ["id", "name", "stage", "created", "tags"],
        [
            (
                e.experiment_id,
                e.name,
                e.lifecycle_stage,
                fmt_time(e.creation_time),
                ", ".join(f"{k}={v}" for k, v in e.tags.items()),
            )
            for e in page.items
        ],
        caption=f"next page: --page-token {page.next_page_token}" if page.next_page_token else "",
    )


@app.command()
def create(name: str, as_json: bool = JSON) -> None:
    """Create an experiment."""
    exp = _client().create_experiment(name)
    if as_json:
        print_json(exp)
    else:
        typer.echo(f"created experiment {exp.experiment_id} ({exp.name})")


@app.command()
def rename(experiment: str, new_name: str, as_json: bool = JSON) -> None:
    """Rename an experiment (by id or name)."""
    client = _client()
    exp = client.rename_experiment(client.resolve_experiment(experiment).experiment_id, new_name)
    if as_json:
        print_json(exp)
    else:
        typer.echo(f"renamed experiment {exp.experiment_id} to {exp.name}")


@app.command()
def delete(experiment: str) -> None:
    """Soft-delete an experiment (restore brings it back)."""
    client = _client()
    exp = client.delete_experiment(client.resolve_experiment(experiment).experiment_id)
    typer.echo(f"deleted experiment {exp.experiment_id} ({exp.name})")


@app.command()
def restore(experiment: str) -> None:
    """Restore a deleted experiment."""
    client = _client()
    exp = client.restore_experiment(client.resolve_experiment(experiment).experiment_id)
    typer.echo(f"restored experiment {exp.experiment_id} ({exp.name})")
