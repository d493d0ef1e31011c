"""The REST API under mistakes and hostile input: always a 4xx envelope, never a 500, and
nothing written.

Every case runs against one seeded store per backend (SQLite, and PostgreSQL when it answers)
and checks three things:

* the status is the expected 4xx and the body is exactly ``{"error": {"code", "message",
  "details"}}`` with the expected code and a non-empty message;
* never a 500 (an unexpected exception would also surface: the catch-all logs it);
* the store is unchanged: experiments, runs (with params, metrics, tags, inputs), artifact
  records, stored blobs, temporary files and the number of audit events are the same before and
  after.

Artifact paths are also sent as raw request targets straight to the ASGI app (decoded once, as
uvicorn does), because HTTP clients normalise ``..`` out of URLs before sending them.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from _asgi import send_raw
from dockyard.core.config import load_settings
from dockyard.governance.audit import Actor
from dockyard.server.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; the httpx fallback behaves the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"
MAX_BODY = 64 * 1024
MAX_ARTIFACT = 4096
MISSING_RUN = "f" * 32


class Api:
    """The seeded app: a client, the ids it holds, and a snapshot of everything stored."""

    def __init__(self, client: TestClient, artifact_root: Path) -> None:
        self.client = client
        self.app: Any = client.app
        self.artifact_root = artifact_root
        self.ids: dict[str, str] = {}

    def fmt(self, text: str) -> str:
        return text.format(**self.ids, missing=MISSING_RUN)

    def fill(self, value: Any) -> Any:
        """``value`` with the seeded ids put into every string placeholder."""
        if isinstance(value, str):
            return self.fmt(value)
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value

    def snapshot(self) -> str:
        backend = self.app.state.backend
        svc = backend.tracking(Actor("snapshot"))
        exps = [e.to_dict() for e in svc.list_experiments(stage="all").items]
        runs = [r.to_dict() for r in svc.search_runs(stage="all", max_results=1000).items]
        artifacts = {
            r["run_id"]: backend.store.read(lambda u, rid=r["run_id"]: u.list_artifacts(rid, ""))
            for r in runs
        }
        blobs = sorted(backend.artifacts.iter_digests())
        tmp = self.artifact_root / "tmp"
        temps = sorted(os.listdir(tmp)) if tmp.is_dir() else []
        audit = len(svc.list_audit_events(limit=50_000))
        # JSON text, so NaN metric values compare equal to themselves.
        return json.dumps([exps, runs, artifacts, blobs, temps, audit], sort_keys=True)


def _seed(api: Api) -> None:
    c = api.client
    exp = c.post(f"{API}/experiments", json={"name": "seeded"}).json()
    c.post(f"{API}/experiments", json={"name": "other"})
    gone = c.post(f"{API}/experiments", json={"name": "gone"}).json()
    c.post(f"{API}/experiments/{gone['experiment_id']}/delete")
    run = c.post(f"{API}/runs", json={"experiment_id": exp["experiment_id"]}).json()
    rid = run["run_id"]
    c.post(
        f"{API}/runs/{rid}/batch",
        json={
            "metrics": [{"key": "loss", "value": 0.5}, {"key": "odd", "value": "NaN"}],
            "params": {"lr": "0.1"},
            "tags": {"t": "1"},
        },
    )
    c.put(f"{API}/runs/{rid}/artifacts/dir/file.txt", content=b"hello")
    done = c.post(f"{API}/runs", json={"experiment_id": exp["experiment_id"]}).json()
    c.post(f"{API}/runs/{done['run_id']}/end")
    dead = c.post(f"{API}/runs", json={"experiment_id": exp["experiment_id"]}).json()
    c.post(f"{API}/runs/{dead['run_id']}/delete")
    api.ids.update(
        exp=exp["experiment_id"],
        gone=gone["experiment_id"],
        run=rid,
        done=done["run_id"],
        dead=dead["run_id"],
    )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    overrides: dict[str, Any] = {
        "home": str(home),
        "max_body_bytes": MAX_BODY,
        "max_artifact_bytes": MAX_ARTIFACT,
    }
    schema = None
    if request.param == "postgresql":
        from conftest import make_pg_schema  # the shared PostgreSQL helper (skips if absent)

        overrides["db_url"], schema = make_pg_schema()
    settings = load_settings(overrides=overrides, environ={})
    try:
        with TestClient(create_app(settings)) as client:
            api = Api(client, Path(settings.resolved_artifact_root))
            _seed(api)
            yield api
    finally:
        if schema is not None:
            from conftest import drop_pg_schema

            drop_pg_schema(schema)


def assert_error(status: int, body: Any, expected_status: int, expected_code: str) -> None:
    assert status != 500, body
    assert (status, body.get("error", {}).get("code")) == (expected_status, expected_code), body
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"].strip()
    assert isinstance(error["details"], dict)


def check(api: Api, method: str, url: str, status: int, code: str, **kwargs: Any) -> None:
    """Send one request; assert the error envelope and that nothing changed."""
    before = api.snapshot()
    r = api.client.request(method, api.fmt(url), **kwargs)
    assert_error(r.status_code, r.json(), status, code)
    assert api.snapshot() == before, f"{method} {url} changed the store"


# -- malformed bodies, on every route that takes one ---------------------------------------------

BODY_ROUTES = [
    ("POST", "/experiments"),
    ("POST", "/experiments/get-or-create"),
    ("PATCH", "/experiments/{exp}"),
    ("POST", "/experiments/{exp}/tags"),
    ("POST", "/runs"),
    ("POST", "/runs/search"),
    ("PATCH", "/runs/{run}"),
    ("POST", "/runs/{run}/end"),
    ("POST", "/runs/{run}/batch"),
    ("POST", "/runs/{run}/inputs"),
]
# Routes whose body has a required field, so that "{}" is a mistake there.
REQUIRED_FIELDS = {
    "/experiments",
    "/experiments/get-or-create",
    "/experiments/{exp}",
    "/experiments/{exp}/tags",
    "/runs/{run}",
    "/runs/{run}/inputs",
}
MALFORMED = {
    "truncated": b'{"name": "x"',
    "not_json": b"{bad json",
    "array": b"[1, 2]",
    "string": b'"text"',
    "number": b"42",
    "trailing_garbage": b'{"name": "x"} extra',
    "bad_utf8": b'{"name": "\xff\xfe"}',
}


@pytest.mark.parametrize(("method", "route"), BODY_ROUTES)
@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_json_is_422(api: Api, method: str, route: str, kind: str) -> None:
    check(
        api,
        method,
        API + route,
        422,
        "invalid_input",
        content=MALFORMED[kind],
        headers={"Content-Type": "application/json"},
    )


# Ending a run takes no body: both of its fields have defaults.
@pytest.mark.parametrize(("method", "route"), [r for r in BODY_ROUTES if r[1] != "/runs/{run}/end"])
def test_missing_or_empty_body_is_422_where_fields_are_required(
    api: Api, method: str, route: str
) -> None:
    check(
        api, method, API + route, 422, "invalid_input", headers={"Content-Type": "application/json"}
    )
    if route in REQUIRED_FIELDS:
        check(api, method, API + route, 422, "invalid_input", json={})


@pytest.mark.parametrize(("method", "route"), BODY_ROUTES)
def test_json_sent_as_text_plain_is_422(api: Api, method: str, route: str) -> None:
    check(
        api,
        method,
        API + route,
        422,
        "invalid_input",
        content=b'{"name": "x"}',
        headers={"Content-Type": "text/plain"},
    )


@pytest.mark.parametrize(("method", "route"), BODY_ROUTES)
def test_oversized_body_is_413_by_content_length(api: Api, method: str, route: str) -> None:
    body = b'{"name": "' + b"x" * MAX_BODY + b'"}'
    check(
        api,
        method,
        API + route,
        413,
        "payload_too_large",
        content=body,
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(("method", "route"), BODY_ROUTES)
def test_oversized_chunked_body_is_413(api: Api, method: str, route: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they come
        yield b'{"name": "'
        for _ in range(8):
            yield b"x" * (MAX_BODY // 4)
        yield b'"}'

    check(
        api,
        method,
        API + route,
        413,
        "payload_too_large",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )


# -- wrong types and values, route by route ------------------------------------------------------

LONG = "x" * 7000
CASES: list[tuple[str, str, Any, int, str]] = [
    # experiments
    ("POST", "/experiments", {"name": 5}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": ""}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "x" * 300}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "a\u0000b"}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "x", "tags": ["a"]}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "x", "tags": {"a": None}}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "x", "tags": {"a": {"b": 1}}}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "x", "tags": {"bad key!": "v"}}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "x", "tags": {"k": LONG + LONG}}, 422, "invalid_input"),
    ("POST", "/experiments", {"nmae": "typo"}, 422, "invalid_input"),
    ("POST", "/experiments", {"name": "seeded"}, 409, "already_exists"),
    ("POST", "/experiments/get-or-create", {"name": 1}, 422, "invalid_input"),
    ("POST", "/experiments/get-or-create", {"name": "gone"}, 409, "conflict"),
    ("PATCH", "/experiments/{exp}", {"name": "other"}, 409, "already_exists"),
    ("PATCH", "/experiments/{exp}", {"name": ""}, 422, "invalid_input"),
    ("PATCH", "/experiments/999999", {"name": "new"}, 404, "not_found"),
    ("PATCH", "/experiments/abc", {"name": "new"}, 422, "invalid_input"),
    ("POST", "/experiments/{exp}/tags", {"key": "", "value": "v"}, 422, "invalid_input"),
    ("POST", "/experiments/{exp}/tags", {"key": "k", "value": None}, 422, "invalid_input"),
    ("POST", "/experiments/{exp}/tags", {"key": "k"}, 422, "invalid_input"),
    ("POST", "/experiments/999999/tags", {"key": "k", "value": "v"}, 404, "not_found"),
    # runs
    ("POST", "/runs", {"experiment_id": "999999"}, 404, "not_found"),
    ("POST", "/runs", {"experiment_id": "abc"}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": [1]}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": True}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": "{gone}"}, 409, "conflict"),
    ("POST", "/runs", {"experiment_id": "{exp}", "name": ""}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": "{exp}", "name": 7}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": "{exp}", "parent_run_id": "{missing}"}, 404, "not_found"),
    ("POST", "/runs", {"experiment_id": "{exp}", "parent_run_id": "xyz"}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": "{exp}", "start_time": "now"}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": "{exp}", "start_time": 1.5}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": "{exp}", "start_time": 2**70}, 422, "invalid_input"),
    ("POST", "/runs", {"experiment_id": "{exp}", "tags": {"": "v"}}, 422, "invalid_input"),
    ("PATCH", "/runs/{run}", {"name": ""}, 422, "invalid_input"),
    ("PATCH", "/runs/{run}", {"name": None}, 422, "invalid_input"),
    ("PATCH", "/runs/{dead}", {"name": "x"}, 409, "conflict"),
    ("PATCH", "/runs/{missing}", {"name": "x"}, 404, "not_found"),
    ("PATCH", "/runs/not-a-run-id", {"name": "x"}, 422, "invalid_input"),
    ("POST", "/runs/{run}/end", {"status": "RUNNING"}, 422, "invalid_input"),
    ("POST", "/runs/{run}/end", {"status": "bogus"}, 422, "invalid_input"),
    ("POST", "/runs/{run}/end", {"status": 3}, 422, "invalid_input"),
    ("POST", "/runs/{run}/end", {"end_time": "later"}, 422, "invalid_input"),
    ("POST", "/runs/{run}/end", {"end_time": -(2**64)}, 422, "invalid_input"),
    ("POST", "/runs/{done}/end", {}, 409, "conflict"),
    ("POST", "/runs/{dead}/end", {}, 409, "conflict"),
    ("POST", "/runs/{missing}/end", {}, 404, "not_found"),
    ("POST", "/runs/{run}/batch", {"metrics": {"key": "m"}}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"metrics": [{"value": 1}]}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"metrics": [{"key": "m"}]}, 422, "invalid_input"),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": "abc"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": "nan"}]},
        422,
        "invalid_input",
    ),
    ("POST", "/runs/{run}/batch", {"metrics": [{"key": "m", "value": True}]}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"metrics": [{"key": "m", "value": None}]}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"metrics": [{"key": "m", "value": [1]}]}, 422, "invalid_input"),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": 10**400}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": 1, "step": "1"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": 1, "step": 1.5}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": 1, "step": 2**70}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": 1, "timestamp": "x"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "m", "value": 1, "extra": 1}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "bad key!", "value": 1}]},
        422,
        "invalid_input",
    ),
    ("POST", "/runs/{run}/batch", {"metrics": [{"key": "../m", "value": 1}]}, 422, "invalid_input"),
    # one bad point spoils the batch: nothing of it is written
    (
        "POST",
        "/runs/{run}/batch",
        {"metrics": [{"key": "ok", "value": 1}, {"key": "", "value": 1}]},
        422,
        "invalid_input",
    ),
    ("POST", "/runs/{run}/batch", {"params": {"new": "1", "lr": "0.2"}}, 409, "conflict"),
    ("POST", "/runs/{run}/batch", {"params": {"a": None}}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"params": {"a": [1]}}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"params": {"a": LONG}}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"params": ["a"]}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"tags": {"": "v"}}, 422, "invalid_input"),
    ("POST", "/runs/{run}/batch", {"tags": {"k": {"x": 1}}}, 422, "invalid_input"),
    ("POST", "/runs/{dead}/batch", {"params": {"x": "1"}}, 409, "conflict"),
    ("POST", "/runs/{missing}/batch", {"params": {"x": "1"}}, 404, "not_found"),
    ("POST", "/runs/NOT-HEX/batch", {"params": {"x": "1"}}, 422, "invalid_input"),
    ("POST", "/runs/{run}/inputs", {"inputs": {"name": "d"}}, 422, "invalid_input"),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "d", "context": "c"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "d", "digest": "", "context": "c"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "", "digest": "x", "context": "c"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "d", "digest": "x", "context": "bad ctx!"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "d", "digest": "x", "context": "c", "num_rows": "5"}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "d", "digest": "x", "context": "c", "schema": [1]}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "d", "digest": "x", "context": "c", "source": 5}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{run}/inputs",
        {"inputs": [{"name": "d", "digest": "x", "context": "c", "extra": 1}]},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/runs/{dead}/inputs",
        {"inputs": [{"name": "d", "digest": "x", "context": "c"}]},
        409,
        "conflict",
    ),
    (
        "POST",
        "/runs/{missing}/inputs",
        {"inputs": [{"name": "d", "digest": "x", "context": "c"}]},
        404,
        "not_found",
    ),
    ("POST", "/runs/search", {"filter": "metrics.auc >"}, 422, "invalid_input"),
    ("POST", "/runs/search", {"filter": "params.lr = 5"}, 422, "invalid_input"),
    ("POST", "/runs/search", {"filter": "nonsense.x = 1"}, 422, "invalid_input"),
    ("POST", "/runs/search", {"filter": 5}, 422, "invalid_input"),
    ("POST", "/runs/search", {"order_by": ["metrics.auc SIDEWAYS"]}, 422, "invalid_input"),
    ("POST", "/runs/search", {"order_by": "metrics.auc"}, 422, "invalid_input"),
    ("POST", "/runs/search", {"experiment_ids": ["abc"]}, 422, "invalid_input"),
    ("POST", "/runs/search", {"experiment_ids": "1"}, 422, "invalid_input"),
    ("POST", "/runs/search", {"stage": "bogus"}, 422, "invalid_input"),
    ("POST", "/runs/search", {"max_results": 0}, 422, "invalid_input"),
    ("POST", "/runs/search", {"max_results": "10"}, 422, "invalid_input"),
    ("POST", "/runs/search", {"page_token": "garbage!"}, 422, "invalid_input"),
]


@pytest.mark.parametrize(("method", "route", "body", "status", "code"), CASES)
def test_wrong_body_values_are_refused(
    api: Api, method: str, route: str, body: Any, status: int, code: str
) -> None:
    check(api, method, API + route, status, code, json=api.fill(body))


QUERY_CASES: list[tuple[str, str, int, str]] = [
    ("GET", "/experiments?stage=bogus", 422, "invalid_input"),
    ("GET", "/experiments?max_results=0", 422, "invalid_input"),
    ("GET", "/experiments?max_results=abc", 422, "invalid_input"),
    ("GET", "/experiments?max_results=1000000", 422, "invalid_input"),
    ("GET", "/experiments?page_token=not-a-token", 422, "invalid_input"),
    ("GET", "/experiments/999999", 404, "not_found"),
    ("GET", "/experiments/abc", 422, "invalid_input"),
    ("GET", "/experiments/-1", 422, "invalid_input"),
    ("GET", "/experiments/99999999999999999999999", 422, "invalid_input"),
    ("GET", "/experiments/by-name/nope", 404, "not_found"),
    ("GET", "/experiments/by-name/", 422, "invalid_input"),
    ("GET", "/experiments/by-name/a%00b", 422, "invalid_input"),
    ("GET", "/experiments/resolve/nope", 404, "not_found"),
    ("GET", "/experiments/resolve/999999", 404, "not_found"),
    ("POST", "/experiments/999999/delete", 404, "not_found"),
    ("POST", "/experiments/{gone}/delete", 409, "conflict"),
    ("POST", "/experiments/{exp}/restore", 409, "conflict"),
    ("GET", "/runs/{missing}", 404, "not_found"),
    ("GET", "/runs/xyz", 422, "invalid_input"),
    ("GET", "/runs/{run}%00", 422, "invalid_input"),
    ("POST", "/runs/{missing}/delete", 404, "not_found"),
    ("POST", "/runs/{dead}/delete", 409, "conflict"),
    ("POST", "/runs/{run}/restore", 409, "conflict"),
    ("DELETE", "/runs/{run}/tags/nope", 404, "not_found"),
    ("DELETE", "/runs/{run}/tags/", 422, "invalid_input"),
    ("DELETE", "/runs/{run}/tags/bad%20key%21", 422, "invalid_input"),
    ("DELETE", "/runs/{missing}/tags/t", 404, "not_found"),
    ("DELETE", "/runs/{dead}/tags/t", 409, "conflict"),
    ("GET", "/runs/{missing}/metrics/loss/history", 404, "not_found"),
    ("GET", "/runs/xyz/metrics/loss/history", 422, "invalid_input"),
    ("GET", "/runs/{run}/metrics//history", 422, "invalid_input"),
    ("GET", "/runs/{run}/metrics/bad%21/history", 422, "invalid_input"),
    ("GET", "/runs/{run}/metrics/loss/history?max_results=0", 422, "invalid_input"),
    ("GET", "/runs/{run}/metrics/loss/history?max_results=x", 422, "invalid_input"),
    ("GET", "/runs/{run}/metrics/loss/history?page_token=zzz", 422, "invalid_input"),
    ("GET", "/runs/{missing}/artifacts", 404, "not_found"),
    ("GET", "/runs/xyz/artifacts", 422, "invalid_input"),
    ("GET", "/runs/{run}/artifacts?path=nope", 404, "not_found"),
    ("GET", "/runs/{run}/artifacts/nope.txt", 404, "not_found"),
    ("GET", "/runs/{run}/artifacts/dir", 404, "not_found"),
    ("GET", "/runs/{run}/artifacts/", 422, "unsafe_path"),
    ("GET", "/runs/{missing}/artifacts/dir/file.txt", 404, "not_found"),
    ("GET", "/audit?max_results=0", 422, "invalid_input"),
    ("GET", "/audit?max_results=100001", 422, "invalid_input"),
    ("GET", "/audit?max_results=x", 422, "invalid_input"),
    ("GET", "/audit?offset=-1", 422, "invalid_input"),
    ("GET", "/audit?since=yesterday", 422, "invalid_input"),
    ("GET", "/audit?until=99999999999999999999999", 422, "invalid_input"),
    ("GET", "/audit?actor=a%00b", 422, "invalid_input"),
    ("GET", "/audit?resource_id=" + "x" * 600, 422, "invalid_input"),
    # the router itself
    ("GET", "/nope", 404, "not_found"),
    ("GET", "/runs/", 404, "not_found"),
    ("GET", "/experiments/", 404, "not_found"),
    ("DELETE", "/experiments", 405, "method_not_allowed"),
    ("PUT", "/runs/{run}", 405, "method_not_allowed"),
    ("POST", "/audit", 405, "method_not_allowed"),
    ("DELETE", "/runs/{run}/artifacts/dir/file.txt", 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "url", "status", "code"), QUERY_CASES)
def test_wrong_ids_queries_and_routes_are_refused(
    api: Api, method: str, url: str, status: int, code: str
) -> None:
    check(api, method, API + url, status, code)


def test_unknown_route_outside_the_api_is_404(api: Api) -> None:
    check(api, "GET", "/", 404, "not_found")
    check(api, "POST", "/healthz", 405, "method_not_allowed")


def test_405_lists_every_allowed_method(api: Api) -> None:
    r = api.client.delete(f"{API}/experiments")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"


# -- artifact uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "status", "code"),
    [("{missing}", 404, "not_found"), ("{dead}", 409, "conflict"), ("xyz", 422, "invalid_input")],
)
def test_artifact_upload_to_a_run_that_cannot_take_it(
    api: Api, run: str, status: int, code: str
) -> None:
    check(api, "PUT", f"{API}/runs/{run}/artifacts/new.txt", status, code, content=b"data")


def test_artifact_upload_over_the_limit_is_413(api: Api) -> None:
    url = f"{API}/runs/{{run}}/artifacts/big.bin"
    check(api, "PUT", url, 413, "payload_too_large", content=b"x" * (MAX_ARTIFACT + 1))

    def chunks() -> Iterator[bytes]:  # chunked: refused once the limit is crossed
        for _ in range(4):
            yield b"x" * (MAX_ARTIFACT // 2)

    check(api, "PUT", url, 413, "payload_too_large", content=chunks())


def test_artifact_upload_is_exempt_from_the_json_body_limit(api: Api) -> None:
    """Only max_artifact_bytes applies to uploads; prove it with a limit above max_body."""
    settings = load_settings(
        overrides={
            "home": str(api.artifact_root.parent / "exempt"),
            "max_body_bytes": 100,
            "max_artifact_bytes": 10_000,
        },
        environ={},
    )
    with TestClient(create_app(settings)) as c:
        rid = c.post(f"{API}/runs", json={}).json()["run_id"]
        r = c.put(f"{API}/runs/{rid}/artifacts/f.bin", content=b"x" * 5000)
        assert r.status_code == 201, r.text
        big = c.post(f"{API}/runs/{rid}/batch", json={"params": {"p": "x" * 200}})
        assert_error(big.status_code, big.json(), 413, "payload_too_large")


# -- artifact paths that try to escape -----------------------------------------------------------

#: (the artifact path the attacker means, how it is spelled in the request target)
ESCAPES = [
    ("../x", "../x"),
    ("../../etc/passwd", "../../etc/passwd"),
    ("..%2fx", "..%2fx"),
    ("%2e%2e/x", "%2e%2e/x"),
    ("%252e%252e/x", "%252e%252e/x"),
    ("a\\b", "a\\b"),
    ("a\\b", "a%5Cb"),
    ("..\\x", "..%5Cx"),
    ("/etc/passwd", "/etc/passwd"),
    ("x%00y", "x%00y"),
    ("a//b", "a//b"),
    ("a/./b", "a/./b"),
    ("file:///etc/passwd", "file:///etc/passwd"),
    ("C:/windows", "C:/windows"),
    ("a;b", "a;b"),
    ("a?b", "a%3Fb"),
    ("a#b", "a%23b"),
    ("~/x", "~/x"),
    ("\uff0e\uff0e/x", "%EF%BC%8E%EF%BC%8E/x"),  # fullwidth dots
]


def raw_asgi(app: Any, method: str, target: str, body: bytes = b"") -> tuple[int, Any]:
    """Send ``target`` to the ASGI app byte for byte (:func:`_asgi.send_raw`); the JSON answer."""
    status, _headers, payload = send_raw(app, method, target, body)
    return status, json.loads(payload)


def check_raw(api: Api, method: str, target: str, body: bytes = b"") -> None:
    before = api.snapshot()
    status, payload = raw_asgi(api.app, method, api.fmt(target), body)
    assert_error(status, payload, 422, "unsafe_path")
    assert api.snapshot() == before, f"{method} {target} changed the store"


@pytest.mark.parametrize(("meant", "spelled"), ESCAPES)
def test_artifact_write_refuses_escaping_paths(api: Api, meant: str, spelled: str) -> None:
    check_raw(api, "PUT", f"{API}/runs/{{run}}/artifacts/{spelled}", b"pwned")


@pytest.mark.parametrize(("meant", "spelled"), ESCAPES)
def test_artifact_read_refuses_escaping_paths(api: Api, meant: str, spelled: str) -> None:
    check_raw(api, "GET", f"{API}/runs/{{run}}/artifacts/{spelled}")


@pytest.mark.parametrize(("meant", "spelled"), ESCAPES)
def test_artifact_list_refuses_escaping_paths(api: Api, meant: str, spelled: str) -> None:
    # As a query parameter the client encodes the intended path itself.
    check(
        api,
        "GET",
        f"{API}/runs/{{run}}/artifacts",
        422,
        "unsafe_path",
        params={"path": meant},
    )


@pytest.mark.parametrize(("meant", "spelled"), [e for e in ESCAPES if e[0] != "a/./b"])
def test_artifact_write_refuses_escaping_paths_through_the_http_client(
    api: Api, meant: str, spelled: str
) -> None:
    """The same forms through an ordinary HTTP client (which may normalise '..' away).

    Whatever route the normalised URL then reaches, the answer is a 4xx and nothing is stored.
    (``a/./b`` is left out: normalised, it is the legitimate path ``a/b``.)
    """
    before = api.snapshot()
    r = api.client.put(api.fmt(f"{API}/runs/{{run}}/artifacts/{spelled}"), content=b"pwned")
    assert 400 <= r.status_code < 500, r.text
    assert_error(r.status_code, r.json(), r.status_code, r.json()["error"]["code"])
    assert api.snapshot() == before


# -- strings no database can store: NUL characters, overlong values ---------------------

UNSTORABLE = [
    ("POST", "/runs/{fresh}/batch", {"tags": {"k": "a\u0000b"}}),
    ("POST", "/runs/{fresh}/batch", {"params": {"k": "a\u0000b"}}),
    ("POST", "/runs", {"tags": {"k": "\u0000"}}),
    ("POST", "/experiments/{exp}/tags", {"key": "k", "value": "\u0000"}),
    (
        "POST",
        "/runs/{fresh}/inputs",
        {"inputs": [{"name": "d", "digest": "a\u0000", "context": "c"}]},
    ),
    (
        "POST",
        "/runs/{fresh}/inputs",
        {"inputs": [{"name": "d", "digest": "a", "context": "c", "source": "x" * 5000}]},
    ),
    ("POST", "/runs/search", {"filter": "params.a = 'x\u0000'"}),
]


@pytest.mark.parametrize(("method", "route", "body"), UNSTORABLE)
def test_nul_characters_and_overlong_strings_are_refused_on_every_backend(
    api: Api, method: str, route: str, body: Any
) -> None:
    fresh = api.client.post(f"{API}/runs", json={"experiment_id": api.ids["exp"]}).json()
    api.ids["fresh"] = fresh["run_id"]
    check(api, method, API + route, 422, "invalid_input", json=api.fill(body))
