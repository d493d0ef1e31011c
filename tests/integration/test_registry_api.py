"""The registry's REST API through the in-process client: every route, happy paths and mistakes.

Each test gets a fresh store (SQLite and PostgreSQL through the ``db_url`` fixture) and talks to
``create_app(settings)`` through Starlette's TestClient. A small scikit-learn model is saved as a
package once per module and logged into a run through the artifact upload route, so versions are
registered from ``runs:/<run_id>/model`` exactly as a user's would be.
"""

from __future__ import annotations

import hashlib
import inspect
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from starlette.exceptions import StarletteDeprecationWarning

from dockyard.core.config import Settings, load_settings
from dockyard.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"


# -- fixtures ------------------------------------------------------------------------------------


def _data(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return x.assign(label=(x["a"] + x["b"] > 0).astype(int))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two packages: a good model and a constant (worse) one, same signature."""
    from dockyard.registry.packaging import save_model

    root = tmp_path_factory.mktemp("packages")
    data = _data()
    x, y = data[["a", "b"]], data["label"]
    good = LogisticRegression().fit(x, y)
    bad = DummyClassifier(strategy="most_frequent").fit(x, y)
    save_model(good, root / "good", input_example=x.head())
    save_model(bad, root / "bad", input_example=x.head())
    return {"good": root / "good", "bad": root / "bad"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _log_package(client: TestClient, folder: Path, run_id: str | None = None) -> str:
    """Start a run (unless given) and upload the package under ``model/``; returns the run id."""
    if run_id is None:
        r = client.post(f"{API}/runs", json={"name": "train"})
        assert r.status_code == 201, r.text
        run_id = str(r.json()["run_id"])
        client.post(f"{API}/runs/{run_id}/batch", json={"params": {"C": 1}, "metrics": []})
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            rel = f.relative_to(folder).as_posix()
            r = client.put(f"{API}/runs/{run_id}/artifacts/model/{rel}", content=f.read_bytes())
            assert r.status_code == 201, r.text
    return run_id


def _register(client: TestClient, name: str, folder: Path) -> dict[str, Any]:
    run_id = _log_package(client, folder)
    r = client.post(f"{API}/models/{name}/versions", json={"source": f"runs:/{run_id}/model"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _holdout(n: int = 120) -> dict[str, Any]:
    return {"columns": _data(n, seed=1).to_dict(orient="list")}


def _validate(client: TestClient, name: str, version: int, **body: Any) -> Any:
    payload = {"data": _holdout(), "label": "label", "requirements": ["accuracy>=0.8"], **body}
    return client.post(f"{API}/models/{name}/versions/{version}/validate", json=payload)


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    return err  # type: ignore[no-any-return]


def _snapshot(client: TestClient) -> tuple[Any, ...]:
    """What a refused request must leave unchanged: models, versions, the audit trail."""
    models = client.get(f"{API}/models").json()["items"]
    versions = [client.get(f"{API}/models/{m['name']}/versions").json()["items"] for m in models]
    audit = client.get(f"{API}/audit", params={"max_results": 10000}).json()["items"]
    return models, versions, len(audit)


# -- registered models ---------------------------------------------------------------------------


def test_registered_model_create_get_update_tag_and_list_pages(client: TestClient) -> None:
    r = client.post(f"{API}/models", json={"name": "fraud", "description": "d", "tags": {"t": 1}})
    assert r.status_code == 201, r.text
    model = r.json()
    assert (model["name"], model["owner"], model["tags"]) == ("fraud", "anonymous", {"t": "1"})
    assert model["latest_version"] is None and model["aliases"] == {}

    assert client.get(f"{API}/models/fraud").json() == model
    patched = client.patch(f"{API}/models/fraud", json={"description": "new"})
    assert patched.status_code == 200 and patched.json()["description"] == "new"
    tagged = client.put(f"{API}/models/fraud/tags/team/risk", json={"value": "ops"})
    assert tagged.status_code == 204 and tagged.content == b""
    assert client.get(f"{API}/models/fraud").json()["tags"] == {"t": "1", "team/risk": "ops"}

    for name in ("b-model", "c model"):
        assert client.post(f"{API}/models", json={"name": name}).status_code == 201
    first = client.get(f"{API}/models", params={"max_results": 2}).json()
    assert [m["name"] for m in first["items"]] == ["b-model", "c model"]
    assert first["next_page_token"]
    rest = client.get(
        f"{API}/models", params={"max_results": 2, "page_token": first["next_page_token"]}
    ).json()
    assert [m["name"] for m in rest["items"]] == ["fraud"]
    assert rest["next_page_token"] is None
    assert client.get(f"{API}/models/c%20model").json()["name"] == "c model"


def test_a_model_called_resolve_is_still_reachable(client: TestClient) -> None:
    assert client.post(f"{API}/models", json={"name": "resolve"}).status_code == 201
    assert client.get(f"{API}/models/resolve").json()["name"] == "resolve"


# -- versions, files, lifecycle, aliases, lineage ------------------------------------------------


def test_version_from_a_run_records_files_lineage_and_serves_its_files(
    client: TestClient, packages: dict[str, Path]
) -> None:
    mv = _register(client, "fraud", packages["good"])
    assert (mv["name"], mv["version"], mv["status"], mv["flavor"]) == (
        "fraud",
        1,
        "candidate",
        "sklearn",
    )
    assert mv["source"].startswith("runs:/") and mv["run_id"]
    assert "manifest.json" in mv["files"] and mv["trusted_pickle"] is False
    assert client.get(f"{API}/models/fraud/versions/1").json() == mv
    assert client.get(f"{API}/models/fraud").json()["latest_version"] == 1

    files = client.get(f"{API}/models/fraud/versions/1/files").json()
    assert [f["path"] for f in files["items"]] == sorted(mv["files"])
    for entry in files["items"]:
        r = client.get(f"{API}/models/fraud/versions/1/files/{entry['path']}")
        assert r.status_code == 200
        assert r.headers["x-dockyard-digest"] == entry["sha256"]
        assert hashlib.sha256(r.content).hexdigest() == entry["sha256"]
        assert r.content == (packages["good"] / entry["path"]).read_bytes()

    graph = client.get(f"{API}/models/fraud/versions/1/lineage").json()
    kinds = {n["kind"] for n in graph["nodes"]}
    assert {"model_version", "run", "experiment"} <= kinds
    assert graph["edges"]

    history = client.get(f"{API}/models/fraud/versions/1/status-history").json()
    assert [e["to_status"] for e in history["items"]] == ["candidate"]

    patched = client.patch(f"{API}/models/fraud/versions/1", json={"description": "v1"})
    assert patched.status_code == 200 and patched.json()["description"] == "v1"
    tagged = client.put(f"{API}/models/fraud/versions/1/tags/k", json={"value": True})
    assert tagged.status_code == 204
    assert client.get(f"{API}/models/fraud/versions/1").json()["tags"] == {"k": "True"}


def test_lifecycle_gate_aliases_resolve_and_retire(
    client: TestClient, packages: dict[str, Path]
) -> None:
    _register(client, "fraud", packages["good"])
    # A copy of version 1 is version 2 with the same package.
    copy = client.post(f"{API}/models/fraud/versions", json={"source": "models:/fraud/1"})
    assert copy.status_code == 201, copy.text
    assert copy.json()["version"] == 2
    _register(client, "fraud", packages["bad"])  # version 3: a worse model

    # Moving to approved needs a passed gate.
    blocked = client.post(f"{API}/models/fraud/versions/1/transition", json={"to": "approved"})
    assert blocked.status_code == 409, blocked.text
    verdict = _validate(client, "fraud", 1)
    assert verdict.status_code == 201, verdict.text
    assert verdict.json()["passed"] is True and verdict.json()["against_version"] is None
    assert verdict.json()["num_rows"] == 120
    listed = client.get(f"{API}/models/fraud/versions/1/validations").json()["items"]
    assert [v["id"] for v in listed] == [verdict.json()["id"]]
    approved = client.post(
        f"{API}/models/fraud/versions/1/transition", json={"to": "approved", "reason": "ok"}
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["validation"]["passed"] is True

    alias = client.put(f"{API}/models/fraud/aliases/champion", json={"version": 1})
    assert alias.status_code == 200 and alias.json()["aliases"] == ["champion"]
    assert client.get(f"{API}/models/fraud").json()["aliases"] == {"champion": 1}

    # Gate against the champion: the constant model is worse.
    records = _data(60, seed=2).to_dict(orient="records")
    worse = _validate(
        client,
        "fraud",
        3,
        data={"records": records},
        requirements=["accuracy>=champion-0.01"],
    )
    assert worse.status_code == 201, worse.text
    body = worse.json()
    assert body["passed"] is False and body["against_version"] == 1
    assert body["checks"][0]["champion"] > body["checks"][0]["candidate"]

    for uri, version in (
        ("models:/fraud@champion", 1),
        ("models:/fraud/2", 2),
        ("fraud/3", 3),
        ("models:/fraud/approved", 1),
        ("models:/fraud/latest", 3),
    ):
        r = client.get(f"{API}/models/resolve", params={"uri": uri})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == version, uri

    moved = client.put(f"{API}/models/fraud/aliases/champion", json={"version": 2})
    assert moved.status_code == 200
    history = client.get(f"{API}/models/fraud/aliases/history").json()["items"]
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, 1), (1, 2)]
    only = client.get(f"{API}/models/fraud/aliases/history", params={"alias": "other"}).json()
    assert only["items"] == []
    assert client.delete(f"{API}/models/fraud/aliases/champion").status_code == 204
    assert client.get(f"{API}/models/fraud").json()["aliases"] == {}

    # Overriding the gate needs a reason; with one it is allowed.
    no_reason = client.post(
        f"{API}/models/fraud/versions/3/transition", json={"to": "approved", "override_gate": True}
    )
    _error(no_reason, 422, "invalid_input")
    override = client.post(
        f"{API}/models/fraud/versions/3/transition",
        json={"to": "approved", "override_gate": True, "reason": "accepted risk"},
    )
    assert override.status_code == 200 and override.json()["status"] == "approved"

    retired = client.post(
        f"{API}/models/fraud/versions/3/retire",
        json={"reason": "worse than v1", "replacement_version": 1},
    )
    assert retired.status_code == 200, retired.text
    assert (retired.json()["status"], retired.json()["replacement_version"]) == ("retired", 1)
    statuses = client.get(f"{API}/models/fraud/versions/3/status-history").json()["items"]
    assert [e["to_status"] for e in statuses] == ["candidate", "approved", "retired"]

    listed = client.get(f"{API}/models/fraud/versions", params={"status": "candidate"}).json()
    assert [v["version"] for v in listed["items"]] == [2]
    both = client.get(
        f"{API}/models/fraud/versions", params=[("status", "approved"), ("status", "retired")]
    ).json()
    assert [v["version"] for v in both["items"]] == [1, 3]
    paged = client.get(f"{API}/models/fraud/versions", params={"max_results": 2}).json()
    assert [v["version"] for v in paged["items"]] == [1, 2] and paged["next_page_token"]


def test_local_package_upload_through_blobs(client: TestClient, packages: dict[str, Path]) -> None:
    folder = packages["good"]
    files: dict[str, dict[str, Any]] = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            r = client.post(f"{API}/blobs", content=f.read_bytes())
            assert r.status_code == 201, r.text
            body = r.json()
            assert body == {
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                "size": len(f.read_bytes()),
            }
            files[f.relative_to(folder).as_posix()] = body
    r = client.post(f"{API}/models/uploaded/versions", json={"files": files})
    assert r.status_code == 201, r.text
    assert r.json()["source"].startswith("package:") and r.json()["run_id"] is None


def test_validate_rebuilds_dtypes_and_accepts_missing_values(
    client: TestClient, packages: dict[str, Path]
) -> None:
    _register(client, "fraud", packages["good"])
    data = _holdout()
    data["dtypes"] = {"a": "float64", "b": "float64", "label": "int64"}
    r = _validate(client, "fraud", 1, data=data, against=None)
    assert r.status_code == 201, r.text


def test_openapi_lists_the_registry_routes(client: TestClient) -> None:
    spec = client.get(f"{API}/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/models",
        "/models/resolve",
        "/models/{name}",
        "/models/{name}/versions/{version}/validate",
        "/models/{name}/aliases/{alias}",
        "/blobs",
    ):
        assert f"{API}{path}" in paths, path


# -- mistakes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc",
        "/etc/passwd",
        "../x",
        "//proc/self/root",
        "http://example.com/model",
        "https://example.com/model",
        "s3://bucket/model",
        "runs:/../x",
        "model",
    ],
)
def test_forbidden_sources_are_refused_and_change_nothing(client: TestClient, source: str) -> None:
    before = _snapshot(client)
    r = client.post(f"{API}/models/fraud/versions", json={"source": source})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("invalid_input", "unsafe_path")
    assert _snapshot(client) == before
    _error(client.get(f"{API}/models/fraud"), 404, "not_found")


def test_illegal_transition_is_409_listing_the_allowed_ones(
    client: TestClient, packages: dict[str, Path]
) -> None:
    _register(client, "fraud", packages["good"])
    before = _snapshot(client)
    err = _error(
        client.post(f"{API}/models/fraud/versions/1/transition", json={"to": "production"}),
        409,
        "conflict",
    )
    assert "approved" in err["message"] and "rejected" in err["message"]
    assert err["details"]["allowed"] == ["approved", "rejected"]
    rejected = client.post(f"{API}/models/fraud/versions/1/transition", json={"to": "rejected"})
    assert rejected.status_code == 200
    after_reject = _snapshot(client)
    err = _error(
        client.post(f"{API}/models/fraud/versions/1/transition", json={"to": "approved"}),
        409,
        "conflict",
    )
    assert err["details"]["allowed"] == []
    _error(client.put(f"{API}/models/fraud/aliases/champion", json={"version": 1}), 409, "conflict")
    assert _snapshot(client) == after_reject
    assert before != after_reject


def test_unknown_model_version_and_alias_are_404(
    client: TestClient, packages: dict[str, Path]
) -> None:
    _error(client.get(f"{API}/models/nope"), 404, "not_found")
    _error(client.get(f"{API}/models/nope/versions"), 404, "not_found")
    _error(client.patch(f"{API}/models/nope", json={"description": "x"}), 404, "not_found")
    _register(client, "fraud", packages["good"])
    before = _snapshot(client)
    _error(client.get(f"{API}/models/fraud/versions/9"), 404, "not_found")
    _error(client.get(f"{API}/models/fraud/versions/9/lineage"), 404, "not_found")
    _error(client.get(f"{API}/models/fraud/versions/9/files"), 404, "not_found")
    _error(client.get(f"{API}/models/fraud/versions/1/files/nope.bin"), 404, "not_found")
    _error(client.get(f"{API}/models/fraud/versions/1/files/%2e%2e/x"), 404, "not_found")
    _error(client.get(f"{API}/models/fraud/versions/9/status-history"), 404, "not_found")
    _error(
        client.post(f"{API}/models/fraud/versions/9/transition", json={"to": "approved"}),
        404,
        "not_found",
    )
    _error(client.delete(f"{API}/models/fraud/aliases/champion"), 404, "not_found")
    _error(
        client.get(f"{API}/models/resolve", params={"uri": "models:/fraud@champion"}),
        404,
        "not_found",
    )
    _error(client.get(f"{API}/models/resolve", params={"uri": "models:/ghost/1"}), 404, "not_found")
    _error(client.put(f"{API}/models/fraud/aliases/x", json={"version": 9}), 404, "not_found")
    _error(
        client.post(
            f"{API}/models/fraud/versions/1/retire", json={"reason": "r", "replacement_version": 9}
        ),
        404,
        "not_found",
    )
    _error(_validate(client, "fraud", 9), 404, "not_found")
    assert _snapshot(client) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/models", {"name": 3}),
        ("POST", "/models", {"name": "m", "tags": ["a"]}),
        ("POST", "/models", {"name": "m", "nmae": "typo"}),
        ("POST", "/models", {"name": "a/b"}),
        ("POST", "/models", {"name": "a@b"}),
        ("POST", "/models", {"name": ""}),
        ("POST", "/models/fraud/versions", {}),
        ("POST", "/models/fraud/versions", {"source": 5}),
        ("POST", "/models/fraud/versions", {"source": "models:/fraud/1", "files": {}}),
        ("POST", "/models/fraud/versions", {"files": {"manifest.json": ["x", 1]}}),
        ("POST", "/models/fraud/versions", {"files": {"m": {"sha256": "zz", "size": 1}}}),
        ("POST", "/models/fraud/versions", {"files": {"../m": {"sha256": "0" * 64, "size": 1}}}),
        ("PUT", "/models/fraud/aliases/champion", {"version": "1"}),
        ("PUT", "/models/fraud/aliases/champion", {"version": True}),
        ("PUT", "/models/fraud/aliases/champion", {"version": 0}),
        ("PUT", "/models/fraud/aliases/Bad!", {"version": 1}),
        ("PUT", "/models/fraud/aliases/production", {"version": 1}),
        ("PUT", "/models/fraud/aliases/123", {"version": 1}),
        ("POST", "/models/fraud/versions/1/transition", {"to": 5}),
        ("POST", "/models/fraud/versions/1/transition", {"to": "shipped"}),
        ("POST", "/models/fraud/versions/1/transition", {"to": "approved", "override_gate": 1}),
        ("POST", "/models/fraud/versions/1/retire", {}),
        ("POST", "/models/fraud/versions/1/retire", {"reason": "  "}),
        ("POST", "/models/fraud/versions/1/retire", {"reason": "r", "replacement_version": 1}),
        ("POST", "/models/fraud/versions/abc/transition", {"to": "approved"}),
        ("POST", "/models/fraud/versions/0/transition", {"to": "approved"}),
        ("POST", "/models/fraud/versions/99999999999999999999/transition", {"to": "approved"}),
        ("GET", "/models/fraud/versions/-1", None),
        ("GET", "/models?max_results=0", None),
        ("GET", "/models?max_results=abc", None),
        ("GET", "/models?page_token=garbage", None),
        ("GET", "/models/fraud/versions?status=shipped", None),
        ("GET", "/models/resolve?uri=file:///etc/passwd", None),
        ("GET", "/models/resolve?uri=models:/fraud", None),
        ("GET", "/models/resolve?uri=fraud%40", None),
        ("GET", "/models/fraud/aliases/history?alias=BAD", None),
        ("PUT", "/models/fraud/tags/bad%20key!", {"value": "v"}),
        ("PUT", "/models/fraud/tags/k", {"value": None}),
        ("PATCH", "/models/fraud", {"description": 5}),
    ],
)
def test_wrong_types_and_values_are_422_and_change_nothing(
    client: TestClient,
    packages: dict[str, Path],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    _register(client, "fraud", packages["good"])
    before = _snapshot(client)
    r = client.request(method, f"{API}{path}", json=body)
    _error(r, 422, r.json()["error"]["code"])
    assert r.json()["error"]["code"] in ("invalid_input", "unsafe_path")
    assert _snapshot(client) == before


@pytest.mark.parametrize(
    "data",
    [
        {"columns": {"a": [1.0]}, "records": [{"a": 1.0}]},
        {},
        {"columns": {"a": [1.0, 2.0], "label": [1]}},
        {"columns": {"a": [[1.0]], "label": [1]}},
        {"columns": {"a": [1.0], "label": [1]}, "dtypes": {"a": "S1000000000"}},
        {"columns": {"a": [1.0], "label": [1]}, "dtypes": {"zz": "float64"}},
        {"columns": {"a": ["x"], "label": [1]}, "dtypes": {"a": "int64"}},
        {"columns": {"a": [1.0], "b": [1.0]}},
        {"columns": {"a": [], "b": [], "label": []}},
        {"path": "/etc/passwd"},
        "/etc/passwd",
    ],
)
def test_bad_validation_data_is_422_and_stores_no_verdict(
    client: TestClient, packages: dict[str, Path], data: Any
) -> None:
    _register(client, "fraud", packages["good"])
    before = _snapshot(client)
    r = _validate(client, "fraud", 1, data=data)
    _error(r, 422, "invalid_input")
    assert client.get(f"{API}/models/fraud/versions/1/validations").json()["items"] == []
    assert _snapshot(client) == before


def test_validate_mistakes_in_the_request(client: TestClient, packages: dict[str, Path]) -> None:
    _register(client, "fraud", packages["good"])
    before = _snapshot(client)
    _error(_validate(client, "fraud", 1, requirements=["bogus>=1"]), 422, "invalid_input")
    _error(_validate(client, "fraud", 1, requirements=["accuracy>>1"]), 422, "invalid_input")
    _error(_validate(client, "fraud", 1, label="nope"), 422, "invalid_input")
    _error(_validate(client, "fraud", 1, against="Bad!"), 422, "invalid_input")
    err = _error(_validate(client, "fraud", 1, trust_pickle=True), 403, "permission_denied")
    assert "pickle" in err["message"]
    assert _snapshot(client) == before


def test_malformed_json_and_unknown_routes_use_the_envelope(client: TestClient) -> None:
    before = _snapshot(client)
    r = client.post(
        f"{API}/models", content=b'{"name": "x"', headers={"Content-Type": "application/json"}
    )
    err = _error(r, 422, "invalid_input")
    assert "not valid JSON" in err["message"]
    _error(client.post(f"{API}/models", content=b"[1, 2]"), 422, "invalid_input")
    _error(client.get(f"{API}/models/fraud/versions/1/nothing"), 404, "not_found")
    _error(client.delete(f"{API}/models/fraud"), 405, "method_not_allowed")
    assert _snapshot(client) == before


def test_body_limits_apply_to_json_and_blob_uploads(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"home": str(tmp_path), "max_body_bytes": 2000, "max_artifact_bytes": 5000},
        environ={},
    )
    with TestClient(create_app(settings)) as c:
        big = {"columns": {"a": [1.5] * 2000, "label": [1] * 2000}}
        r = c.post(
            f"{API}/models/fraud/versions/1/validate",
            json={"data": big, "label": "label"},
        )
        _error(r, 413, "payload_too_large")
        _error(c.post(f"{API}/blobs", content=b"x" * 5001), 413, "payload_too_large")
        ok = c.post(f"{API}/blobs", content=b"x" * 5000)
        assert ok.status_code == 201
        assert ok.json()["size"] == 5000


def test_blob_upload_never_registers_anything_by_itself(client: TestClient) -> None:
    before = _snapshot(client)
    r = client.post(f"{API}/blobs", content=b"hello")
    assert r.status_code == 201
    assert r.json() == {"sha256": hashlib.sha256(b"hello").hexdigest(), "size": 5}
    assert _snapshot(client) == before
    # Registering blobs that are not a package is refused.
    files = {"manifest.json": r.json()}
    _error(client.post(f"{API}/models/m/versions", json={"files": files}), 422, "invalid_input")


def test_unregistered_files_are_refused_naming_them(
    client: TestClient, packages: dict[str, Path]
) -> None:
    folder = packages["good"]
    manifest = (folder / "manifest.json").read_bytes()
    r = client.post(f"{API}/blobs", content=manifest)
    files = {"manifest.json": r.json()}  # the model file was never uploaded
    before = _snapshot(client)
    r = client.post(f"{API}/models/m/versions", json={"files": files})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input", r.text
    assert "input_example.json" in r.json()["error"]["message"]
    assert _snapshot(client) == before


# -- the SDK side ----------------------------------------------------------------------------------


def test_rest_registry_service_has_the_service_methods_and_signatures() -> None:
    """Same public methods (plus ``close`` and ``upload_blob``), same signatures."""
    from dockyard.client.rest_registry import RestRegistryService
    from dockyard.registry.service import RegistryService

    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    assert public(RestRegistryService) - {"upload_blob"} == public(RegistryService)
    for name in sorted(public(RegistryService)):
        local_sig = inspect.signature(getattr(RegistryService, name))
        remote_sig = inspect.signature(getattr(RestRegistryService, name))
        assert str(remote_sig) == str(local_sig), name


def test_tracking_and_registry_method_names_never_clash() -> None:
    """``Client`` falls back from the tracking service to the registry by name."""
    from dockyard.client.rest import RestTrackingService
    from dockyard.client.rest_registry import RestRegistryService
    from dockyard.registry.service import RegistryService
    from dockyard.tracking.service import TrackingService

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    assert public(TrackingService) & public(RegistryService) == set()
    assert public(RestTrackingService) & public(RestRegistryService) == {"close"}


def test_client_exposes_tracking_and_registry_in_local_mode(
    home: Path, packages: dict[str, Path]
) -> None:
    from dockyard.client.client import Client

    client = Client()
    run = client.start_run(name="r")
    client.log_artifacts(run.run_id, packages["good"], "model")
    mv = client.create_model_version("fraud", f"runs:/{run.run_id}/model")
    assert client.set_alias("fraud", "champion", mv.version).aliases == ["champion"]
    assert client.resolve("fraud@champion") == client.get_model_version("fraud", 1)
    assert client.registry.get_registered_model("fraud").aliases == {"champion": 1}
    uploaded = client.register_package("uploaded", packages["good"])
    assert uploaded.source.startswith("package:")
    assert uploaded.package_digest == mv.package_digest
    with pytest.raises(AttributeError, match="no_such_method"):
        client.no_such_method  # noqa: B018
