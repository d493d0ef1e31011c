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


@app.command()
def rekey() -> None:
    """Store every blob the way the artifact store writes now (admin).

    With DOCKYARD_ENCRYPTION_KEY set: encrypt blobs stored before encryption was on, and move
    blobs encrypted with an older key (listed after the first) to the current one, after which
    the old key can be removed. Without it: decrypt every blob. Audited as artifacts.rekey.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from dockyard.backend import Backend
    from dockyard.core.config import load_settings
    from dockyard.governance.audit import Actor
    from dockyard.governance.encryption import rekey_artifacts

    settings = load_settings()
    backend = Backend.open(settings)
    try:
        with Progress(
            TextColumn("rewriting blobs"),
            BarColumn(),
            TextColumn("{task.completed} done, {task.fields[rewritten]} rewritten"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as progress:
            task = progress.add_task("rekey", total=None, rewritten=0)
            count = {"n": 0}

            def tick(_digest: str, changed: bool) -> None:
                count["n"] += changed
                progress.update(task, advance=1, rewritten=count["n"])

            report = rekey_artifacts(
                backend.store, backend.artifacts, Actor.local(settings.user), on_blob=tick
            )
    finally:
        backend.close()
    target = f"encrypted with key {report.key_id}" if report.key_id else "stored as plaintext"
    typer.echo(
        f"{report.blobs} blobs: {report.rewritten} rewritten, {report.current} already "
        f"current; every blob is now {target}"
    )
