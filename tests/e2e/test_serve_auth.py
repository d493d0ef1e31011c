"""``dockyard serve`` with auth on: bearer tokens as in ``dockyard server``, ``endpoint:read``
for predictions and model metadata, health and metrics open."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dockyard.governance.audit import Actor

from ._serve import ServeProcess, classifier, open_backend, register, request, running_serve

pytestmark = pytest.mark.e2e
ROW = [{"x1": 0.5, "x2": -0.2, "n": 2}]


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServeProcess, dict[str, str]]]:
    home = tmp_path_factory.mktemp("serve-auth") / "home"
    backend = open_backend(home)
    model, x = classifier()
    register(backend, "clf", model, x)
    backend.endpoints(Actor("tester")).deploy("fraud", "clf/1")
    backend.endpoints(Actor("tester")).deploy("other", "clf/1")
    ids = backend.identity(Actor("laptop"))
    ids.create_user("root", roles=["admin"])
    admin = backend.identity(Actor("root"))
    admin.create_user("ana")
    admin.grant("ana", "viewer", "endpoint", "fraud")
    admin.create_user("bob")
    tokens = {n: admin.create_token(n).secret for n in ("ana", "bob")}
    backend.close()
    with running_serve(home, DOCKYARD_AUTH="on") as s:
        yield s, tokens


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_predictions_need_a_token_and_endpoint_read(secured: tuple[ServeProcess, Any]) -> None:
    serve, tokens = secured
    status, headers, body = request(serve.url, "POST", "/endpoints/fraud/predict", ROW)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    status, _, body = request(serve.url, "POST", "/v2/models/fraud/infer", {"inputs": []})
    assert status == 401 and isinstance(body["error"], str)  # the V2 error shape
    ana, bob = _bearer(tokens["ana"]), _bearer(tokens["bob"])
    status, _, body = request(serve.url, "POST", "/endpoints/fraud/predict", ROW, headers=ana)
    assert status == 200 and body["predictions"] in ([0], [1])
    status, _, body = request(serve.url, "POST", "/endpoints/other/predict", ROW, headers=ana)
    assert status == 403 and "endpoint:read" in body["error"]["message"]
    status, _, body = request(serve.url, "POST", "/endpoints/fraud/predict", ROW, headers=bob)
    assert status == 403
    assert request(serve.url, "GET", "/v2/models/fraud", headers=ana)[0] == 200
    status, _, body = request(serve.url, "GET", "/v2/models/fraud", headers=bob)
    assert status == 403 and isinstance(body["error"], str)
    status, _, body = request(serve.url, "GET", "/endpoints", headers=ana)
    assert [e["name"] for e in body["endpoints"]] == ["fraud"]


def test_health_metrics_and_server_metadata_are_open(secured: tuple[ServeProcess, Any]) -> None:
    serve, _ = secured
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/metrics", "/healthz"):
        assert request(serve.url, "GET", path)[0] == 200, path


def test_with_worker_processes_ready_means_every_worker_is(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Each worker loads its own models; /v2/health/ready answers 200 only once all have, so
    a probe never sends traffic to a worker that is still loading."""
    home = tmp_path_factory.mktemp("serve-workers") / "home"
    backend = open_backend(home)
    model, x = classifier()
    register(backend, "clf", model, x)
    backend.endpoints(Actor("tester")).deploy("fraud", "clf/1")
    backend.close()
    with running_serve(home, "fraud", workers=2) as s:
        statuses = [
            request(
                s.url, "POST", "/endpoints/fraud/predict", ROW, headers={"Connection": "close"}
            )[0]
            for _ in range(40)
        ]
        assert statuses == [200] * 40
