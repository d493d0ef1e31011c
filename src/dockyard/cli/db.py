"""`dockyard db`: schema migrations of the metadata store."""

from __future__ import annotations

import typer

app = typer.Typer(help="The metadata store's schema.", no_args_is_help=True)


@app.command()
def upgrade(
    url: str = typer.Option(None, "--url", help="Store URL (default: DOCKYARD_DB_URL or SQLite)."),
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Apply schema migrations (they also apply on first use)."""
    from dockyard.core.config import load_settings
    from dockyard.store.engine import create_engines, redact_url, upgrade

    settings = load_settings(overrides={"db_url": url})
    engines = create_engines(settings.resolved_db_url)
    try:
        before, after = upgrade(engines, revision)
    finally:
        engines.dispose()
    where = redact_url(settings.resolved_db_url)
    if before == after:
        typer.echo(f"{where} is up to date at revision {after}")
    else:
        typer.echo(f"{where} upgraded from {before or 'empty'} to {after}")


@app.command()
def current(
    url: str = typer.Option(None, "--url", help="Store URL (default: DOCKYARD_DB_URL or SQLite)."),
) -> None:
    """Show the schema revision of the store and the newest one this Dockyard knows."""
    from dockyard.core.config import load_settings
    from dockyard.store.engine import create_engines, current_revision, head_revision

    settings = load_settings(overrides={"db_url": url})
    engines = create_engines(settings.resolved_db_url)
    try:
        typer.echo(f"current: {current_revision(engines) or 'empty'}  head: {head_revision()}")
    finally:
        engines.dispose()
