"""Identities, tokens, grants and local mode, on SQLite and PostgreSQL (a real store, no mocks)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from dockyard.backend import Backend
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from dockyard.governance.audit import Actor
from dockyard.governance.identity import (
    BOOTSTRAP_ADMIN,
    TOKEN_PREFIX,
    authenticate,
    bootstrap_admin,
    hash_token,
)
from dockyard.store import schema as t


def _admin(backend: Backend) -> Actor:
    """The OS-user-as-admin of an empty store creates 'root' (admin) and acts as it."""
    backend.identity(Actor("someone")).create_user("root", roles=["admin"])
    return Actor("root")


def _raw(backend: Backend, stmt: object) -> None:
    """Edit a row directly, as an attacker or the passing of time would."""
    with backend.store.engines.writer.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(stmt)


def _token_use_events(backend: Backend, token_id: str) -> int:
    events = backend.tracking(Actor("root")).list_audit_events(
        action="token.use", resource_id=token_id
    )
    return len(events)


def test_token_is_shown_once_and_stored_hashed(backend: Backend) -> None:
    ids = backend.identity(_admin(backend))
    ids.create_user("ci", kind="service_account", display="CI robot", roles=["editor"])
    new = ids.create_token("ci", "github actions", expires_in_days=30)
    assert new.secret.startswith(TOKEN_PREFIX) and len(new.secret) >= 40
    assert new.secret not in repr(new)
    assert new.token.user == "ci" and new.token.revoked is None and new.token.last_used is None
    assert new.token.expires - new.token.created == 30 * 86_400_000

    with backend.store.engines.reader.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(select(t.api_tokens)).mappings().all()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hash_token(new.secret)
    assert new.secret not in str(dict(rows[0]))
    listed = ids.list_tokens("ci")
    assert [tok.token_id for tok in listed] == [new.token.token_id]
    assert new.secret not in str([tok.to_dict() for tok in listed])
    # The secret is not in the audit log either.
    events = backend.tracking(Actor("root")).list_audit_events()
    assert new.secret not in str([e.to_dict() for e in events])


def test_authenticate_refuses_unknown_revoked_expired_and_disabled(backend: Backend) -> None:
    ids = backend.identity(_admin(backend))
    ids.create_user("ana", roles=["viewer"])
    tok = ids.create_token("ana")
    actor = authenticate(backend.store, tok.secret)
    assert actor.name == "ana"
    assert actor.authorizer.allows("experiment:read")
    assert not actor.authorizer.allows("experiment:write")

    with pytest.raises(Unauthenticated, match="not valid"):
        authenticate(backend.store, tok.secret + "x")
    with pytest.raises(Unauthenticated):
        authenticate(backend.store, "")

    _raw(backend, update(t.api_tokens).values(expires=1))
    with pytest.raises(Unauthenticated, match="expired"):
        authenticate(backend.store, tok.secret)

    tok2 = ids.create_token("ana", expires_in_days=None)
    ids.set_disabled("ana")
    with pytest.raises(Unauthenticated, match="disabled"):
        authenticate(backend.store, tok2.secret)
    ids.set_disabled("ana", False)
    assert authenticate(backend.store, tok2.secret).name == "ana"

    revoked = ids.revoke_token(tok2.token.token_id)
    assert revoked.revoked is not None and revoked.state(revoked.revoked + 1) == "revoked"
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticate(backend.store, tok2.secret)
    with pytest.raises(Conflict):
        ids.revoke_token(tok2.token.token_id)


def test_token_use_touches_last_used_and_audits_at_most_once_a_minute(backend: Backend) -> None:
    ids = backend.identity(_admin(backend))
    ids.create_user("bo", roles=["viewer"])
    tok = ids.create_token("bo")
    tid = tok.token.token_id
    for _ in range(5):
        authenticate(backend.store, tok.secret)
    assert _token_use_events(backend, tid) == 1
    first = ids.list_tokens("bo")[0].last_used
    assert first is not None

    # A minute later (moved back in the store), the next use is written and audited again.
    _raw(backend, update(t.api_tokens).values(last_used=first - 61_000))
    authenticate(backend.store, tok.secret)
    authenticate(backend.store, tok.secret)
    assert _token_use_events(backend, tid) == 2
    assert ids.list_tokens("bo")[0].last_used >= first


def test_user_management_rules(backend: Backend) -> None:
    nobody = backend.identity(Actor("someone"))
    with pytest.raises(InvalidInput, match="first user"):
        nobody.create_user("alice")
    ids = backend.identity(_admin(backend))
    with pytest.raises(AlreadyExists):
        ids.create_user("root")
    with pytest.raises(InvalidInput, match="user name"):
        ids.create_user("bad name")
    with pytest.raises(InvalidInput, match="unknown role"):
        ids.create_user("x1", roles=["superuser"])
    with pytest.raises(Conflict, match="no enabled admin"):
        ids.set_disabled("root")
    with pytest.raises(Conflict, match="no enabled admin"):
        ids.revoke_grant("root", "admin")

    ids.create_user("eve", roles=["editor"])
    eve = backend.identity(Actor("eve"))
    # Not an admin: cannot manage others, may manage her own tokens.
    with pytest.raises(PermissionDenied, match="admin"):
        eve.create_user("mallory")
    with pytest.raises(PermissionDenied, match="admin"):
        eve.grant("eve", "admin")
    with pytest.raises(PermissionDenied, match="admin"):
        eve.create_token("root")
    own = eve.create_token("eve")
    root_tok = ids.create_token("root")
    assert [x.token_id for x in eve.list_tokens()] == [own.token.token_id]
    with pytest.raises(NotFound):  # someone else's token is not even found
        eve.revoke_token(root_tok.token.token_id)
    eve.revoke_token(own.token.token_id)

    g = ids.grant("eve", "approver", "registered_model", "fraud")
    assert (g.role, g.resource_type, g.resource_id, g.created_by) == (
        "approver",
        "registered_model",
        "fraud",
        "root",
    )
    with pytest.raises(AlreadyExists):
        ids.grant("eve", "approver", "registered_model", "fraud")
    with pytest.raises(InvalidInput, match="resource type"):
        ids.grant("eve", "viewer", "cluster", "x")
    assert {(x.role, x.resource_type) for x in ids.list_grants("eve")} == {
        ("editor", "global"),
        ("approver", "registered_model"),
    }
    ids.revoke_grant("eve", "approver", "registered_model", "fraud")
    with pytest.raises(NotFound):
        ids.revoke_grant("eve", "approver", "registered_model", "fraud")
    actions = [e.action for e in backend.tracking(Actor("root")).list_audit_events()]
    for action in ("user.create", "grant.add", "grant.remove", "token.create", "token.revoke"):
        assert action in actions


def test_local_mode_without_users_is_admin_and_with_users_uses_grants(backend: Backend) -> None:
    laptop = backend.tracking(Actor("laptop-user"))
    exp = laptop.create_experiment("anything goes")  # no users: the local user may do it all
    backend.identity(Actor("laptop-user")).create_user("laptop-user", roles=["admin"])
    backend.identity(Actor("laptop-user")).create_user("viv", roles=["viewer"])

    with pytest.raises(Unauthenticated, match="DOCKYARD_USER"):
        backend.tracking(Actor("stranger")).get_experiment(exp.experiment_id)
    viv = backend.tracking(Actor("viv"))
    assert viv.get_experiment(exp.experiment_id).name == "anything goes"
    with pytest.raises(PermissionDenied, match="experiment:write"):
        viv.create_experiment("nope")
    assert backend.tracking(Actor("laptop-user")).create_experiment("fine").name == "fine"


def test_bootstrap_admin_once(backend: Backend) -> None:
    with pytest.raises(InvalidInput, match="DOCKYARD_ADMIN_TOKEN"):
        bootstrap_admin(backend.store, "short")
    secret = "dy_" + "a" * 40
    new = bootstrap_admin(backend.store, secret)
    assert new is not None and new.secret == secret and new.token.user == BOOTSTRAP_ADMIN
    assert bootstrap_admin(backend.store, secret) is None
    assert bootstrap_admin(backend.store) is None  # an admin exists: nothing is created
    admin = authenticate(backend.store, secret)
    assert admin.authorizer.allows("admin")
    with backend.store.engines.reader.connect() as conn:  # type: ignore[attr-defined]
        count = conn.execute(text("SELECT COUNT(*) FROM api_tokens")).scalar_one()
    assert count == 1
