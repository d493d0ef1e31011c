"""Identity over REST: users, tokens, grants and whoami, on SQLite and PostgreSQL.

The in-process app with auth on (Starlette's TestClient, the lifespan runs), the bootstrap
admin's token from ``admin_token``; the rules are the identity service's, so these tests check
that the routes reach it as the caller the token stands for, that every mutation is audited,
and that a token's secret (or its hash) never leaves the server but once, in the answer that
creates it. The remote client (:class:`RestIdentityService`) is driven through the same app.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dockyard.core.config import load_settings
from dockyard.core.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from dockyard.core.identity_entities import ApiToken, Grant, NewToken, User
from dockyard.governance.identity import Identity, hash_token
from dockyard.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"
ADMIN_TOKEN = "dy_identity-admin-" + "q" * 40
MUTATIONS = {"user.create", "user.disable", "user.enable", "token.create", "token.revoke"}


@pytest.fixture
def app_client(tmp_path: Path, db_url: str) -> Iterator[tuple[Any, TestClient]]:
    settings = load_settings(
        overrides={"home": str(tmp_path), "db_url": db_url, "auth": "on"}, environ={}
    )
    app = create_app(settings, admin_token=ADMIN_TOKEN)
    with TestClient(app) as c:
        yield app, c


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = _h(ADMIN_TOKEN)


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return None if status == 204 else r.json()


def _user_with_token(c: TestClient, name: str, *roles: str) -> str:
    _ok(c.post(f"{API}/users", json={"name": name, "roles": list(roles)}, headers=ADMIN), 201)
    return _ok(c.post(f"{API}/tokens", json={"user": name}, headers=ADMIN), 201)["token"]  # type: ignore[no-any-return]


def _audit(c: TestClient) -> list[dict[str, Any]]:
    return _ok(c.get(f"{API}/audit", params={"max_results": 10_000}, headers=ADMIN))["items"]  # type: ignore[no-any-return]


def _error(r: Any, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    return err["message"]  # type: ignore[no-any-return]


# -- an admin manages users and grants --------------------------------------------------------


def test_admin_manages_users_and_grants(app_client: tuple[Any, TestClient]) -> None:
    _, c = app_client
    me = _ok(c.get(f"{API}/whoami", headers=ADMIN))
    assert me["name"] == "admin" and me["kind"] == "user" and me["admin"] is True
    assert me["roles"] == ["admin"] and me["superuser"] is False
    assert [g["role"] for g in me["grants"]] == ["admin"]

    ana = _ok(
        c.post(
            f"{API}/users",
            json={"name": "ana", "display": "Ana", "roles": ["editor"]},
            headers=ADMIN,
        ),
        201,
    )
    assert ana == {**ana, "name": "ana", "kind": "user", "display": "Ana", "disabled": False}
    ci = _ok(
        c.post(f"{API}/users", json={"name": "ci", "kind": "service_account"}, headers=ADMIN), 201
    )
    assert ci["kind"] == "service_account"
    names = [u["name"] for u in _ok(c.get(f"{API}/users", headers=ADMIN))["items"]]
    assert sorted(names) == ["admin", "ana", "ci"]
    assert _ok(c.get(f"{API}/users/ana", headers=ADMIN))["display"] == "Ana"

    _error(c.post(f"{API}/users", json={"name": "ana"}, headers=ADMIN), 409, "already_exists")
    _error(c.get(f"{API}/users/nobody", headers=ADMIN), 404, "not_found")
    _error(c.post(f"{API}/users", json={"name": "a/b"}, headers=ADMIN), 422, "invalid_input")
    _error(
        c.post(f"{API}/users", json={"name": "x", "kind": "robot"}, headers=ADMIN),
        422,
        "invalid_input",
    )
    msg = _error(
        c.post(f"{API}/users", json={"name": "x", "roles": ["god"]}, headers=ADMIN),
        422,
        "invalid_input",
    )
    assert "unknown role 'god'" in msg

    grant = {"principal": "ci", "role": "editor", "resource_type": "experiment", "resource_id": "7"}
    g = _ok(c.post(f"{API}/grants", json=grant, headers=ADMIN), 201)
    assert {k: g[k] for k in grant} == grant and g["created_by"] == "admin"
    _error(c.post(f"{API}/grants", json=grant, headers=ADMIN), 409, "already_exists")
    listed = _ok(c.get(f"{API}/grants", params={"principal": "ci"}, headers=ADMIN))["items"]
    assert [(x["role"], x["resource_id"]) for x in listed] == [("editor", "7")]
    assert len(_ok(c.get(f"{API}/grants", headers=ADMIN))["items"]) == 3  # admin, ana, ci
    _ok(c.delete(f"{API}/grants", params=grant, headers=ADMIN), 204)
    _error(c.delete(f"{API}/grants", params=grant, headers=ADMIN), 404, "not_found")
    assert _ok(c.get(f"{API}/grants", params={"principal": "ci"}, headers=ADMIN))["items"] == []
    # The last enabled admin can neither lose the role nor be disabled.
    last = {"principal": "admin", "role": "admin"}
    assert "no enabled admin" in _error(
        c.delete(f"{API}/grants", params=last, headers=ADMIN), 409, "conflict"
    )
    assert "no enabled admin" in _error(
        c.post(f"{API}/users/admin/disable", headers=ADMIN), 409, "conflict"
    )

    ana_token = _ok(c.post(f"{API}/tokens", json={"user": "ana"}, headers=ADMIN), 201)["token"]
    assert _ok(c.get(f"{API}/whoami", headers=_h(ana_token)))["roles"] == ["editor"]
    assert _ok(c.post(f"{API}/users/ana/disable", headers=ADMIN))["disabled"] is True
    assert "disabled" in _error(
        c.get(f"{API}/whoami", headers=_h(ana_token)), 401, "unauthenticated"
    )
    assert _ok(c.post(f"{API}/users/ana/enable", headers=ADMIN))["disabled"] is False
    assert _ok(c.get(f"{API}/whoami", headers=_h(ana_token)))["name"] == "ana"

    # Every change above is in the audit log, by the admin, in order.
    actions = [(e["action"], e["resource_id"]) for e in _audit(c) if e["actor"] == "admin"]
    changes = [a for a in actions if a[0] != "token.use"]
    assert changes == [
        ("user.create", "ana"),
        ("user.create", "ci"),
        ("grant.add", "ci"),
        ("grant.remove", "ci"),
        ("token.create", changes[4][1]),
        ("user.disable", "ana"),
        ("user.enable", "ana"),
    ]


# -- what a non-admin may and may not do --------------------------------------------------------


def test_a_non_admin_manages_only_their_own_tokens(app_client: tuple[Any, TestClient]) -> None:
    _, c = app_client
    ana = _h(_user_with_token(c, "ana", "editor"))
    bob_token = _user_with_token(c, "bob", "viewer")
    before = [e for e in _audit(c) if e["action"] != "token.use"]

    # Users and grants are the admin's.
    for method, path, body in [
        ("GET", "/users", None),
        ("GET", "/users/bob", None),
        ("POST", "/users", {"name": "eve", "roles": ["admin"]}),
        ("POST", "/users/bob/disable", None),
        ("POST", "/users/admin/disable", None),
        ("POST", "/users/bob/enable", None),
        ("GET", "/grants", None),
        ("POST", "/grants", {"principal": "ana", "role": "admin"}),
        ("POST", "/grants", {"principal": "bob", "role": "editor"}),
    ]:
        r = c.request(method, f"{API}{path}", json=body, headers=ana)
        assert "'ana' lacks permission admin globally" == _error(r, 403, "permission_denied")
    r = c.delete(f"{API}/grants", params={"principal": "bob", "role": "viewer"}, headers=ana)
    _error(r, 403, "permission_denied")
    # Nor other people's tokens or grants.
    _error(c.get(f"{API}/tokens", params={"user": "bob"}, headers=ana), 403, "permission_denied")
    r = c.get(f"{API}/grants", params={"principal": "bob"}, headers=ana)
    _error(r, 403, "permission_denied")
    r = c.post(f"{API}/tokens", json={"user": "bob"}, headers=ana)
    _error(r, 403, "permission_denied")
    after = [e for e in _audit(c) if e["action"] != "token.use"]
    assert after == before  # nothing was changed, nothing recorded

    # Her own: create (with an expiry or none), list, revoke.
    mine = _ok(
        c.post(
            f"{API}/tokens",
            json={"user": "ana", "name": "laptop", "expires_in_days": 7},
            headers=ana,
        ),
        201,
    )
    assert mine["user"] == "ana" and mine["expires"] - mine["created"] == 7 * 86_400_000
    # Self-service tokens are bounded: they must expire, within a year, and never after the
    # token that creates them (ana's own expires in 90 days: a 365-day one is cut to it).
    r = c.post(f"{API}/tokens", json={"user": "ana", "expires_in_days": None}, headers=ana)
    assert "only an admin may create a token that never expires" in _error(r, 422, "invalid_input")
    r = c.post(f"{API}/tokens", json={"user": "ana", "expires_in_days": 366}, headers=ana)
    assert "within 365 days" in _error(r, 422, "invalid_input")
    parent = next(
        t
        for t in _ok(c.get(f"{API}/tokens", headers=ana))["items"]
        if t["token_id"] != mine["token_id"]
    )
    capped = _ok(
        c.post(f"{API}/tokens", json={"user": "ana", "expires_in_days": 365}, headers=ana), 201
    )
    assert capped["expires"] == parent["expires"]
    assert _ok(c.get(f"{API}/whoami", headers=_h(mine["token"])))["name"] == "ana"
    listed = _ok(c.get(f"{API}/tokens", headers=ana))["items"]
    assert {t["user"] for t in listed} == {"ana"} and len(listed) == 3
    assert _ok(c.get(f"{API}/tokens", params={"user": "ana"}, headers=ana))["items"] == listed
    own = _ok(c.get(f"{API}/grants", params={"principal": "ana"}, headers=ana))["items"]
    assert [g["role"] for g in own] == ["editor"]

    revoked = _ok(c.post(f"{API}/tokens/{mine['token_id']}/revoke", headers=ana))
    assert revoked["token_id"] == mine["token_id"] and revoked["revoked"] is not None
    _error(c.get(f"{API}/whoami", headers=_h(mine["token"])), 401, "unauthenticated")
    r = c.post(f"{API}/tokens/{mine['token_id']}/revoke", headers=ana)
    _error(r, 409, "conflict")

    # Bob's token is "not found" to her, exactly like an unknown one; the admin may revoke it.
    bob_id = _ok(c.get(f"{API}/whoami", headers=_h(bob_token)))["name"]
    assert bob_id == "bob"
    [bob_tok] = _ok(c.get(f"{API}/tokens", params={"user": "bob"}, headers=ADMIN))["items"]
    theirs = _error(
        c.post(f"{API}/tokens/{bob_tok['token_id']}/revoke", headers=ana), 404, "not_found"
    )
    unknown = _error(
        c.post(f"{API}/tokens/tok_0000000000000000/revoke", headers=ana), 404, "not_found"
    )
    assert theirs.replace(bob_tok["token_id"], "?") == unknown.replace("tok_0000000000000000", "?")
    assert _ok(c.get(f"{API}/whoami", headers=_h(bob_token)))["name"] == "bob"
    _error(c.post(f"{API}/tokens/not-a-token/revoke", headers=ana), 422, "invalid_input")
    _ok(c.post(f"{API}/tokens/{bob_tok['token_id']}/revoke", headers=ADMIN))
    _error(c.get(f"{API}/whoami", headers=_h(bob_token)), 401, "unauthenticated")

    # Her own actions are audited as her; the admin's as the admin.
    events = [(e["actor"], e["action"]) for e in _audit(c) if e["action"] in MUTATIONS]
    assert events[-4:] == [
        ("ana", "token.create"),
        ("ana", "token.create"),
        ("ana", "token.revoke"),
        ("admin", "token.revoke"),
    ]


def test_the_secret_is_in_the_create_answer_only(app_client: tuple[Any, TestClient]) -> None:
    _, c = app_client
    _ok(c.post(f"{API}/users", json={"name": "ana", "roles": ["viewer"]}, headers=ADMIN), 201)
    r = c.post(f"{API}/tokens", json={"user": "ana", "name": "laptop"}, headers=ADMIN)
    created = _ok(r, 201)
    secret = created["token"]
    assert secret.startswith("dy_") and len(secret) >= 40
    assert r.headers["Cache-Control"] == "no-store"
    assert set(created) == {
        "token_id", "user", "name", "created", "expires", "revoked", "last_used", "token"
    }  # fmt: skip
    digest = hash_token(secret)
    _ok(c.get(f"{API}/whoami", headers=_h(secret)))  # used once: last_used, token.use

    answers = [
        c.get(f"{API}/tokens", headers=ADMIN),
        c.get(f"{API}/tokens", params={"user": "ana"}, headers=ADMIN),
        c.get(f"{API}/tokens", headers=_h(secret)),
        c.get(f"{API}/whoami", headers=_h(secret)),
        c.get(f"{API}/users", headers=ADMIN),
        c.get(f"{API}/users/ana", headers=ADMIN),
        c.get(f"{API}/grants", headers=ADMIN),
        c.get(f"{API}/audit", params={"max_results": 10_000}, headers=ADMIN),
        c.get(f"{API}/openapi.json"),
        c.post(f"{API}/tokens/{created['token_id']}/revoke", headers=_h(secret)),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert secret not in answer.text and digest not in answer.text
        assert "token_hash" not in answer.text
    listed = answers[1].json()["items"]
    assert [t["token_id"] for t in listed] == [created["token_id"]]
    assert "token" not in listed[0] and listed[0]["last_used"] is not None


def test_routes_check_the_shape_of_requests(app_client: tuple[Any, TestClient]) -> None:
    _, c = app_client
    for body in (
        {},  # whose token: always explicit
        {"user": "admin", "expires_in_days": 0},
        {"user": "admin", "expires_in_days": 3651},
        {"user": "admin", "expires_in_days": "7"},
        {"user": "admin", "secret": "dy_chosen-by-the-caller"},
    ):
        _error(c.post(f"{API}/tokens", json=body, headers=ADMIN), 422, "invalid_input")
    for body in (
        {"principal": "admin"},
        {
            "principal": "admin",
            "role": "viewer",
            "resource_type": "experiment",
            "resource_id": "\x00",
        },
        {"principal": "admin", "role": "viewer", "resource_type": "dataset", "resource_id": "1"},
        {"principal": "admin", "role": "viewer", "resource_type": "global", "resource_id": "7"},
    ):
        _error(c.post(f"{API}/grants", json=body, headers=ADMIN), 422, "invalid_input")
    _error(c.delete(f"{API}/grants", headers=ADMIN), 422, "invalid_input")
    _error(c.get(f"{API}/tokens", params={"user": "a b"}, headers=ADMIN), 422, "invalid_input")


# -- the same through the SDK: RestIdentityService and the Client --------------------------------


def test_rest_identity_service_has_the_service_methods_and_signatures() -> None:
    from dockyard.client.rest import RestTrackingService
    from dockyard.client.rest_identity import RestIdentityService
    from dockyard.client.rest_registry import RestRegistryService
    from dockyard.governance.identity import IdentityService
    from dockyard.registry.service import RegistryService
    from dockyard.tracking.service import TrackingService

    def own(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    assert own(RestIdentityService) == own(IdentityService)
    for name in sorted(own(IdentityService)):
        local_sig = inspect.signature(getattr(IdentityService, name))
        remote_sig = inspect.signature(getattr(RestIdentityService, name))
        assert str(remote_sig) == str(local_sig), name
    # The Client falls back by name from tracking to registry to identity: no name clashes.
    assert public(IdentityService) & (public(TrackingService) | public(RegistryService)) == set()
    others = public(RestTrackingService) | public(RestRegistryService)
    assert public(RestIdentityService) & others == {"close"}


def test_rest_client_speaks_the_same_api(app_client: tuple[Any, TestClient]) -> None:
    from dockyard.client.rest_identity import RestIdentityService

    _, c = app_client
    remote = RestIdentityService("http://testserver")
    remote._http.close()
    remote._http = c  # the in-process app instead of a socket

    def as_(token: str) -> RestIdentityService:
        c.headers["Authorization"] = f"Bearer {token}"
        return remote

    admin = as_(ADMIN_TOKEN)
    me = admin.whoami()
    assert isinstance(me, Identity) and me.name == "admin" and me.admin and me.roles == ["admin"]
    ana = admin.create_user("ana", display="Ana", roles=["editor"])
    assert isinstance(ana, User) and ana.display == "Ana"
    assert admin.get_user("ana") == ana
    assert [u.name for u in admin.list_users()] == ["admin", "ana"]
    g = admin.grant("ana", "approver", "registered_model", "fraud")
    assert isinstance(g, Grant) and g.resource_id == "fraud"
    assert sorted(x.role for x in admin.list_grants("ana")) == ["approver", "editor"]
    admin.revoke_grant("ana", "approver", "registered_model", "fraud")
    assert [x.role for x in admin.list_grants("ana")] == ["editor"]
    new = admin.create_token("ana", "laptop", expires_in_days=None)
    assert isinstance(new, NewToken) and new.token.expires is None
    assert new.secret not in repr(new)

    ana_side = as_(new.secret)
    assert ana_side.whoami().roles == ["editor"] and not ana_side.whoami().admin
    second = ana_side.create_token("ana", "ci", expires_in_days=1)
    assert {t.token_id for t in ana_side.list_tokens()} == {
        new.token.token_id,
        second.token.token_id,
    }
    assert all(isinstance(t, ApiToken) for t in ana_side.list_tokens())
    with pytest.raises(PermissionDenied, match="lacks permission admin"):
        ana_side.list_users()
    with pytest.raises(PermissionDenied):
        ana_side.create_user("eve", roles=["admin"])
    with pytest.raises(PermissionDenied):
        ana_side.grant("ana", "admin")
    admin_tokens = as_(ADMIN_TOKEN).list_tokens("admin")
    with pytest.raises(NotFound):
        as_(new.secret).revoke_token(admin_tokens[0].token_id)
    assert as_(new.secret).revoke_token(second.token.token_id).revoked is not None
    with pytest.raises(Conflict, match="already revoked"):
        as_(new.secret).revoke_token(second.token.token_id)
    as_(ADMIN_TOKEN).set_disabled("ana")
    with pytest.raises(Unauthenticated, match="disabled"):
        as_(new.secret).whoami()
    assert as_(ADMIN_TOKEN).set_disabled("ana", False).disabled is False


def test_whoami_with_auth_off_is_anonymous_with_every_permission(tmp_path: Path) -> None:
    settings = load_settings(overrides={"home": str(tmp_path), "auth": "off"}, environ={})
    with TestClient(create_app(settings)) as c:
        me = _ok(c.get(f"{API}/whoami"))
    assert me == {
        "name": "anonymous",
        "kind": None,
        "display": "",
        "superuser": True,
        "admin": True,
        "roles": [],
        "grants": [],
    }


def test_client_exposes_identity_in_local_mode(
    sdk_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dockyard.cli.main import main
    from dockyard.client.client import Client

    monkeypatch.setenv("DOCKYARD_USER", "boss")
    client = Client()
    me = client.whoami()
    assert (me.name, me.kind, me.superuser) == ("boss", None, True)  # no users yet
    assert main(["whoami"]) == 0
    assert "boss (not a Dockyard user; every permission" in capsys.readouterr().out
    client.create_user("boss", roles=["admin"])
    client.create_user("ana", roles=["viewer"])
    assert client.identity.get_user("ana").name == "ana"
    assert Client().whoami().roles == ["admin"]
    assert main(["whoami", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["roles"] == ["admin"]
    assert main(["whoami"]) == 0
    assert capsys.readouterr().out.strip() == "boss (user); roles: admin"

    # `tokens create` without a user: a token for yourself.
    monkeypatch.setenv("DOCKYARD_USER", "ana")
    assert main(["tokens", "create", "--name", "mine", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["user"] == "ana" and made["token"].startswith("dy_")
    assert main(["tokens", "create", "boss"]) == 5
    assert "lacks permission admin" in capsys.readouterr().err
    assert main(["users", "list"]) == 5
    capsys.readouterr()
    with pytest.raises(AttributeError, match="no_such_method"):
        Client().no_such_method  # noqa: B018


def test_the_remote_identity_client_loads_no_store() -> None:
    """A laptop managing tokens on a server needs neither SQLAlchemy nor the data stack."""
    code = (
        "import sys, dockyard.client.rest_identity\n"
        "print(sorted({'sqlalchemy', 'alembic', 'pandas', 'numpy', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
