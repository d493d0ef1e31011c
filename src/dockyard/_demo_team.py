"""`dockyard demo --auth`: the demo as a team runs it, through a server with authentication on.

On the configured store (``DOCKYARD_DB_URL`` / ``DOCKYARD_ARTIFACT_ROOT``, by default the
SQLite file and artifact folder under ``DOCKYARD_HOME``) it

1. makes sure the local user (``DOCKYARD_USER`` or the OS user) is an admin: on a store with
   no users yet it becomes the store's first user, with the admin role -- local mode treats it
   as an admin already, and so it stays one once other users exist; on a store with users it
   must be an admin already (else the demo stops and says whom to act as);
2. creates, if they do not exist, ``ana`` (a data scientist: editor, and approver of other
   teams' models) and ``risk-officer`` (approver), and gives each a new API token (valid one
   day; revoked when the demo ends, so no secret outlives it -- none is printed or logged);
3. starts a real server (uvicorn, in a background thread, on ``127.0.0.1`` and a free port)
   with auth on, stopped when the demo ends however it ends (Ctrl-C included);
4. runs the plain demo's training and tracking over HTTP as ``ana``
   (:func:`dockyard.demo.train_and_compare`), and its registry steps
   (:func:`dockyard.demo.register_and_gate`) with a four-eyes sign-off: ``risk-officer`` puts
   an approval policy on ``fraud``, ``ana`` requests an approval, her own attempt to approve is
   refused by the four-eyes rule (403: she is the author, though she holds ``model:approve``),
   ``risk-officer`` approves and moves the version to approved, and ``ana``
   points ``champion`` at it;
5. shows the approval's audit trail (read, and the chain verified, as ``risk-officer``, who has
   ``audit:read``) and how to work with tokens against a server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard.demo import CHAMPION_ALIAS, MODEL_NAME, AddRow, Signoff

if TYPE_CHECKING:
    from dockyard.backend import Backend
    from dockyard.client.client import Client
    from dockyard.core.config import Settings
    from dockyard.governance.identity import IdentityService

#: The demo's team: who they are and their global role.
# ana also approves other teams' models: she holds model:approve, so what stops her approving
# her own version is the four-eyes rule itself, not a missing permission.
AUTHOR, AUTHOR_ROLE = "ana", "editor+approver"
APPROVER, APPROVER_ROLE = "risk-officer", "approver"
TOKEN_NAME = "dockyard demo --auth"
#: The demo's tokens expire after a day even if the demo is killed before it revokes them.
TOKEN_DAYS = 1


@dataclass
class DemoServer:
    """A Dockyard server with auth on, on loopback (see :class:`LoopbackServer`).

    ``with DemoServer(settings) as server:`` -- ``server.url`` is where it listens; leaving the
    block (normally, by an exception or by Ctrl-C in the main thread) stops it and waits.
    """

    settings: Settings
    url: str = ""
    _server: Any = field(default=None, repr=False)

    def __enter__(self) -> DemoServer:
        from dockyard._loopback import LoopbackServer
        from dockyard.server.app import create_app

        # Auth on, and answering to the loopback names the demo's clients use (whatever
        # DOCKYARD_ALLOWED_HOSTS says for the team's own server).
        settings = self.settings.with_overrides(
            auth="on", allowed_hosts="127.0.0.1,localhost", canary_interval=0
        )
        self._server = LoopbackServer(
            create_app(settings, bind_host="127.0.0.1"), name="dockyard-demo-server"
        ).__enter__()
        self.url = self._server.url
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.__exit__(*exc)
            self._server = None


@contextlib.contextmanager
def _fluent_client(client: Client) -> Iterator[None]:
    """Point the fluent API (``dy.start_run``, ``dy.log_*``, ``dy.log_model``) at ``client``
    for the block -- a remote client with its own token -- and put the previous one back."""
    from dockyard.client import fluent
    from dockyard.core.errors import Conflict

    with fluent._lock:
        if fluent._stack:
            raise Conflict("cannot run the team demo while a run is active")
        saved = fluent._client, fluent._buffer
        fluent._client, fluent._buffer = client, None
    try:
        yield
    finally:
        with fluent._lock:
            if fluent._buffer is not None:
                fluent._buffer.close()
            fluent._client, fluent._buffer = saved


def _admin_identity(backend: Backend, settings: Settings) -> tuple[IdentityService, bool]:
    """The identity service acting as the local user, who must be (or, on a store without
    users, becomes) an admin. Returns it and whether the user was created now."""
    from dockyard.core.errors import PermissionDenied, Unauthenticated
    from dockyard.governance.audit import Actor
    from dockyard.governance.permissions import ADMIN

    me = Actor.local(settings.user)
    created = False
    if backend.store.read(lambda u: u.count_users()) == 0:
        # Local mode treats the local user as an admin while the store has no users; it keeps
        # that role once ana and risk-officer exist by becoming the first user, as an admin.
        backend.identity(me).create_user(
            me.name, display="local admin (dockyard demo --auth)", roles=[ADMIN]
        )
        created = True
    ids = backend.identity(Actor(me.name))
    try:
        is_admin = ids.authz.allows(ADMIN)
    except Unauthenticated:
        is_admin = False
    if not is_admin:
        admins = sorted(
            {
                g.principal
                for g in backend.store.read(lambda u: u.list_grants(None))
                if g.role == ADMIN and g.resource_type == "global"
            }
        )
        raise PermissionDenied(
            f"dockyard demo --auth creates its users as the local user {me.name!r}, who is not "
            "an admin of this store (it has users already); set DOCKYARD_USER to one of its "
            f"admins ({', '.join(admins) or 'none is enabled'}) or use another DOCKYARD_HOME",
            permission=ADMIN,
            principal=me.name,
        )
    return ids, created


def _ensure_user(ids: IdentityService, name: str, role: str) -> str:
    """Create ``name`` with the global roles in ``role`` ("a+b"), or give an existing user the
    ones it lacks. Returns what was done, for the table."""
    from dockyard.core.errors import Conflict, NotFound

    roles = role.split("+")
    try:
        user = ids.get_user(name)
    except NotFound:
        ids.create_user(name, roles=roles)
        return f"created, role {role}"
    if user.disabled:
        raise Conflict(
            f"user {name!r} is disabled in this store; enable it (dockyard users enable {name}) "
            "to run the team demo"
        )
    held = {g.role for g in ids.list_grants(name) if g.resource_type == "global"}
    missing = [r for r in roles if r not in held]
    for r in missing:
        ids.grant(name, r)
    if not missing:
        return f"exists, role {role}"
    return f"exists, granted role {'+'.join(missing)}"


def _audit_trail(reader: Client, version: int, since: int) -> list[Any]:
    """The version's audit events and the model's policy and alias events since ``since``."""
    events = {
        e.event_id: e
        for e in reader.list_audit_events(
            resource_type="model_version", resource_id=f"{MODEL_NAME}/{version}", limit=100
        )
    }
    for e in reader.list_audit_events(
        resource_type="registered_model", resource_id=MODEL_NAME, since=since, limit=100
    ):
        if e.action in ("approval_policy.set", "alias.set"):
            events[e.event_id] = e
    return [events[k] for k in sorted(events)]


def _details(details: dict[str, Any]) -> str:
    keep = ("from_status", "to_status", "alias", "to_version", "require_approval", "comment")
    parts = [f"{k}={details[k]}" for k in keep if details.get(k) not in (None, "")]
    if details.get("package_digest"):
        parts.append(f"package={str(details['package_digest'])[:12]}")
    return ", ".join(parts)


def run_team_demo(
    rows: int = 20_000, seed: int = 0, experiment: str = "fraud-demo", folds: int = 3
) -> dict[str, Any]:
    """Run the demo through a server with auth on, as ``ana`` and ``risk-officer``; returns
    what happened (users, token ids, runs, the registry outcome, the refused self-approval,
    the approval and the audit verification)."""
    from dockyard.backend import Backend
    from dockyard.cli._output import console, fmt_time, print_table
    from dockyard.client.client import Client
    from dockyard.core.config import load_settings
    from dockyard.core.errors import InvalidInput, PermissionDenied
    from dockyard.demo import register_and_gate, train_and_compare
    from dockyard.governance.audit import now_ms
    from dockyard.store.engine import redact_url

    settings = load_settings()
    if settings.tracking_uri:
        raise InvalidInput(
            "dockyard demo --auth starts its own server on the configured store; unset "
            f"DOCKYARD_TRACKING_URI (now {settings.tracking_uri!r}) to run it"
        )
    if rows < 2_000:
        raise InvalidInput(f"--rows must be at least 2000 to train on, got {rows}")
    err = console(stderr=True)
    started_ms = now_ms()
    out: dict[str, Any] = {"author": AUTHOR, "approver": APPROVER}
    backend = Backend.open(settings)
    tokens: list[str] = []
    try:
        ids, created_admin = _admin_identity(backend, settings)
        admin = out["admin"] = ids.actor.name
        team_rows: list[tuple[str, str, str]] = [
            (admin, "admin", "created, role admin (first user)" if created_admin else "exists")
        ]
        for name, role in ((AUTHOR, AUTHOR_ROLE), (APPROVER, APPROVER_ROLE)):
            team_rows.append((name, role, _ensure_user(ids, name, role)))
        secrets: dict[str, str] = {}
        for name in (AUTHOR, APPROVER):
            new = ids.create_token(name, TOKEN_NAME, expires_in_days=TOKEN_DAYS)
            tokens.append(new.token.token_id)
            secrets[name] = new.secret
        out["token_ids"] = dict(zip((AUTHOR, APPROVER), tokens, strict=True))
        print_table(
            f"Team on {redact_url(settings.resolved_db_url)}",
            ["user", "role", "what the demo did", "token id"],
            # The local admin needs no token: it acts on the store directly.
            [(*row, out["token_ids"].get(row[0], "")) for row in team_rows],
            caption=f"Users and tokens managed as {admin!r} (local mode). Each token is valid "
            f"{TOKEN_DAYS} day and revoked when the demo ends; its secret is never shown.",
        )
        with DemoServer(settings) as server:
            err.print(f"server with auth on at {server.url} (stopped when the demo ends)")
            out["url"] = server.url
            ana = Client(server.url, token=secrets[AUTHOR], settings=settings)
            officer = Client(server.url, token=secrets[APPROVER], settings=settings)
            secrets.clear()
            with _fluent_client(ana):
                trained = train_and_compare(
                    rows=rows, seed=seed, experiment=experiment, folds=folds
                )
            out["results"] = trained.results
            out["parent_run_id"] = trained.parent_run_id

            def four_eyes(version: int, add: AddRow) -> None:
                if officer.get_registered_model(MODEL_NAME).require_approval:
                    add("policy", APPROVER, f"{MODEL_NAME} requires an approval (already on)")
                else:
                    officer.set_approval_policy(MODEL_NAME, True)
                    add("policy", APPROVER, f"{MODEL_NAME} now requires a four-eyes approval")
                request = ana.request_approval(
                    MODEL_NAME, version, comment="beats the champion on the holdout"
                )
                add(
                    "request",
                    AUTHOR,
                    f"approval requested for version {version} "
                    f"(package {request.package_digest[:12]})",
                )
                try:
                    ana.approve(MODEL_NAME, version, comment="looks good to me")
                except PermissionDenied as exc:
                    out["self_approval_refused"] = exc.message
                    add("approve", AUTHOR, f"REFUSED (403): {exc.message}")
                else:  # a bug: the author approved her own version
                    out["self_approval_refused"] = None
                    add("approve", AUTHOR, "ALLOWED -- the four-eyes rule did not hold")
                approval = officer.approve(
                    MODEL_NAME, version, comment="reviewed the gate report: ok"
                )
                out["approval"] = approval.to_dict()
                add(
                    "approve",
                    APPROVER,
                    f"approved version {version} (approval {approval.id}, requested by "
                    f"{approval.requester})",
                )

            out["registry"] = register_and_gate(
                ana,
                trained.best,
                trained.holdout,
                label=trained.label,
                signoff=Signoff(AUTHOR, APPROVER, officer, four_eyes),
            )
            trained.best["registry"] = out["registry"]
            version = out["registry"]["version"]
            trail = _audit_trail(officer, version, started_ms)
            verification = officer.verify_audit_log()
            out["audit_trail"] = [e.to_dict() for e in trail]
            out["audit_verification"] = verification.to_dict()
            print_table(
                f"Audit trail of {MODEL_NAME} version {version}",
                ["event", "time (UTC)", "actor", "action", "resource", "details"],
                [
                    (
                        e.event_id,
                        fmt_time(e.time),
                        e.actor,
                        e.action,
                        e.resource_id,
                        _details(e.details),
                    )
                    for e in trail
                ],
                caption=f"Read over the API as {APPROVER} (audit:read). Hash chain: "
                + (
                    f"ok, {verification.count:,} events, last hash {verification.last_hash}"
                    if verification.ok
                    else f"BROKEN: {verification.message}"
                ),
            )
    finally:
        if tokens:
            _revoke(backend, out.get("admin"), tokens)
        backend.close()
    _print_next_steps(out, experiment)
    return out


def _revoke(backend: Backend, admin: str | None, token_ids: list[str]) -> None:
    from dockyard.core.errors import DockyardError
    from dockyard.governance.audit import Actor

    if admin is None:
        return
    ids = backend.identity(Actor(admin))
    for token_id in token_ids:
        with contextlib.suppress(DockyardError):  # already revoked; expires in a day anyway
            ids.revoke_token(token_id)


def _print_next_steps(out: dict[str, Any], experiment: str) -> None:
    from dockyard.cli._output import console
    from dockyard.governance.audit import Actor

    admin = out["admin"]
    version = out["registry"]["version"]
    champion = out["registry"]["champion"]
    lines = ["", "[bold]Next[/bold] (the demo's server has stopped and its tokens are revoked):"]
    if admin != Actor.local().name:
        lines.append(
            f"  export DOCKYARD_USER={admin}      # local mode acts as a user of the store"
        )
    lines += [
        f"  dockyard runs list -e {experiment}",
        f"  dockyard runs show {out['parent_run_id']}   # user {AUTHOR}",
        f"  dockyard models approval list {MODEL_NAME}/{version}",
        f"  dockyard audit list --resource-id {MODEL_NAME}/{version}",
        "  dockyard audit verify",
        "Work as the team against a server with auth on:",
        "  dockyard server --auth on --port 8080",
        f"  dockyard tokens create {AUTHOR} --name laptop     # prints the token once",
        "  export DOCKYARD_TRACKING_URI=http://127.0.0.1:8080",
        "  export DOCKYARD_TRACKING_TOKEN=<that token>      # keep it out of files and logs",
        f"  dockyard models show {MODEL_NAME}                  # as {AUTHOR}; "
        f"{CHAMPION_ALIAS} = version {champion}",
    ]
    console().print("\n".join(lines), highlight=False, markup=True)
