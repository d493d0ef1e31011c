"""`dockyard users|tokens|grants|whoami`: identities, API tokens and roles.

Like every command these go through the SDK client (:class:`dockyard.client.client.Client`):

* **Remote** (``DOCKYARD_TRACKING_URI`` set): they ask the server, as the user whose token is
  ``DOCKYARD_TRACKING_TOKEN`` -- an admin manages users, grants and everyone's tokens without
  any access to the database; anyone creates, lists and revokes their own tokens.
* **Local**: they work on the metadata store named by the settings (``DOCKYARD_DB_URL``, or the
  SQLite file in ``DOCKYARD_HOME``), acting as the local user (``DOCKYARD_USER`` or the OS
  user). While the store has no users that user may do everything, so the first command on a
  new store is ``dockyard users create <you> --role admin``; after that the local user must be
  a Dockyard user, with the same rules as remotely. On a server's store, act as the bootstrap
  admin with ``DOCKYARD_USER=admin``.

The rules themselves are the identity service's, the same in both modes.
"""

from __future__ import annotations

from typing import Any

import typer

from dockyard.cli._output import fmt_time, print_json, print_table

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")

users = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
grants = typer.Typer(help="Roles granted globally or per resource.", no_args_is_help=True)


def _client() -> Any:
    from dockyard.client.client import Client

    return Client()


def _where(g: Any) -> str:
    return "" if g.resource_type == "global" else f" on {g.resource_type} {g.resource_id}"


# -- whoami ------------------------------------------------------------------------------------


def whoami(as_json: bool = JSON) -> None:
    """Who you are to Dockyard: your user name, kind and roles (locally or on the server)."""
    me = _client().whoami()
    if as_json:
        print_json(me)
        return
    if me.kind is None:
        typer.echo(
            f"{me.name} (not a Dockyard user; every permission: the server runs with auth off "
            "or the store has no users yet)"
            if me.superuser
            else f"{me.name} (not a Dockyard user)"
        )
        return
    kind = me.kind.replace("_", " ") + (f", {me.display}" if me.display else "")
    typer.echo(f"{me.name} ({kind}); roles: {', '.join(me.roles) or 'none'}")


# -- users -------------------------------------------------------------------------------------


@users.command("create")
def users_create(
    name: str,
    service_account: bool = typer.Option(
        False, "--service-account", help="A service account (for CI, pipelines) not a person."
    ),
    display: str = typer.Option("", help="Display name."),
    role: list[str] = typer.Option(
        None, "--role", "-r", help="Global role: viewer, editor, deployer, approver, admin."
    ),
    as_json: bool = JSON,
) -> None:
    """Create a user (the first one of a store must get --role admin)."""
    user = _client().create_user(
        name,
        kind="service_account" if service_account else "user",
        display=display,
        roles=role or [],
    )
    if as_json:
        print_json(user)
    else:
        typer.echo(f"created {user.kind} {user.name}" + (f" ({', '.join(role)})" if role else ""))


@users.command("list")
def users_list(as_json: bool = JSON) -> None:
    """List users and service accounts with their grants."""
    client = _client()
    items = client.list_users()
    by_user: dict[str, list[str]] = {}
    for g in client.list_grants():
        by_user.setdefault(g.principal, []).append(g.role + _where(g))
    if as_json:
        print_json([{**u.to_dict(), "roles": by_user.get(u.name, [])} for u in items])
        return
    print_table(
        "Users",
        ["name", "kind", "display", "disabled", "created", "roles"],
        [
            (
                u.name,
                u.kind,
                u.display,
                "yes" if u.disabled else "",
                fmt_time(u.created),
                ", ".join(by_user.get(u.name, [])),
            )
            for u in items
        ],
    )


@users.command("disable")
def users_disable(name: str, as_json: bool = JSON) -> None:
    """Disable a user: its tokens stop working at once."""
    user = _client().set_disabled(name, True)
    print_json(user) if as_json else typer.echo(f"disabled {user.name}")


