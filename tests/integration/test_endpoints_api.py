"""Endpoints over REST: deploy (replace, A/B, shadow, canary), weights, remove, promote, rollback,
delete, history and decisions, on SQLite and PostgreSQL.

The in-process app with auth on (Starlette's TestClient, the lifespan runs) and the bootstrap
admin's token; model versions are registered and approved through the backend the app opened.
The rules are the endpoint service's, so these tests check that the routes reach it as the
caller the token stands for (a deployer may change, a viewer only look), that bad input is a
4xx naming the field, and that the remote client (:class:`RestEndpointService`) answers exactly
what the local service does.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from test_approvals import register  # the shared package helper

from dockyard.core.config import load_settings
from dockyard.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from dockyard.core.serving_entities import Decision, Endpoint, ModelRef
from dockyard.governance.audit import Actor
from dockyard.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"
ADMIN_TOKEN = "dy_endpoints-admin-" + "e" * 40
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def app_client(tmp_path: Path, db_url: str) -> Iterator[tuple[Any, TestClient, dict[str, str]]]:
    """The app; fraud versions 1..3 approved, 4 a candidate; users dep (deployer) and vic
    (viewer). Yields (app, client, {user: token})."""
    # No canary controller in the background: these tests drive every change themselves.
    overrides = {"home": str(tmp_path), "db_url": db_url, "auth": "on", "canary_interval": 0}
    settings = load_settings(overrides=overrides, environ={})
    app = create_app(settings, admin_token=ADMIN_TOKEN)
    with TestClient(app) as c:
        backend = app.state.backend
        reg = backend.registry(Actor("admin"))
        reg.create_registered_model("fraud")
        for v in range(1, 5):
            assert register(backend, reg, tmp_path / f"pkg{v}", f"model {v}".encode()) == v
            if v < 4:
                reg.transition("fraud", v, "approved", override_gate=True, reason="test")
        ids = backend.identity(Actor("admin"))
        tokens = {}
        for user, role in (("dep", "deployer"), ("vic", "viewer")):
            ids.create_user(user, roles=[role])
            tokens[user] = ids.create_token(user).secret
        yield app, c, tokens


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return None if status == 204 else r.json()


def _error(r: Any, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    return err["message"]  # type: ignore[no-any-return]


def _deploy(c: TestClient, name: str, headers: dict[str, str], **body: Any) -> Any:
    return c.post(f"{API}/endpoints/{name}/deploy", json=body, headers=headers)


# -- the whole life of an endpoint through the routes ------------------------------------------


def test_deploy_ab_shadow_weights_promote_rollback_delete(app_client: Any) -> None:
    app, c, tokens = app_client
    dep = _h(tokens["dep"])
    created = _ok(
        _deploy(c, "fraud-ep", dep, model="fraud/1", description="scorer", key_field="user"), 201
    )
    assert created["version"] == 1 and created["description"] == "scorer"
    assert created["created_by"] == "dep" and created["policy"]["weights"] == {"fraud-1": 100}
    assert created["policy"]["key_field"] == "user"
    assert _ok(c.get(f"{API}/endpoints/fraud-ep", headers=dep)) == created

    ab = _ok(_deploy(c, "fraud-ep", dep, model="fraud/2", mode="ab", weight=30, reason="try B"))
    assert ab["version"] == 2 and ab["last_good_version"] == 1
    assert ab["policy"]["weights"] == {"fraud-1": 70, "fraud-2": 30}
    shadow = _ok(_deploy(c, "fraud-ep", dep, model="fraud/4", mode="shadow", variant="cand"))
    assert shadow["policy"]["shadows"] == {"cand": {"model": "fraud", "version": 4}}

    w = {"weights": {"fraud-1": 50, "fraud-2": 50}, "reason": "even"}
    even = _ok(c.put(f"{API}/endpoints/fraud-ep/weights", json=w, headers=dep))
    assert even["policy"]["weights"] == {"fraud-1": 50, "fraud-2": 50} and even["version"] == 4
    gone = _ok(c.delete(f"{API}/endpoints/fraud-ep/variants/cand", headers=dep))
    assert gone["policy"]["shadows"] == {}
    promoted = _ok(
        c.post(
            f"{API}/endpoints/fraud-ep/promote",
            json={"variant": "fraud-2", "reason": "B won"},
            headers=dep,
        )
    )
    assert promoted["policy"]["weights"] == {"fraud-2": 100}
    assert promoted["policy"]["primary"] == "fraud-2"
    reg = app.state.backend.registry(Actor("admin"))
    assert reg.get_model_version("fraud", 2).status == "production"
    assert reg.get_model_version("fraud", 1).status == "deprecated"

    back = _ok(c.post(f"{API}/endpoints/fraud-ep/rollback", json={"reason": "oops"}, headers=dep))
    assert back["policy"]["weights"] == {"fraud-1": 50, "fraud-2": 50} and back["version"] == 7
    # Rollback takes no body at all, too (here: nothing left to roll back to).
    r = c.post(f"{API}/endpoints/fraud-ep/rollback", headers=dep)
    assert "already runs its last good policy (version 5)" in _error(r, 409, "conflict")

    listed = _ok(c.get(f"{API}/endpoints", headers=dep))
    assert [e["name"] for e in listed["items"]] == ["fraud-ep"]
    assert listed["next_page_token"] is None
    history = _ok(c.get(f"{API}/endpoints/fraud-ep/history", headers=dep))["items"]
    assert [h["version"] for h in history] == [7, 6, 5, 4, 3, 2, 1]
    assert history[-1]["created_by"] == "dep" and history[-1]["policy"]["primary"] == "fraud-1"
    assert history[1]["reason"] == "B won"
    two = _ok(c.get(f"{API}/endpoints/fraud-ep/history", params={"limit": 2}, headers=dep))
    assert [h["version"] for h in two["items"]] == [7, 6]
    decisions = _ok(c.get(f"{API}/endpoints/fraud-ep/decisions", headers=dep))["items"]
    assert [d["action"] for d in decisions] == [
        "rollback",
        "promote",
        "remove",
        "weights",
        "shadow",
        "ab",
        "deploy",
    ]
    assert decisions[1]["actor"] == "dep" and decisions[1]["evidence"] == {"variant": "fraud-2"}
    assert decisions[0]["reason"] == "oops"

    _ok(c.delete(f"{API}/endpoints/fraud-ep", params={"reason": "retired"}, headers=dep), 204)
    _error(c.get(f"{API}/endpoints/fraud-ep", headers=dep), 404, "not_found")
    _error(c.delete(f"{API}/endpoints/fraud-ep", headers=dep), 404, "not_found")
    assert _ok(c.get(f"{API}/endpoints", headers=dep))["items"] == []
    # Created again: 201 again.
    _ok(_deploy(c, "fraud-ep", dep, model="fraud@nonexistent"), 404)
    reg.set_alias("fraud", "champion", 3)
    again = _ok(_deploy(c, "fraud-ep", dep, model="fraud@champion"), 201)
    assert again["policy"]["variants"] == {"fraud-3": {"model": "fraud", "version": 3}}

    audit = _ok(c.get(f"{API}/audit", params={"max_results": 10_000}, headers=ADMIN))["items"]
    actions = [e["action"] for e in audit if e["resource_type"] == "endpoint"]
    assert actions[-3:] == ["endpoint.rollback", "endpoint.delete", "endpoint.deploy"]
    assert {e["actor"] for e in audit if e["resource_type"] == "endpoint"} == {"dep"}


def test_canary_through_the_routes(app_client: Any) -> None:
    _, c, tokens = app_client
    dep = _h(tokens["dep"])
    _ok(_deploy(c, "ep", dep, model="fraud/1"), 201)
    started = _ok(
        _deploy(
            c,
            "ep",
            dep,
            model="fraud/2",
            mode="canary",
            steps=[10, 50, 100],
            bake="1m",
            min_requests=20,
            gates=["error_rate<0.01", "p99_ms<=primary*1.5"],
        )
    )
    plan = started["policy"]["canary"]
    assert plan["steps"] == [10, 50, 100] and plan["bake_seconds"] == 60
    assert plan["gates"] == ["error_rate<0.01", "p99_ms<=primary*1.5"]
    assert plan["min_requests"] == 20 and plan["step"] == 0 and plan["variant"] == "fraud-2"
    assert started["policy"]["weights"] == {"fraud-1": 90, "fraud-2": 10}
    # Steps as text and a bake in seconds work too; a running canary blocks other deploys.
    msg = _error(_deploy(c, "ep", dep, model="fraud/3", mode="ab", weight=5), 409, "conflict")
    assert "canary of fraud/2 is running" in msg
    msg = _error(
        c.put(f"{API}/endpoints/ep/weights", json={"weights": {"fraud-1": 100}}, headers=dep),
        409,
        "conflict",
    )
    assert "canary is running" in msg
    # Promote with no variant: the running canary.
    done = _ok(c.post(f"{API}/endpoints/ep/promote", json={}, headers=dep))
    assert done["policy"]["weights"] == {"fraud-2": 100} and done["policy"]["canary"] is None
    assert done["last_good_version"] == 1

    second = _ok(
        _deploy(c, "ep", dep, model="fraud/3", mode="canary", steps="50,100", bake=30, gates=[])
    )
    assert second["policy"]["canary"]["steps"] == [50, 100]
    assert second["policy"]["canary"]["bake_seconds"] == 30
    assert second["policy"]["canary"]["gates"] == []
    back = _ok(c.post(f"{API}/endpoints/ep/rollback", json={"reason": "slow"}, headers=dep))
    assert back["policy"]["weights"] == {"fraud-2": 100} and back["policy"]["canary"] is None


# -- who may do what ---------------------------------------------------------------------------


def test_a_viewer_looks_and_changes_nothing(app_client: Any) -> None:
    app, c, tokens = app_client
    dep, vic = _h(tokens["dep"]), _h(tokens["vic"])
    _ok(_deploy(c, "ep", dep, model="fraud/1"), 201)
    _ok(_deploy(c, "ep", dep, model="fraud/2", mode="ab", weight=20))
    assert _ok(c.get(f"{API}/endpoints/ep", headers=vic))["version"] == 2
    assert len(_ok(c.get(f"{API}/endpoints", headers=vic))["items"]) == 1
    assert len(_ok(c.get(f"{API}/endpoints/ep/history", headers=vic))["items"]) == 2
    assert len(_ok(c.get(f"{API}/endpoints/ep/decisions", headers=vic))["items"]) == 2

    denied = "'vic' lacks permission endpoint:deploy (on any endpoint)"
    for method, path, body in [
        ("POST", "/endpoints/ep/deploy", {"model": "fraud/3"}),
        ("POST", "/endpoints/other/deploy", {"model": "fraud/3"}),
        ("PUT", "/endpoints/ep/weights", {"weights": {"fraud-1": 50, "fraud-2": 50}}),
        ("DELETE", "/endpoints/ep/variants/fraud-2", None),
        ("POST", "/endpoints/ep/promote", {"variant": "fraud-2"}),
        ("POST", "/endpoints/ep/rollback", None),
        ("DELETE", "/endpoints/ep", None),
    ]:
        r = c.request(method, f"{API}{path}", json=body, headers=vic)
        assert _error(r, 403, "permission_denied") == denied
    assert _ok(c.get(f"{API}/endpoints/ep", headers=vic))["version"] == 2
    # Without a token: 401, whatever the route.
    for method, path in [("GET", "/endpoints"), ("POST", "/endpoints/ep/deploy")]:
        _error(c.request(method, f"{API}{path}", json={}), 401, "unauthenticated")

    # A grant on one endpoint: deploy there, nowhere else; list shows what one may read.
    ids = app.state.backend.identity(Actor("admin"))
    ids.create_user("eve")
    ids.grant("eve", "deployer", "endpoint", "mine")
    ids.grant("eve", "viewer", "registered_model", "fraud")
    eve = _h(ids.create_token("eve").secret)
    _ok(_deploy(c, "mine", eve, model="fraud/3"), 201)
    msg = _error(_deploy(c, "ep", eve, model="fraud/3"), 403, "permission_denied")
    assert msg == "'eve' lacks permission endpoint:deploy on endpoint 'ep'"
    assert [e["name"] for e in _ok(c.get(f"{API}/endpoints", headers=eve))["items"]] == ["mine"]
    assert [e["name"] for e in _ok(c.get(f"{API}/endpoints", headers=ADMIN))["items"]] == [
        "ep",
        "mine",
    ]


# -- bad input: a 4xx naming what is wrong ---------------------------------------------------------


def test_bad_input_names_the_field(app_client: Any) -> None:
    _, c, tokens = app_client
    dep = _h(tokens["dep"])
    _ok(_deploy(c, "ep", dep, model="fraud/1"), 201)
    for body, field in [
        ({}, "body.model"),
        ({"model": "fraud/2", "mode": "blue-green"}, "body.mode"),
        ({"model": "fraud/2", "mode": "ab", "weight": "30"}, "body.weight"),
        ({"model": "fraud/2", "mode": "ab", "weight": 101}, "body.weight"),
        ({"model": "fraud/2", "mode": "canary", "steps": [5, 500]}, "body.steps"),
        ({"model": "fraud/2", "mode": "canary", "min_requests": -1}, "body.min_requests"),
        ({"model": "fraud/2", "mode": "canary", "gates": "error_rate<0.01"}, "body.gates"),
        ({"model": "fraud/2", "description": "a\x00b"}, "body.description"),
        ({"model": "fraud/2", "reason": "x" * 2001}, "body.reason"),
        ({"model": "fraud/2", "modle": "typo"}, "body.modle"),
        ({"model": 2}, "body.model"),
    ]:
        msg = _error(_deploy(c, "ep", dep, **body), 422, "invalid_input")
        assert field in msg, (body, msg)
    # Value rules are the service's, with its messages.
    for body, words in [
        ({"model": "fraud/2", "mode": "ab"}, "an A/B variant needs a weight"),
        ({"model": "fraud/2", "mode": "canary", "steps": "50,10,100"}, "must increase"),
        ({"model": "fraud/2", "mode": "canary", "gates": ["latency is fine"]}, "gate"),
        ({"model": "fraud/2", "mode": "canary", "bake": "soon"}, "duration"),
        ({"model": "fraud/2", "bake": "1m"}, "only apply to mode 'canary'"),
        ({"model": "fraud/2", "weight": 5}, "weight only applies to mode 'ab'"),
        ({"model": "fraud/2", "variant": "a b"}, "variant name"),
        ({"model": "fraud/2", "key_field": "not a field"}, "key_field"),
        ({"model": "fraud"}, "fraud"),
    ]:
        msg = _error(_deploy(c, "ep", dep, **body), 422, "invalid_input")
        assert words in msg, (body, msg)
    assert "does not exist" in _error(
        _deploy(c, "new", dep, model="fraud/2", mode="ab", weight=10), 404, "not_found"
    )
    _error(_deploy(c, "ep", dep, model="fraud/99"), 404, "not_found")
    msg = _error(_deploy(c, "ep", dep, model="fraud/4"), 409, "conflict")
    assert "only approved or production versions take live traffic" in msg

    # Path parameters: the name's syntax, bounded.
    for bad in ("a%20b", "-x", "x" * 129, "%2E%2E"):
        msg = _error(c.get(f"{API}/endpoints/{bad}", headers=dep), 422, "invalid_input")
        assert "path.name" in msg, msg
    msg = _error(c.delete(f"{API}/endpoints/ep/variants/a%20b", headers=dep), 422, "invalid_input")
    assert "path.variant" in msg
    for params, field in [({"limit": 0}, "query.limit"), ({"limit": 1001}, "query.limit")]:
        r = c.get(f"{API}/endpoints/ep/history", params=params, headers=dep)
        assert field in _error(r, 422, "invalid_input")
    r = c.delete(f"{API}/endpoints/ep", params={"reason": "a\x00b"}, headers=dep)
    assert "query.reason" in _error(r, 422, "invalid_input")

    weights = [
        ({"weights": {"fraud-1": "100"}}, "body.weights"),
        ({"weights": {"fraud-1": 101}}, "body.weights"),
        ({}, "body.weights"),
    ]
    for body, field in weights:
        r = c.put(f"{API}/endpoints/ep/weights", json=body, headers=dep)
        assert field in _error(r, 422, "invalid_input")
    r = c.put(f"{API}/endpoints/ep/weights", json={"weights": {"fraud-1": 90}}, headers=dep)
    assert "sum to 100" in _error(r, 422, "invalid_input")
    r = c.post(f"{API}/endpoints/ep/promote", json={"variant": 3}, headers=dep)
    assert "body.variant" in _error(r, 422, "invalid_input")
    r = c.post(f"{API}/endpoints/ep/promote", json={"variant": "nope"}, headers=dep)
    _error(r, 404, "not_found")
    r = c.post(f"{API}/endpoints/ep/rollback", json={"why": "x"}, headers=dep)
    assert "body.why" in _error(r, 422, "invalid_input")
    r = c.post(f"{API}/endpoints/ep/rollback", headers=dep)
    assert "no earlier policy" in _error(r, 409, "conflict")
    r = c.delete(f"{API}/endpoints/ep/variants/fraud-1", headers=dep)
    assert "is the primary" in _error(r, 409, "conflict")


# -- the same through the SDK: RestEndpointService and the Client --------------------------------


def test_rest_endpoint_service_has_the_service_methods_and_signatures() -> None:
    from dockyard.client.rest import RestTrackingService
    from dockyard.client.rest_endpoints import RestEndpointService
    from dockyard.client.rest_identity import RestIdentityService
    from dockyard.client.rest_registry import RestRegistryService
    from dockyard.governance.identity import IdentityService
    from dockyard.registry.service import RegistryService
    from dockyard.serving.service import SERVING_PERMISSIONS, EndpointService
    from dockyard.tracking.service import TrackingService

    def own(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    # Every method but the canary controller's, which runs inside the server only.
    assert own(RestEndpointService) == own(EndpointService) - {"apply_canary_step"}
    assert set(SERVING_PERMISSIONS) == own(EndpointService)
    for name in sorted(own(RestEndpointService)):
        local_sig = inspect.signature(getattr(EndpointService, name))
        remote_sig = inspect.signature(getattr(RestEndpointService, name))
        assert str(remote_sig) == str(local_sig), name
    # The Client falls back by name from tracking to registry to identity to endpoints: no
    # service shares a method name with another.
    local = [TrackingService, RegistryService, IdentityService, EndpointService]
    for i, a in enumerate(local):
        for b in local[i + 1 :]:
            assert public(a) & public(b) == set(), (a.__name__, b.__name__)
    remote = [RestTrackingService, RestRegistryService, RestIdentityService, RestEndpointService]
    for i, a in enumerate(remote):
        for b in remote[i + 1 :]:
            assert public(a) & public(b) == {"close"}, (a.__name__, b.__name__)


def test_rest_client_answers_what_the_service_does(app_client: Any) -> None:
    from dockyard.client.rest_endpoints import RestEndpointService

    app, c, tokens = app_client
    remote = RestEndpointService("http://testserver")
    remote._http.close()
    remote._http = c  # the in-process app instead of a socket
    c.headers["Authorization"] = f"Bearer {tokens['dep']}"
    local = app.state.backend.endpoints(Actor("dep"))

    ep = remote.deploy("ep", ModelRef("fraud", 1), description="d")
    assert isinstance(ep, Endpoint) and ep == local.get_endpoint("ep")
    ep = remote.deploy("ep", "fraud/2", mode="ab", weight=25, variant="b", reason="AB")
    assert ep.policy.weights == {"fraud-1": 75, "b": 25} and ep == local.get_endpoint("ep")
    assert remote.get_endpoint("ep") == ep
    ep = remote.set_weights("ep", {"fraud-1": 60, "b": 40}, reason="more B")
    assert ep.policy.weights == {"fraud-1": 60, "b": 40}
    ep = remote.deploy("ep", "fraud/4", mode="shadow")
    assert ep.policy.shadows == {"fraud-4": ModelRef("fraud", 4)}
    ep = remote.remove_variant("ep", "fraud-4", reason="enough")
    assert ep.policy.shadows == {} and ep == local.get_endpoint("ep")
    ep = remote.promote("ep", "b")
    assert ep.policy.primary == "b" and ep.policy.weights == {"b": 100}
    ep = remote.rollback("ep", "no")
    assert ep.policy.weights == {"fraud-1": 60, "b": 40}
    ep = remote.promote("ep", reason="the only other")
    assert ep.policy.primary == "b"
    ep = remote.deploy(
        "ep", "fraud/3", mode="canary", steps=(20, 100), bake=90, min_requests=5,
        gates=["error_rate<0.05"],
    )  # fmt: skip
    assert ep.policy.canary is not None and ep.policy.canary.bake_seconds == 90
    assert ep == local.get_endpoint("ep") == remote.get_endpoint("ep")
    assert remote.list_endpoints() == local.list_endpoints()
    assert remote.policy_history("ep") == local.policy_history("ep")
    assert remote.policy_history("ep", 3) == local.policy_history("ep", 3)
    assert len(remote.policy_history("ep", 3)) == 3
    got = remote.list_decisions("ep")
    assert got == local.list_decisions("ep") and all(isinstance(d, Decision) for d in got)
    assert remote.list_decisions("ep", limit=1) == local.list_decisions("ep", limit=1)

    # A mode the schema does not know: the same class (the route's message names the field).
    with pytest.raises(InvalidInput, match=r"body\.mode"):
        remote.deploy("ep", "fraud/2", mode="blue")
    with pytest.raises(InvalidInput, match="mode must be one of"):
        local.deploy("ep", "fraud/2", mode="blue")
    # Errors are the service's classes with its messages.
    for call in (
        lambda s: s.get_endpoint("nope"),
        lambda s: s.deploy("ep", "fraud/2", mode="ab"),
        lambda s: s.set_weights("ep", {"x": 100}),
        lambda s: s.remove_variant("ep", "fraud-3"),
        lambda s: s.deploy("ep", "fraud/1", mode="ab", weight=10),
        lambda s: s.policy_history("nope"),
        lambda s: s.list_decisions("nope"),
        lambda s: s.delete_endpoint("nope"),
    ):
        with pytest.raises((InvalidInput, NotFound, Conflict)) as remote_err:
            call(remote)
        with pytest.raises((InvalidInput, NotFound, Conflict)) as local_err:
            call(local)
        assert type(remote_err.value) is type(local_err.value)
        assert remote_err.value.message == local_err.value.message
    # Names are checked before they become URL segments.
    with pytest.raises(InvalidInput, match="endpoint name"):
        remote.get_endpoint("../audit")
    with pytest.raises(InvalidInput, match="variant name"):
        remote.remove_variant("ep", "a/b")

    c.headers["Authorization"] = f"Bearer {tokens['vic']}"
    with pytest.raises(PermissionDenied, match="lacks permission endpoint:deploy"):
        remote.rollback("ep")
    assert remote.get_endpoint("ep").version == ep.version
    c.headers["Authorization"] = f"Bearer {tokens['dep']}"
    assert remote.delete_endpoint("ep", reason="done") is None
    assert remote.list_endpoints() == []


def test_client_exposes_endpoints_in_local_mode(
    sdk_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dockyard.client.client import Client, _local_backend

    monkeypatch.setenv("DOCKYARD_USER", "boss")
    client = Client()
    backend = _local_backend(client.settings)
    reg = client.registry
    reg.create_registered_model("fraud")
    assert register(backend, reg, tmp_path / "pkg1", b"one") == 1
    reg.transition("fraud", 1, "approved", override_gate=True, reason="test")
    ep = client.deploy("ep", "fraud/1")
    assert ep.policy.primary_ref == ModelRef("fraud", 1)
    assert client.endpoints.get_endpoint("ep") == ep == client.get_endpoint("ep")
    assert [d.action for d in client.list_decisions("ep")] == ["deploy"]
    assert client.endpoints.actor.name == "boss"
    with pytest.raises(AttributeError, match="no_such_method"):
        client.no_such_method  # noqa: B018


def test_the_remote_endpoint_client_loads_no_store() -> None:
    """A laptop deploying to a server needs neither SQLAlchemy nor the data stack."""
    code = (
        "import sys, dockyard.client.rest_endpoints\n"
        "print(sorted({'sqlalchemy', 'alembic', 'pandas', 'numpy', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
