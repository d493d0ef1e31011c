"""Server auth: bearer tokens, 401/403, bootstrap, and every route under every prefix form.

Deny by default: the test enumerates ``app.routes`` (so a route added tomorrow is covered
without touching this file) and, for every method and every spelling of its path (trailing
slash, upper case, doubled slashes, percent-encoded characters), checks that a request
without a token is refused with 401, and that a viewer's token never changes anything.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import Route

from dockyard.core.config import Settings, load_settings
from dockyard.core.errors import InvalidInput
from dockyard.governance.identity import authenticate
from dockyard.server._auth import PUBLIC_PATHS, resolve_auth_mode
from dockyard.server.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; the httpx fallback behaves the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"
#: POST routes that only read (a search with a body): a viewer may call them.
READS_BY_POST = {("POST", f"{API}/runs/search")}
ADMIN_TOKEN = "dy_test-admin-" + "k" * 40


@pytest.fixture
def auth_settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        overrides={"home": str(tmp_path), "db_url": db_url, "auth": "on"}, environ={}
    )


@pytest.fixture
def app_client(auth_settings: Settings) -> Iterator[tuple[Any, TestClient]]:
    app = create_app(auth_settings, admin_token=ADMIN_TOKEN)
    with TestClient(app) as c:
        yield app, c


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def seeded(app_client: tuple[Any, TestClient]) -> dict[str, Any]:
    """An experiment, a run and a model made by the admin; a viewer and its token."""
    app, c = app_client
    admin = _h(ADMIN_TOKEN)
    exp = c.post(f"{API}/experiments", json={"name": "exp"}, headers=admin).json()
    run = c.post(f"{API}/runs", json={"experiment_id": exp["experiment_id"]}, headers=admin)
    assert run.status_code == 201, run.text
    assert c.post(f"{API}/models", json={"name": "fraud"}, headers=admin).status_code == 201
    ids = app.state.backend.identity(authenticate(app.state.backend.store, ADMIN_TOKEN))
    ids.create_user("viewer", roles=["viewer"])
    viewer = ids.create_token("viewer").secret
    return {
        "experiment_id": exp["experiment_id"],
        "run_id": run.json()["run_id"],
        "viewer": viewer,
    }


def test_auth_mode_resolution() -> None:
    assert resolve_auth_mode("auto", "0.0.0.0") is True
    assert resolve_auth_mode("auto", "10.1.2.3") is True
    assert resolve_auth_mode("auto", "127.0.0.1") is False
    assert resolve_auth_mode("auto", "::1") is False
    assert resolve_auth_mode("auto", "localhost") is False
    assert resolve_auth_mode("auto", None) is True  # bind address unknown: on
    assert resolve_auth_mode("on", "127.0.0.1") is True
    assert resolve_auth_mode("off", "0.0.0.0") is False
    with pytest.raises(InvalidInput, match="auto, on or off"):
        resolve_auth_mode("maybe", "127.0.0.1")


def test_tokens_on_the_wire(seeded: dict[str, Any], app_client: tuple[Any, TestClient]) -> None:
    _app, c = app_client
    assert c.get("/healthz").status_code == 200
    assert c.get(f"{API}/openapi.json").status_code == 200

    for headers in ({}, _h("dy_wrong"), {"Authorization": "Basic YWRtaW46YWRtaW4="}, _h("")):
        r = c.get(f"{API}/experiments", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthenticated"
        assert "dy_wrong" not in r.text

    viewer = _h(seeded["viewer"])
    r = c.get(f"{API}/experiments", headers={"Authorization": f"bearer {seeded['viewer']}"})
    assert r.status_code == 200 and [e["name"] for e in r.json()["items"]] == ["exp"]
    r = c.post(f"{API}/experiments", json={"name": "x"}, headers=viewer)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "permission_denied"
    assert err["message"] == "'viewer' lacks permission experiment:write (on any experiment)"
    assert err["details"]["permission"] == "experiment:write"
    r = c.post(f"{API}/runs/{seeded['run_id']}/batch", json={"params": {"a": "1"}}, headers=viewer)
    assert r.status_code == 403
    assert "experiment:write" in r.json()["error"]["message"]
    r = c.post(f"{API}/blobs", content=b"x", headers=viewer)
    assert r.status_code == 403 and "model:write" in r.text
    # A per-resource grant: the 403 names the exact resource that is missing.
    app = _app
    admin = authenticate(app.state.backend.store, ADMIN_TOKEN)
    other = c.post(f"{API}/experiments", json={"name": "other"}, headers=_h(ADMIN_TOKEN)).json()
    ids = app.state.backend.identity(admin)
    ids.create_user("ed")
    ids.grant("ed", "editor", "experiment", other["experiment_id"])
    ed = _h(ids.create_token("ed").secret)
    r = c.post(f"{API}/runs", json={"experiment_id": other["experiment_id"]}, headers=ed)
    assert r.status_code == 201
    r = c.post(f"{API}/runs/{seeded['run_id']}/batch", json={"params": {"a": "1"}}, headers=ed)
    assert r.status_code == 403
    assert r.json()["error"]["message"] == (
        f"'ed' lacks permission experiment:write on experiment {seeded['experiment_id']!r}"
    )
    r = c.get(f"{API}/experiments", headers=ed)
    assert [e["name"] for e in r.json()["items"]] == ["other"]

    r = c.get(f"{API}/audit", headers=viewer)
    assert r.status_code == 403 and "audit:read" in r.text
    r = c.get(f"{API}/audit", headers=_h(ADMIN_TOKEN))
    assert r.status_code == 200
    assert "viewer" in {e["actor"] for e in r.json()["items"] if e["action"] == "token.use"}


def _concrete(path: str, seeded: dict[str, Any]) -> str:
    values = {
        "experiment_id": seeded["experiment_id"],
        "run_id": seeded["run_id"],
        "name": "fraud",
        "version": "1",
        "alias": "champion",
        "key": "k",
        "path": "model/file.txt",
        "ref": seeded["experiment_id"],
    }

    def fill(m: re.Match[str]) -> str:
        return values.get(m.group(1), "x")

    return re.sub(r"\{([a-z_]+)(?::[a-z]+)?\}", fill, path)


def _variants(path: str) -> list[str]:
    first = path[1]
    return sorted(
        {
            path,
            path + "/",
            path.upper(),
            path[:1] + path[1].upper() + path[2:],
            "/" + path,
            path.replace("/", "//"),
            path.replace("/v1/", "/v1//"),
            f"/%{ord(first):02X}{path[2:]}",  # the first letter percent-encoded
            path.replace("/", "%2F"),
            path.rstrip("/") + "/.",
            path + "%20",
            path + ";x",
        }
    )


def _flat(routes: Any) -> Iterator[Any]:
    """Every route the app serves. FastAPI keeps an included router as one entry of
    ``app.routes`` whose ``effective_candidates()`` are its routes (with their full paths)."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from _flat(candidates() if callable(candidates) else candidates)
        else:
            yield route