@users.command("enable")
def users_enable(name: str, as_json: bool = JSON) -> None:
    """Enable a disabled user again."""
    user = _client().set_disabled(name, False)
    print_json(user) if as_json else typer.echo(f"enabled {user.name}")


# -- tokens ------------------------------------------------------------------------------------


@tokens.command("create")
def tokens_create(
    user: str = typer.Argument(None, help="Whose token (default: yours; others' need admin)."),
    name: str = typer.Option("", help="What the token is for (e.g. 'laptop', 'ci')."),
    expires_in_days: float = typer.Option(90, help="Days until it expires."),
    no_expiry: bool = typer.Option(False, "--no-expiry", help="A token that never expires."),
    as_json: bool = JSON,
) -> None:
    """Create an API token; it is printed this once and only its hash is stored."""
    days = None if no_expiry else expires_in_days
    client = _client()
    if user is None:
        user = client.whoami().name
    new = client.create_token(user, name, expires_in_days=days)
    if as_json:
        print_json(new.to_dict())
        return
    expiry = fmt_time(new.token.expires) if new.token.expires else "never"
    typer.echo(f"token {new.token.token_id} for {user} (expires {expiry}); shown only this once:")
    typer.echo(new.secret)


@tokens.command("list")
def tokens_list(
    user: str = typer.Option(
        None, help="Only this user's tokens (default: all for an admin, else your own)."
    ),
    as_json: bool = JSON,
) -> None:
    """List tokens (never their secrets)."""
    from dockyard.governance.audit import now_ms

    items = _client().list_tokens(user)
    if as_json:
        print_json(items)
        return
    now = now_ms()
    print_table(
        "API tokens",
        ["token id", "user", "name", "state", "created", "expires", "last used"],
        [
            (
                t.token_id,
                t.user,
                t.name,
                t.state(now),
                fmt_time(t.created),
                fmt_time(t.expires) if t.expires else "never",
                fmt_time(t.last_used),
            )
            for t in items
        ],
    )


@tokens.command("revoke")
def tokens_revoke(token_id: str, as_json: bool = JSON) -> None:
    """Revoke a token by its id (tok_...): it stops working at once (yours, or any for admin)."""
    tok = _client().revoke_token(token_id)
    print_json(tok) if as_json else typer.echo(f"revoked {tok.token_id} of {tok.user}")


# -- grants ------------------------------------------------------------------------------------

_TYPE = typer.Option("global", "--on", help="global, experiment, registered_model or endpoint.")
_ID = typer.Option("*", "--id", help="Experiment id, model or endpoint name ('*' = all of them).")


@grants.command("add")
def grants_add(
    user: str, role: str, on: str = _TYPE, resource_id: str = _ID, as_json: bool = JSON
) -> None:
    """Grant a role: `dockyard grants add ana editor --on experiment --id 3`."""
    g = _client().grant(user, role, on, resource_id)
    if as_json:
        print_json(g)
    else:
        where = "globally" if g.resource_type == "global" else f"on {on} {g.resource_id}"
        typer.echo(f"granted {role} to {user} {where}")


@grants.command("remove")
def grants_remove(
    user: str, role: str, on: str = _TYPE, resource_id: str = _ID, as_json: bool = JSON
) -> None:
    """Remove a grant (the same arguments as `grants add`)."""
    _client().revoke_grant(user, role, on, resource_id)
    if as_json:
        print_json({"removed": True})
    else:
        typer.echo(f"removed {role} from {user}")


@grants.command("list")
def grants_list(
    user: str = typer.Option(None, help="Only this user's grants (default: all, for an admin)."),
    as_json: bool = JSON,
) -> None:
    """List role grants."""
    items = _client().list_grants(user)
    if as_json:
        print_json(items)
        return
    print_table(
        "Grants",
        ["user", "role", "on", "id", "granted", "by"],
        [
            (g.principal, g.role, g.resource_type, g.resource_id, fmt_time(g.created), g.created_by)
            for g in items
        ],
    )
