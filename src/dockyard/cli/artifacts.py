"""`dockyard artifacts`: list and get a run's artifacts."""

from __future__ import annotations

from pathlib import Path

import typer

from dockyard.cli._output import print_json, print_table

app = typer.Typer(help="Artifacts logged by runs.", no_args_is_help=True)


def _client():  # type: ignore[no-untyped-def]
    from dockyard.client.client import Client

    return Client()


@app.command("list")
def list_(
    run_id: str,
    path: str = typer.Argument("", help="Folder inside the run's artifacts."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the files and folders at a path of a run's artifacts."""
    files = _client().list_artifacts(run_id, path)
    if as_json:
        print_json(files)
        return
    print_table(
        f"Artifacts of {run_id}" + (f" under {path}" if path else ""),
        ["path", "size", "sha256"],
        [(f.path + ("/" if f.is_dir else ""), f.size, (f.digest or "")[:16]) for f in files],
    )


@app.command()
def get(
    run_id: str,
    path: str = typer.Argument("", help="File or folder to download (default: everything)."),
    dest: Path = typer.Option(Path("."), "--dest", "-d", help="Destination folder."),
) -> None:
    """Download a file or folder of a run's artifacts (hashes verified)."""
    out = _client().download_artifacts(run_id, path, dest)
    typer.echo(str(out))