def _routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for route in _flat(app.routes):
        assert isinstance(route, Route) or hasattr(route, "original_route"), route
        assert route.path.startswith("/"), route
        for method in sorted(route.methods or {"GET"}):
            out.append((method, route.path))
    return out


def test_every_route_in_every_form_needs_a_token(
    seeded: dict[str, Any], app_client: tuple[Any, TestClient]
) -> None:
    app, c = app_client
    routes = _routes(app)
    assert len(routes) >= 40  # tracking, artifacts, audit, registry, blobs, meta, docs
    checked = 0
    for method, template in routes:
        path = _concrete(template, seeded)
        for variant in _variants(path):
            r = c.request(method, variant, content=b"{}")
            decoded_public = variant in PUBLIC_PATHS or (
                template in PUBLIC_PATHS and r.status_code < 300
            )
            if decoded_public:
                continue
            assert r.status_code == 401, (method, variant, r.status_code, r.text[:200])
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            if method != "HEAD":
                assert r.json()["error"]["code"] == "unauthenticated"
            checked += 1
    assert checked > 400


def test_a_viewer_changes_nothing_through_any_route(
    seeded: dict[str, Any], app_client: tuple[Any, TestClient]
) -> None:
    app, c = app_client
    viewer = _h(seeded["viewer"])
    store = app.state.backend.store
    before = store.read(lambda u: u.list_audit(_all_events(), 100_000, 0))
    refused = 0
    for method, template in _routes(app):
        if method in ("GET", "HEAD") or (method, template) in READS_BY_POST:
            continue
        path = _concrete(template, seeded)
        for variant in _variants(path):
            for body in (b"{}", b'{"name": "n", "value": "v", "version": 1, "to": "approved"}'):
                r = c.request(
                    method,
                    variant,
                    content=body,
                    headers={**viewer, "Content-Type": "application/json"},
                )
                assert r.status_code in (400, 403, 404, 405, 413, 422), (
                    method,
                    variant,
                    r.text[:200],
                )
                refused += 1
    assert refused > 300
    after = store.read(lambda u: u.list_audit(_all_events(), 100_000, 0))
    new = [e for e in after[len(before) :] if e.action != "token.use"]
    assert new == []
    # And the canonical form of each mutation the viewer could name is a 403 for the role.
    r = c.patch(
        f"{API}/experiments/{seeded['experiment_id']}", json={"name": "renamed"}, headers=viewer
    )
    assert r.status_code == 403 and "experiment:write" in r.json()["error"]["message"]


def _all_events() -> Any:
    from dockyard.core.entities import AuditQuery

    return AuditQuery()


def test_first_start_prints_a_generated_admin_token_once(
    auth_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DOCKYARD_ADMIN_TOKEN", raising=False)
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(auth_settings)) as c:
        err = capsys.readouterr().err
        secrets = re.findall(r"dy_[A-Za-z0-9_-]{40,}", err)
        assert len(secrets) == 1
        assert secrets[0] not in caplog.text
        assert "auth on" in caplog.text
        assert c.get(f"{API}/experiments", headers=_h(secrets[0])).status_code == 200
    with TestClient(create_app(auth_settings)):
        assert "dy_" not in capsys.readouterr().err  # an admin exists: nothing new printed


def test_auth_off_acts_as_anonymous_with_every_permission(tmp_path: Path) -> None:
    settings = load_settings(overrides={"home": str(tmp_path), "auth": "off"}, environ={})
    with TestClient(create_app(settings, bind_host="0.0.0.0")) as c:
        assert c.post(f"{API}/experiments", json={"name": "e"}).status_code == 201
        events = c.get(f"{API}/audit").json()["items"]
        assert events[-1]["actor"] == "anonymous"
