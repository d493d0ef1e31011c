"""The REST API through the in-process client: every route's happy path.

Each test gets a fresh SQLite store under ``tmp_path`` and talks to ``create_app(settings)``
through Starlette's TestClient (the lifespan runs, so the backend is opened and closed as in a
real server). Mistakes and hostile input are in ``test_api_bad_input.py``.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dockyard.core.config import Settings, load_settings
from dockyard.server.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; the httpx fallback behaves the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    return load_settings(overrides={"home": str(tmp_path)}, environ={})


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as c:
        yield c


def _experiment(client: TestClient, name: str = "exp", **tags: Any) -> dict[str, Any]:
    r = client.post(f"{API}/experiments", json={"name": name, "tags": tags})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _run(client: TestClient, experiment_id: str | None = None, **body: Any) -> dict[str, Any]:
    r = client.post(f"{API}/runs", json={"experiment_id": experiment_id, **body})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# -- meta ----------------------------------------------------------------------------------------


def test_healthz_answers_ok_when_the_store_answers(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_openapi_and_docs_are_served_under_the_api_prefix(client: TestClient) -> None:
    spec = client.get(f"{API}/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert f"{API}/runs/{{run_id}}/batch" in paths
    assert f"{API}/experiments" in paths
    docs = client.get(f"{API}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


# -- experiments ---------------------------------------------------------------------------------


def test_experiment_create_returns_201_with_string_tags(client: TestClient) -> None:
    exp = _experiment(client, "fraud", team="risk", version=2)
    assert exp["name"] == "fraud"
    assert exp["lifecycle_stage"] == "active"
    assert exp["tags"] == {"team": "risk", "version": "2"}
    assert exp["experiment_id"].isdigit()


def test_experiment_get_by_id_name_and_resolve_agree(client: TestClient) -> None:
    exp = _experiment(client, "team/fraud model")
    eid = exp["experiment_id"]
    assert client.get(f"{API}/experiments/{eid}").json() == exp
    # A name with '/' and a space spans segments; URL-encode the rest.
    assert client.get(f"{API}/experiments/by-name/team/fraud%20model").json() == exp
    assert client.get(f"{API}/experiments/resolve/{eid}").json() == exp
    assert client.get(f"{API}/experiments/resolve/team/fraud%20model").json() == exp


def test_experiment_get_or_create_creates_once(client: TestClient) -> None:
    first = client.post(f"{API}/experiments/get-or-create", json={"name": "auto"})
    again = client.post(f"{API}/experiments/get-or-create", json={"name": "auto"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()


def test_experiment_list_pages_with_tokens(client: TestClient) -> None:
    for name in ("a", "b", "c"):
        _experiment(client, name)
    first = client.get(f"{API}/experiments", params={"max_results": 2}).json()
    assert [e["name"] for e in first["items"]] == ["a", "b"]
    assert first["next_page_token"]
    second = client.get(
        f"{API}/experiments", params={"max_results": 2, "page_token": first["next_page_token"]}
    ).json()
    assert [e["name"] for e in second["items"]] == ["c"]
    assert second["next_page_token"] is None


def test_experiment_rename_delete_restore_and_tag(client: TestClient) -> None:
    eid = _experiment(client, "old")["experiment_id"]
    renamed = client.patch(f"{API}/experiments/{eid}", json={"name": "new"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "new"

    deleted = client.post(f"{API}/experiments/{eid}/delete")
    assert deleted.json()["lifecycle_stage"] == "deleted"
    assert client.get(f"{API}/experiments").json()["items"] == []
    listed = client.get(f"{API}/experiments", params={"stage": "deleted"}).json()["items"]
    assert [e["experiment_id"] for e in listed] == [eid]
    restored = client.post(f"{API}/experiments/{eid}/restore")
    assert restored.json()["lifecycle_stage"] == "active"

    tagged = client.post(f"{API}/experiments/{eid}/tags", json={"key": "owner", "value": "ana"})
    assert tagged.status_code == 204
    assert tagged.content == b""
    assert client.get(f"{API}/experiments/{eid}").json()["tags"] == {"owner": "ana"}


# -- runs ----------------------------------------------------------------------------------------


def test_run_start_without_experiment_uses_default(client: TestClient) -> None:
    run = _run(client, name="first", tags={"stage": "dev"}, start_time=1_700_000_000_000)
    assert run["status"] == "RUNNING"
    assert run["user"] == "anonymous"
    assert run["start_time"] == 1_700_000_000_000
    assert run["tags"] == {"stage": "dev"}
    default = client.get(f"{API}/experiments/by-name/Default").json()
    assert run["experiment_id"] == default["experiment_id"]


def test_run_get_rename_end_delete_restore(client: TestClient) -> None:
    eid = _experiment(client)["experiment_id"]
    parent = _run(client, eid)
    run = _run(client, eid, name="child", parent_run_id=parent["run_id"])
    rid = run["run_id"]
    assert run["parent_run_id"] == parent["run_id"]
    assert client.get(f"{API}/runs/{rid}").json() == run

    assert client.patch(f"{API}/runs/{rid}", json={"name": "renamed"}).json()["name"] == "renamed"
    ended = client.post(f"{API}/runs/{rid}/end", json={"status": "failed", "end_time": 42})
    assert ended.status_code == 200
    assert (ended.json()["status"], ended.json()["end_time"]) == ("FAILED", 42)
    # No body at all: FINISHED, now.
    assert client.post(f"{API}/runs/{parent['run_id']}/end").json()["status"] == "FINISHED"

    assert client.post(f"{API}/runs/{rid}/delete").json()["lifecycle_stage"] == "deleted"
    assert client.post(f"{API}/runs/{rid}/restore").json()["lifecycle_stage"] == "active"


def test_run_batch_logs_metrics_params_and_tags_with_non_finite_values(
    client: TestClient,
) -> None:
    rid = _run(client)["run_id"]
    body = {
        "metrics": [
            {"key": "loss", "value": 0.5, "step": 0, "timestamp": 1000},
            {"key": "loss", "value": 0.25, "step": 1, "timestamp": 2000},
            {"key": "weird", "value": "NaN", "step": 0},
            {"key": "grad/norm", "value": "Infinity"},
            {"key": "low", "value": "-Infinity"},
            {"key": "int", "value": 3},
        ],
        "params": {"lr": 0.1, "model": "rf", "depth": 6, "flag": True},
        "tags": {"team": "risk"},
    }
    r = client.post(f"{API}/runs/{rid}/batch", json=body)
    assert r.status_code == 204, r.text
    run = client.get(f"{API}/runs/{rid}")
    assert '"NaN"' in run.text  # standard JSON: the string spelling, never a bare NaN
    got = run.json()
    assert got["params"] == {"depth": "6", "flag": "True", "lr": "0.1", "model": "rf"}
    assert got["tags"] == {"team": "risk"}
    assert got["metrics"] == {
        "grad/norm": "Infinity",
        "int": 3.0,
        "loss": 0.25,
        "low": "-Infinity",
        "weird": "NaN",
    }


def test_metric_history_pages_and_spans_slashes_in_keys(client: TestClient) -> None:
    rid = _run(client)["run_id"]
    points = [{"key": "train/loss", "value": 1.0 / (i + 1), "step": i} for i in range(5)]
    client.post(f"{API}/runs/{rid}/batch", json={"metrics": points})
    url = f"{API}/runs/{rid}/metrics/train/loss/history"
    first = client.get(url, params={"max_results": 3}).json()
    assert [m["step"] for m in first["items"]] == [0, 1, 2]
    rest = client.get(url, params={"page_token": first["next_page_token"], "max_results": 3})
    assert [m["step"] for m in rest.json()["items"]] == [3, 4]
    assert rest.json()["next_page_token"] is None
    assert first["items"][0] == {
        "key": "train/loss",
        "value": 1.0,
        "step": 0,
        "timestamp": first["items"][0]["timestamp"],
    }


def test_run_inputs_and_tag_delete(client: TestClient) -> None:
    rid = _run(client, tags={"a/b": "1", "keep": "2"})["run_id"]
    dataset = {
        "name": "train",
        "digest": "abc123",
        "context": "training",
        "num_rows": 10,
        "schema": {"x": "float"},
        "source": "s3://bucket/train.parquet",
    }
    assert client.post(f"{API}/runs/{rid}/inputs", json={"inputs": [dataset]}).status_code == 204
    assert client.delete(f"{API}/runs/{rid}/tags/a/b").status_code == 204
    run = client.get(f"{API}/runs/{rid}").json()
    assert run["inputs"] == [dataset]
    assert run["tags"] == {"keep": "2"}


def test_run_search_filters_orders_and_pages(client: TestClient) -> None:
    eid = _experiment(client)["experiment_id"]
    for i, auc in enumerate([0.7, 0.9, 0.8]):
        rid = _run(client, eid, name=f"r{i}")["run_id"]
        client.post(
            f"{API}/runs/{rid}/batch",
            json={"metrics": [{"key": "auc", "value": auc}], "params": {"i": i}},
        )
    body = {
        "experiment_ids": [eid],
        "filter": "metrics.auc >= 0.75",
        "order_by": ["metrics.auc DESC"],
        "max_results": 1,
    }
    first = client.post(f"{API}/runs/search", json=body).json()
    assert [r["name"] for r in first["items"]] == ["r1"]
    second = client.post(
        f"{API}/runs/search", json={**body, "page_token": first["next_page_token"]}
    ).json()
    assert [r["name"] for r in second["items"]] == ["r2"]
    assert second["next_page_token"] is None
    # experiment ids may be JSON numbers too
    everything = client.post(f"{API}/runs/search", json={"experiment_ids": [int(eid)]}).json()
    assert len(everything["items"]) == 3


# -- artifacts -----------------------------------------------------------------------------------


def test_artifact_upload_list_and_download(client: TestClient) -> None:
    rid = _run(client)["run_id"]
    data = bytes(range(256)) * 1000
    up = client.put(f"{API}/runs/{rid}/artifacts/model/weights.bin", content=data)
    assert up.status_code == 201, up.text
    digest = hashlib.sha256(data).hexdigest()
    assert up.json() == {"path": "model/weights.bin", "is_dir": False, "size": len(data),
                         "digest": digest}  # fmt: skip
    client.put(f"{API}/runs/{rid}/artifacts/readme.txt", content=b"hi")

    root = client.get(f"{API}/runs/{rid}/artifacts").json()
    assert [(a["path"], a["is_dir"]) for a in root["items"]] == [
        ("model", True),
        ("readme.txt", False),
    ]
    assert root["next_page_token"] is None
    folder = client.get(f"{API}/runs/{rid}/artifacts", params={"path": "model"}).json()
    assert [a["path"] for a in folder["items"]] == ["model/weights.bin"]

    down = client.get(f"{API}/runs/{rid}/artifacts/model/weights.bin")
    assert down.status_code == 200
    assert down.content == data
    assert down.headers["content-length"] == str(len(data))
    assert down.headers["x-dockyard-digest"] == digest
    assert down.headers["content-type"] == "application/octet-stream"
    assert down.headers["content-disposition"] == "attachment"


def test_artifact_upload_streams_a_chunked_body(client: TestClient) -> None:
    rid = _run(client)["run_id"]

    def chunks() -> Iterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 100_000

    up = client.put(f"{API}/runs/{rid}/artifacts/stream.bin", content=chunks())
    assert up.status_code == 201, up.text
    assert up.json()["size"] == 500_000
    assert len(client.get(f"{API}/runs/{rid}/artifacts/stream.bin").content) == 500_000


def test_artifact_download_of_a_corrupted_blob_is_aborted(
    client: TestClient, api_settings: Settings
) -> None:
    rid = _run(client)["run_id"]
    digest = client.put(f"{API}/runs/{rid}/artifacts/f.bin", content=b"a" * 1000).json()["digest"]
    blob = next(Path(api_settings.resolved_artifact_root).rglob(digest))
    blob.chmod(0o600)
    blob.write_bytes(b"b" * 1000)  # same size, different bytes
    # The transfer must not complete as if it were fine: the app raises after the last chunk,
    # which a real server turns into an aborted connection.
    with pytest.raises(Exception) as info:
        client.get(f"{API}/runs/{rid}/artifacts/f.bin")
    chain, exc = [], info.value
    while exc is not None:
        chain.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    assert "IntegrityError" in chain


# -- audit ---------------------------------------------------------------------------------------


def test_audit_lists_events_with_filters_and_offsets(client: TestClient) -> None:
    eid = _experiment(client, "audited")["experiment_id"]
    rid = _run(client, eid)["run_id"]
    client.post(f"{API}/runs/{rid}/end")

    everything = client.get(f"{API}/audit").json()
    actions = [e["action"] for e in everything["items"]]
    assert actions == ["experiment.create", "run.create", "run.end"]
    assert {e["actor"] for e in everything["items"]} == {"anonymous"}
    assert everything["next_page_token"] is None
    assert everything["next_offset"] is None

    ends = client.get(f"{API}/audit", params={"action": "run.end", "resource_id": rid}).json()
    assert [e["details"] for e in ends["items"]] == [{"status": "FINISHED"}]
    page = client.get(f"{API}/audit", params={"max_results": 2}).json()
    assert len(page["items"]) == 2
    assert page["next_offset"] == 2
    rest = client.get(f"{API}/audit", params={"offset": 2}).json()
    assert [e["action"] for e in rest["items"]] == ["run.end"]
    since = everything["items"][-1]["time"]
    assert len(client.get(f"{API}/audit", params={"since": since}).json()["items"]) >= 1
    assert client.get(f"{API}/audit", params={"until": 0}).json()["items"] == []


# -- cross-cutting -------------------------------------------------------------------------------


def test_bearer_token_is_accepted_and_never_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "dy_secret_token_value_1234"
    r = client.post(
        f"{API}/experiments",
        json={"name": "with-token"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201
    assert token not in caplog.text
    assert token not in r.text
    events = client.get(f"{API}/audit").json()["items"]
    assert events[-1]["actor"] == "anonymous"  # tokens are not verified yet


def test_unexpected_error_is_a_generic_500_logged_server_side(
    api_settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dockyard.tracking.service import TrackingService

    def boom(self: TrackingService, experiment_id: str) -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    monkeypatch.setattr(TrackingService, "get_experiment", boom)
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as c:
        r = c.get(f"{API}/experiments/1")
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "internal_error"
    assert "hunter2" not in r.text
    assert error["details"]["error_id"] in error["message"]
    # The traceback is in the server log, with the secret in it scrubbed.
    assert "RuntimeError: secret internal detail: password=***" in caplog.text
    assert "hunter2" not in caplog.text
    assert error["details"]["error_id"] in caplog.text


def test_run_handlers_are_thin_the_same_objects_as_the_service(
    client: TestClient,
) -> None:
    """What the API returns is the service's object, serialised with to_dict."""
    from dockyard.governance.audit import Actor

    rid = _run(client, name="same")["run_id"]
    service = client.app.state.backend.tracking(Actor.anonymous())  # type: ignore[attr-defined]
    assert client.get(f"{API}/runs/{rid}").json() == service.get_run(rid).to_dict()


