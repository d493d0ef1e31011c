"""`dockyard alerts`: webhook deliveries of monitoring alerts -- list, show, replay, deliver.

These commands work on the metadata store named by the settings (``DOCKYARD_DB_URL``, or the
SQLite file in ``DOCKYARD_HOME``), acting as the local user (``DOCKYARD_USER`` or the OS user):
listing and showing need ``endpoint:read`` on the delivery's endpoint, replaying and
delivering ``endpoint:deploy``. ``deliver`` runs one delivery pass in this process, signing
with the key in the environment variable each target names (``DOCKYARD_WEBHOOK_SECRET`` by
default). Targets are shown without user info or query string (it may hold a token).
"""

from __future__ import annotations

import json
import os
from typing import Any

import typer

from dockyard.cli._output import fmt_time, print_json, print_table

app = typer.Typer(
    help="Alert webhooks: list deliveries, show one, replay dead ones, deliver now.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _service() -> Any:
    from dockyard.client.client import _local_backend
    from dockyard.core.config import load_settings
    from dockyard.governance.audit import Actor
    from dockyard.monitoring.alerts import AlertService

    settings = load_settings()
    return AlertService(_local_backend(settings).store, Actor.local(settings.user), env=os.environ)


def _when(d: Any) -> str:
    if d.status == "delivered":
        return fmt_time(d.delivered)
    if d.status == "pending":
        return fmt_time(d.next_attempt)
    return ""


@app.command("list")
def list_deliveries(
    status: str = typer.Option(
        None, "--status", help="Only deliveries in this status: pending, delivered or dead."
    ),
    endpoint: str = typer.Option(None, "--endpoint", "-e", help="Only this endpoint's."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="At most this many."),
    as_json: bool = JSON,
) -> None:
    """List alert deliveries, newest first."""
    items = _service().list_deliveries(status=status, endpoint=endpoint, limit=limit)
    if as_json:
        print_json(items)
        return
    print_table(
        "Alert deliveries",
        [
            "id",
            "endpoint",
            "event",
            "target",
            "status",
            "attempts",
            "created",
            "next / done",
            "last error",
        ],
        [
            (
                d.id,
                d.endpoint,
                d.kind,
                d.safe_target,
                d.status,
                d.attempts,
                fmt_time(d.created),
                _when(d),
                (d.last_error or "")[:80],
            )
            for d in items
        ],
    )


@app.command("show")
def show_delivery(delivery_id: str, as_json: bool = JSON) -> None:
    """Show one delivery: its target, state, last error and payload."""
    d = _service().get_delivery(delivery_id)
    if as_json:
        print_json(d)
        return
    rows = [
        ("endpoint", d.endpoint),
        ("event", d.kind),
        ("event id", d.event_id),
        ("target", d.safe_target),
        (
            "signed",
            f"yes (key in ${d.options.get('secret_env')})" if d.options.get("sign", True) else "no",
        ),
        ("private addresses", "allowed" if d.options.get("allow_private") else "refused"),
        ("status", d.status),
        ("attempts", d.attempts),
        ("created", fmt_time(d.created)),
        ("next attempt", fmt_time(d.next_attempt) if d.status == "pending" else ""),
        ("delivered", fmt_time(d.delivered)),
        ("last error", d.last_error or ""),
    ]
    print_table(f"Alert delivery {d.id}", ["field", "value"], rows)
    typer.echo(json.dumps(d.payload, indent=2, ensure_ascii=False, default=str))


@app.command("replay")
def replay(
    delivery_id: str = typer.Argument(None, help="The dead delivery to send again."),
    all_dead: bool = typer.Option(
        False, "--all-dead", help="Replay every dead delivery of --endpoint."
    ),
    endpoint: str = typer.Option(None, "--endpoint", "-e", help="With --all-dead."),
    as_json: bool = JSON,
) -> None:
    """Make a dead delivery pending again (fresh attempts, due now)."""
    from dockyard.core.errors import InvalidInput

    if all_dead == (delivery_id is not None):
        raise InvalidInput("give either a delivery id or --all-dead --endpoint E")
    svc = _service()
    if all_dead:
        if not endpoint:
            raise InvalidInput("--all-dead needs --endpoint E")
        items = svc.replay_dead(endpoint)
        if as_json:
            print_json(items)
        else:
            typer.echo(
                f"{len(items)} dead deliveries of endpoint {endpoint} are pending again; "
                "`dockyard alerts deliver` sends them now"
            )
        return
    if endpoint:
        raise InvalidInput("--endpoint goes with --all-dead")
    d = svc.replay(delivery_id)
    if as_json:
        print_json(d)
    else:
        typer.echo(
            f"delivery {d.id} ({d.kind}, endpoint {d.endpoint}, to {d.host}) is pending again; "
            "`dockyard alerts deliver` sends it now"
        )


@app.command("deliver")
def deliver(
    endpoint: str = typer.Option(None, "--endpoint", "-e", help="Only this endpoint's."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="At most this many."),
    as_json: bool = JSON,
) -> None:
    """Run one delivery pass now: attempt every due delivery once."""
    stats = _service().deliver_now(endpoint=endpoint, limit=limit)
    if as_json:
        print_json(stats)
    else:
        typer.echo(
            f"attempted {stats.attempted}: {stats.delivered} delivered, {stats.retrying} to "
            f"retry, {stats.dead} dead"
        )
