"""`dockyard audit`: list, verify, export and purge the audit log."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import typer

from dockyard.cli._output import fmt_time, print_json, print_table

app = typer.Typer(
    help="The audit log: who did what, when; hash-chained so tampering shows.",
    no_args_is_help=True,
)

_EXPORT_PAGE = 5000
_INT = re.compile(r"-?\d+")

ACTOR = typer.Option(None, "--actor", help="Only events by this actor.")
ACTION = typer.Option(None, "--action", help="Only this action, e.g. run.end.")
RESOURCE_TYPE = typer.Option(None, "--resource-type", help="e.g. run, experiment, model_version.")
RESOURCE_ID = typer.Option(None, "--resource-id", help="Only events about this resource.")
SINCE = typer.Option(
    None, "--since", help="From this time on: ISO 8601 (UTC unless it says) or epoch ms."
)
UNTIL = typer.Option(None, "--until", help="Before this time: ISO 8601 or epoch ms.")


def _client():  # type: ignore[no-untyped-def]
    from dockyard.client.client import Client

    return Client()


def parse_time(option: str, text: str | None) -> int | None:
    """Epoch milliseconds from an ISO 8601 date or time (UTC when no offset is given) or from
    a number of epoch milliseconds."""
    if text is None:
        return None
    value = text.strip()
    if _INT.fullmatch(value):
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        from dockyard.core.errors import InvalidInput

        raise InvalidInput(
            f"{option} {text!r} is not a time: use ISO 8601 (2026-05-01 or "
            "2026-05-01T12:00:00+02:00) or epoch milliseconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _filters(
    actor: str | None,
    action: str | None,
    resource_type: str | None,
    resource_id: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    return {
        "actor": actor,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "since": parse_time("--since", since),
        "until": parse_time("--until", until),
    }


def _compact(details: dict[str, Any], width: int = 80) -> str:
    text = json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("list")
def list_(
    actor: str = ACTOR,
    action: str = ACTION,
    resource_type: str = RESOURCE_TYPE,
    resource_id: str = RESOURCE_ID,
    since: str = SINCE,
    until: str = UNTIL,
    max_results: int = typer.Option(100, help="Most events to show."),
    after: int = typer.Option(None, help="Only events after this event id (next page)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List audit events, oldest first."""
    events = _client().list_audit_events(
        **_filters(actor, action, resource_type, resource_id, since, until),
        limit=max_results,
        after=after,
    )
    more = len(events) == max_results and events
    if as_json:
        print_json({"items": events, "next_after": events[-1].event_id if more else None})
        return
    print_table(
        "Audit events",
        ["event id", "time (UTC)", "actor", "action", "resource", "details"],
        [
            (
                e.event_id,
                fmt_time(e.time),
                e.actor,
                e.action,
                f"{e.resource_type}:{e.resource_id}",
                _compact(e.details),
            )
            for e in events
        ],
        caption=f"next page: --after {events[-1].event_id}" if more else "",
    )


@app.command()
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Check the hash chain: exit 0 when intact, else exit 7 naming the first broken link."""
    from dockyard.core.errors import IntegrityError

    result = _client().verify_audit_log()
    if as_json:
        print_json(result)
    elif result.ok:
        typer.echo(result.message)
    if not result.ok:
        raise IntegrityError(result.message)


@contextmanager
def _output(out: str) -> Iterator[IO[str]]:
    if out == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(out)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@app.command()
def export(
    out: str = typer.Option(..., "--out", "-o", help="JSON lines file to write; - for stdout."),
    actor: str = ACTOR,
    action: str = ACTION,
    resource_type: str = RESOURCE_TYPE,
    resource_id: str = RESOURCE_ID,
    since: str = SINCE,
    until: str = UNTIL,
) -> None:
    """Write audit events as JSON lines (one event per line, for a SIEM), streaming."""
    client = _client()
    filters = _filters(actor, action, resource_type, resource_id, since, until)
    n = 0
    after: int | None = None
    with _output(out) as f:
        while True:
            events = client.list_audit_events(**filters, limit=_EXPORT_PAGE, after=after)
            for e in events:
                f.write(json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
            n += len(events)
            if len(events) < _EXPORT_PAGE:
                break
            after = events[-1].event_id
    if out != "-":
        typer.echo(f"exported {n} audit events to {out}", err=True)


@app.command()
def purge(
    days: int = typer.Option(
        None,
        "--days",
        help="Keep this many days (at least 183); default: DOCKYARD_AUDIT_RETENTION_DAYS.",
    ),
    url: str = typer.Option(None, "--url", help="Store URL (default: DOCKYARD_DB_URL or SQLite)."),
) -> None:
    """Delete audit events older than the retention window; the chain still verifies.

    An audit.retention event records the count and the checkpoint hash. Runs on the metadata
    store itself (DOCKYARD_DB_URL, like `dockyard db upgrade`), not through a server.
    """
    from dockyard.backend import Backend
    from dockyard.core.config import load_settings
    from dockyard.core.errors import InvalidInput
    from dockyard.governance.audit import Actor, apply_retention

    settings = load_settings(overrides={"db_url": url})
    window = days if days is not None else settings.audit_retention_days
    if window is None:
        raise InvalidInput(
            "audit retention is not configured (events are kept forever): set "
            "DOCKYARD_AUDIT_RETENTION_DAYS (183 or more) or pass --days"
        )
    backend = Backend.open(settings)
    try:
        result = apply_retention(backend.store, Actor.local(settings.user), window)
    finally:
        backend.close()
    older = fmt_time(result.cutoff)
    if result.deleted:
        typer.echo(
            f"deleted {result.deleted} audit events older than {older} UTC "
            f"(through event {result.checkpoint_event_id}, checkpoint {result.checkpoint_hash}); "
            f"recorded as audit event {result.event_id}"
        )
    else:
        typer.echo(
            f"no audit events older than {older} UTC; recorded as audit event {result.event_id}"
        )