def test_batch_takes_metric_columns_and_history_answers_in_columns(client: TestClient) -> None:
    run_id = _run(client)["run_id"]
    body = {
        "metrics": [{"key": "auc", "value": 0.5, "step": 0, "timestamp": 1}],
        "metric_columns": {
            "keys": ["loss", "loss", "auc"],
            "values": [0.9, "NaN", 0.7],
            "steps": [0, 1, 1],
            "timestamps": [10, 11, 12],
        },
    }
    assert client.post(f"{API}/runs/{run_id}/batch", json=body).status_code == 204
    r = client.get(f"{API}/runs/{run_id}/metrics/loss/history", params={"layout": "columns"})
    assert r.json() == {
        "key": "loss",
        "steps": [0, 1],
        "timestamps": [10, 11],
        "values": [0.9, "NaN"],
        "next_page_token": None,
    }
    r = client.get(f"{API}/runs/{run_id}/metrics/auc/history")
    assert [(p["step"], p["value"]) for p in r.json()["items"]] == [(0, 0.5), (1, 0.7)]
    empty = client.get(f"{API}/runs/{run_id}/metrics/none/history", params={"layout": "columns"})
    assert empty.json()["steps"] == [] and empty.json()["values"] == []


def test_metric_columns_of_different_lengths_are_refused(client: TestClient) -> None:
    run_id = _run(client)["run_id"]
    body = {
        "metric_columns": {"keys": ["a", "a"], "values": [1.0], "steps": [0], "timestamps": [1]}
    }
    r = client.post(f"{API}/runs/{run_id}/batch", json=body)
    assert r.status_code == 422 and "same length" in r.json()["error"]["message"]
    assert client.get(f"{API}/runs/{run_id}").json()["metrics"] == {}
