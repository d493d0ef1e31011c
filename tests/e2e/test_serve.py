"""``dockyard serve`` as a real process on loopback: the V2 protocol with a stock client
(tritonclient), the JSON and MLflow routes, input errors, sticky A/B, forced variants, shadows,
metrics, the prediction log, and hot swaps with no failed request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.core.serving_entities import TrafficPolicy
from dockyard.governance.audit import Actor

from ._serve import (
    ServeProcess,
    classifier,
    open_backend,
    register,
    regressor,
    request,
    running_serve,
    training_frame,
)
from ._serve_models import FailingModel, SleepyModel

pytestmark = pytest.mark.e2e
ME = Actor("tester")
ROWS = [
    {"x1": 0.5, "x2": -0.2, "n": 2},
    {"x1": -1.5, "x2": 0.3, "n": 0},
    {"x1": 2.0, "x2": 1.0, "n": 4},
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with models clf/1..2, reg/1..2, sleepy/1, failing/1 and endpoints fraud (A/B
    70/30, sticky on user_id), price (shadows reg-2, sleepy-1, failing-1) and swap."""
    home = tmp_path_factory.mktemp("serve") / "home"
    backend = open_backend(home)
    clf1, x = classifier()
    clf2, _ = classifier(seed=1, flip=True)
    reg1, _ = regressor()
    reg2, _ = regressor(seed=1, scale=1.1)
    assert register(backend, "clf", clf1, x) == 1
    assert register(backend, "clf", clf2, x) == 2
    register(backend, "reg", reg1, x)
    register(backend, "reg", reg2, x, approve=False)
    register(backend, "sleepy", SleepyModel(5.0), x, approve=False)
    register(backend, "failing", FailingModel(), x, approve=False)
    eps = backend.endpoints(ME)
    eps.deploy("fraud", "clf/1", key_field="user_id")
    eps.deploy("fraud", "clf/2", mode="ab", weight=30, variant="b")
    eps.deploy("price", "reg/1")
    for model in ("reg/2", "sleepy/1", "failing/1"):
        eps.deploy("price", model, mode="shadow")
    eps.deploy("swap", "clf/1")
    tensor = _tensor_model()
    register(backend, "tclf", tensor, x.to_numpy(dtype="float64"))
    eps.deploy("tensor", "tclf/1")
    backend.close()
    return {
        "home": home,
        "clf1": clf1,
        "clf2": clf2,
        "reg1": reg1,
        "reg2": reg2,
        "tensor": tensor,
    }


def _tensor_model() -> Any:
    """A classifier fitted on a bare array: its signature is a float64 tensor [-1, 3]."""
    from sklearn.linear_model import LogisticRegression

    x = training_frame().to_numpy(dtype="float64")
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype("int64"))


@pytest.fixture(scope="module")
def serve(world: dict[str, Any]) -> Iterator[ServeProcess]:
    with running_serve(
        world["home"],
        DOCKYARD_TRUSTED_MODULES=f"sklearn,numpy,scipy,pandas,{SleepyModel.__module__}",
        DOCKYARD_SERVE_SHADOW_TIMEOUT="1",
        DOCKYARD_SERVE_POLL_SECONDS="0.2",
        DOCKYARD_PREDLOG_FLUSH_SECONDS="0.2",
        DOCKYARD_MAX_BODY_BYTES="200000",
    ) as s:
        print(f"dockyard serve: ready {s.seconds_to_ready:.2f} s after start")
        yield s


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)[["x1", "x2", "n"]].astype({"n": "int64"})


def _expected(model: Any, rows: list[dict[str, Any]]) -> list[Any]:
    return model.predict(_frame(rows)).tolist()  # type: ignore[no-any-return]


def _policy(home: Path, name: str) -> TrafficPolicy:
    backend = open_backend(home)
    try:
        return backend.endpoints(ME).get_endpoint(name).policy
    finally:
        backend.close()


# -- health and the V2 protocol ----------------------------------------------------------------


def test_health_and_server_metadata(serve: ServeProcess) -> None:
    assert request(serve.url, "GET", "/v2/health/live")[::2] == (200, {"live": True})
    assert request(serve.url, "GET", "/v2/health/ready")[::2] == (200, {"ready": True})
    status, _, meta = request(serve.url, "GET", "/v2")
    assert status == 200 and meta["name"] == "dockyard" and "version" in meta
    status, _, body = request(serve.url, "GET", "/endpoints")
    assert status == 200
    assert {e["name"] for e in body["endpoints"]} == {"fraud", "price", "swap", "tensor"}


def test_a_stock_v2_client_works_unchanged(serve: ServeProcess, world: dict[str, Any]) -> None:
    import numpy as np
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    client = th.InferenceServerClient(serve.hostport)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("fraud") and client.is_model_ready("fraud", "2")
    meta = client.get_model_metadata("fraud")
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("x1", "FP64"),
        ("x2", "FP64"),
        ("n", "INT64"),
    ]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["versions"] == ["1", "2"]
    frame = _frame(ROWS)
    for binary in (True, False):
        inputs = []
        for col, dtype in (("x1", "FP64"), ("x2", "FP64"), ("n", "INT64")):
            inp = th.InferInput(col, [len(ROWS)], dtype)
            inp.set_data_from_numpy(frame[col].to_numpy(), binary_data=binary)
            inputs.append(inp)
        outputs = [
            th.InferRequestedOutput("predict", binary_data=binary),
            th.InferRequestedOutput("predict_proba", binary_data=not binary),
        ]
        for version, model in (("1", world["clf1"]), ("2", world["clf2"])):
            result = client.infer(
                "fraud", inputs, model_version=version, outputs=outputs, request_id=f"r-{version}"
            )
            assert result.as_numpy("predict").tolist() == _expected(model, ROWS)
            proba = result.as_numpy("predict_proba")
            assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1.0)
            response = result.get_response()
            assert response["id"] == f"r-{version}" and response["model_version"] == version
            assert response["model_name"] == "fraud"
    # One [N, 3] tensor with the columns in the signature's order; every output by default.
    inp = th.InferInput("input-0", [3, 3], "FP64")
    inp.set_data_from_numpy(frame.to_numpy(dtype="float64"))
    result = client.infer("fraud", [inp], model_version="1")
    assert result.as_numpy("predict").tolist() == _expected(world["clf1"], ROWS)
    with pytest.raises(InferenceServerException, match="no variant serving model version 7"):
        client.infer("fraud", [inp], model_version="7")
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_model_metadata("nope")
    bad = th.InferInput("input-0", [3, 2], "FP64")
    bad.set_data_from_numpy(np.zeros((3, 2)))
    with pytest.raises(InferenceServerException, match="missing column"):
        client.infer("fraud", [bad])


def test_v2_json_nested_and_flat_data_and_errors(serve: ServeProcess) -> None:
    nested = {
        "id": "my-id",
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": "FP32",
                "data": [[0.5, -0.2, 2], [1, 1, 1]],
            }
        ],
        "outputs": [{"name": "predict"}],
    }
    flat = {**nested, "inputs": [{**nested["inputs"][0], "data": [0.5, -0.2, 2, 1, 1, 1]}]}
    a, b = (
        request(serve.url, "POST", "/v2/models/fraud/versions/1/infer", body)
        for body in (nested, flat)
    )
    assert a[0] == b[0] == 200 and a[2]["outputs"] == b[2]["outputs"]
    assert a[2]["id"] == "my-id" and a[1]["x-request-id"] == "my-id"
    assert [o["name"] for o in a[2]["outputs"]] == ["predict"]
    assert a[2]["outputs"][0]["shape"] == [2] and a[2]["outputs"][0]["datatype"] == "INT64"
    cases = [
        ({"inputs": [{"name": "x1", "shape": [2], "datatype": "FP64", "data": [1.0]}]}, 400, "x1"),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 3], "datatype": "FP16", "data": [1, 2, 3]}
                ]
            },
            400,
            "FP16",
        ),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 3], "datatype": "INT64", "data": [1.5, 2, 3]}
                ]
            },
            400,
            "INT64",
        ),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}
                ],
                "outputs": [{"name": "nope"}],
            },
            400,
            "nope",
        ),
        ({"inputs": "x"}, 400, "inputs"),
    ]
    for body, status, word in cases:
        got = request(serve.url, "POST", "/v2/models/fraud/infer", body)
        assert got[0] == status and isinstance(got[2]["error"], str) and word in got[2]["error"], (
            got
        )
    got = request(serve.url, "POST", "/v2/models/nope/infer", flat)
    assert got[0] == 404 and isinstance(got[2]["error"], str)
    got = request(serve.url, "POST", "/v2/models/fraud/infer", raw=b"{not json")
    assert got[0] == 400 and "not valid JSON" in got[2]["error"]


def test_a_tensor_model_takes_arrays_on_both_protocols(
    serve: ServeProcess, world: dict[str, Any]
) -> None:
    import numpy as np

    rows = [[r["x1"], r["x2"], float(r["n"])] for r in ROWS]
    expected = world["tensor"].predict(np.asarray(rows)).tolist()
    for body in (rows, {"instances": rows}, {"inputs": rows}):
        status, _, got = request(serve.url, "POST", "/endpoints/tensor/predict", body)
        assert status == 200 and got["predictions"] == expected, got
    v2 = {"inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP64", "data": rows}]}
    status, _, got = request(serve.url, "POST", "/v2/models/tensor/infer", v2)
    assert status == 200 and got["outputs"][0]["data"] == expected
    status, _, meta = request(serve.url, "GET", "/v2/models/tensor")
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}]
    status, _, got = request(serve.url, "POST", "/endpoints/tensor/predict", [[1.0, 2.0]])
    assert status == 400 and "wrong_shape" in got["error"]["message"]
    v2 = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    status, _, got = request(serve.url, "POST", "/v2/models/tensor/infer", v2)
    assert status == 400 and "shape" in got["error"]


# -- JSON routes -------------------------------------------------------------------------------

SHAPES = [
    ROWS,
    {"records": ROWS},
    {k: [r[k] for r in ROWS] for k in ("x1", "x2", "n")},
    {"columns": {k: [r[k] for r in ROWS] for k in ("x1", "x2", "n")}},
    {"dataframe_records": ROWS},
    {
        "dataframe_split": {
            "columns": ["x1", "x2", "n"],
            "data": [[r["x1"], r["x2"], r["n"]] for r in ROWS],
        }
    },
    {"instances": ROWS},
    {"instances": [[r["x1"], r["x2"], r["n"]] for r in ROWS]},
    {"inputs": {k: [r[k] for r in ROWS] for k in ("x1", "x2", "n")}},
]


@pytest.mark.parametrize("route", ["predict", "invocations"])
@pytest.mark.parametrize("body", SHAPES)
def test_json_and_mlflow_shapes(
    serve: ServeProcess, world: dict[str, Any], route: str, body: Any
) -> None:
    status, headers, got = request(
        serve.url,
        "POST",
        f"/endpoints/fraud/{route}",
        body,
        headers={"X-Request-Id": "req-123", "X-Dockyard-Variant": "clf-1"},
    )
    assert status == 200, got
    assert got["predictions"] == _expected(world["clf1"], ROWS)
    assert len(got["probabilities"]) == 3 and got["classes"] == [0, 1]
    assert (got["request_id"], got["variant"], got["model"], got["model_version"]) == (
        "req-123",
        "clf-1",
        "clf",
        1,
    )
    assert got["forced"] is True
    assert headers["x-request-id"] == "req-123"
    assert (headers["x-dockyard-variant"], headers["x-dockyard-model-version"]) == ("clf-1", "1")


def test_invocations_takes_csv_and_a_request_id_is_generated(
    serve: ServeProcess, world: dict[str, Any]
) -> None:
    csv = "x1,x2,n\n" + "".join(f"{r['x1']},{r['x2']},{r['n']}\n" for r in ROWS)
    status, headers, got = request(
        serve.url,
        "POST",
        "/endpoints/price/invocations",
        raw=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert status == 200, got
    assert got["predictions"] == pytest.approx(_expected(world["reg1"], ROWS))
    assert "probabilities" not in got
    assert len(got["request_id"]) == 32 and headers["x-request-id"] == got["request_id"]


BAD = [
    ([{"x2": 0.1, "n": 1}], 400, "'x1'", "missing_column"),
    ([{"x1": "high", "x2": 0.1, "n": 1}], 400, "'x1'", "wrong_type"),
    ([{"x1": True, "x2": 0.1, "n": 1}], 400, "'x1'", "wrong_type"),
    ([{"x1": 0.1, "x2": 0.1, "n": 1.5}], 400, "'n'", "wrong_type"),
    ([{"x1": 0.1, "x2": 0.1, "n": None}], 400, "'n'", "not_nullable"),
    ([[0.1, 0.2]], 400, "row 0", "wrong_shape"),
    ({"x1": [1.0, 2.0], "x2": [1.0], "n": [1, 2]}, 400, "lengths", "bad_input"),
    ([], 400, "empty", "bad_input"),
    ({"records": ROWS, "instances": ROWS}, 400, "exactly one", "bad_input"),
]


@pytest.mark.parametrize(("body", "status", "names", "rule"), BAD)
def test_bad_input_is_a_4xx_naming_the_field_and_the_rule(
    serve: ServeProcess, body: Any, status: int, names: str, rule: str
) -> None:
    got = request(serve.url, "POST", "/endpoints/fraud/predict", body)
    assert got[0] == status, got
    assert names in got[2]["error"]["message"] and got[2]["error"]["details"]["rule"] == rule


def test_other_refusals(serve: ServeProcess) -> None:
    nan = b'[{"x1": 0.1, "x2": 0.1, "n": NaN}]'  # what Python's json writes
    got = request(serve.url, "POST", "/endpoints/fraud/predict", raw=nan)
    assert (
        got[0] == 400
        and "'n'" in got[2]["error"]["message"]
        and "not_nullable" in got[2]["error"]["message"]
    )
    got = request(serve.url, "POST", "/endpoints/fraud/predict", raw=b"{oops")
    assert got[0] == 400 and "not valid JSON" in got[2]["error"]["message"]
    big = json.dumps([ROWS[0]] * 10_000).encode()
    got = request(serve.url, "POST", "/endpoints/fraud/predict", raw=big)
    assert got[0] == 413 and "max_body_bytes" in got[2]["error"]["message"]
    got = request(serve.url, "POST", "/endpoints/nope/predict", ROWS)
    assert got[0] == 404 and "'nope'" in got[2]["error"]["message"]
    got = request(
        serve.url, "POST", "/endpoints/fraud/predict", ROWS, headers={"X-Dockyard-Variant": "zz"}
    )
    assert got[0] == 400 and "X-Dockyard-Variant" in got[2]["error"]["message"]
    got = request(
        serve.url,
        "POST",
        "/endpoints/fraud/predict",
        raw=b"a,b",
        headers={"Content-Type": "text/plain"},
    )
    assert got[0] == 415


# -- routing ------------------------------------------------------------------------------------


def test_sticky_assignment_follows_the_policy_and_is_stable(
    serve: ServeProcess, world: dict[str, Any]
) -> None:
    from dockyard.serving.router import Router

    router = Router(_policy(world["home"], "fraud"))
    seen = {}
    for i in range(300):
        key = f"user-{i}"
        via_header = request(
            serve.url, "POST", "/endpoints/fraud/predict", ROWS[:1], headers={"X-Dockyard-Key": key}
        )
        via_body = request(
            serve.url, "POST", "/endpoints/fraud/predict", [{**ROWS[0], "user_id": key}]
        )
        assert via_header[0] == via_body[0] == 200
        assert via_header[2]["variant"] == via_body[2]["variant"] == router.assign(key).variant
        assert "forced" not in via_header[2]
        seen[key] = via_header[2]["variant"]
    assert set(seen.values()) == {"clf-1", "b"}
    again = {
        k: request(
            serve.url, "POST", "/endpoints/fraud/predict", ROWS[:1], headers={"X-Dockyard-Key": k}
        )[2]["variant"]
        for k in list(seen)[:50]
    }
    assert again == {k: seen[k] for k in again}


@pytest.mark.slow
def test_the_ab_split_over_20000_keys_is_within_2_percent(
    serve: ServeProcess, world: dict[str, Any]
) -> None:
    """20,000 users through the server: 70/30 within 2 points, each on the variant its key
    hashes to (so the same user always gets the same one)."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    from dockyard.serving.router import Router

    policy = _policy(world["home"], "fraud")
    router = Router(policy)
    body = json.dumps(ROWS[:1]).encode()

    def worker(part: int) -> list[tuple[str, str]]:
        conn = http.client.HTTPConnection(serve.hostport, timeout=30)
        out = []
        for i in range(part, 20_000, 16):
            key = f"customer-{i}"
            conn.request(
                "POST",
                "/endpoints/fraud/predict",
                body=body,
                headers={"Content-Type": "application/json", "X-Dockyard-Key": key},
            )
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            out.append((key, resp.getheader("X-Dockyard-Variant") or ""))
        conn.close()
        return out

    with ThreadPoolExecutor(16) as pool:
        got = [pair for part in pool.map(worker, range(16)) for pair in part]
    assert len(got) == 20_000
    assert all(variant == router.assign(key).variant for key, variant in got)
    share = sum(1 for _, v in got if v == "b") / len(got) * 100
    assert abs(share - policy.weights["b"]) <= 2.0, share


# -- shadows -------------------------------------------------------------------------------------


def _metrics(serve: ServeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    status, _, text = request(serve.url, "GET", "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sample(m: dict[Any, float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in m.items() if n == name and want <= set(lab))


def test_shadows_that_sleep_or_raise_leave_the_caller_untouched(
    serve: ServeProcess, world: dict[str, Any]
) -> None:
    for i in range(8):
        status, _, got = request(
            serve.url,
            "POST",
            "/endpoints/price/predict",
            ROWS,
            headers={"X-Request-Id": f"shadow-{i}"},
        )
        assert status == 200 and got["variant"] == "reg-1"
        assert got["predictions"] == pytest.approx(_expected(world["reg1"], ROWS))
    deadline = time.monotonic() + 60
    while True:
        m = _metrics(serve)
        done = {
            "reg": _sample(m, "dockyard_serve_shadow_requests_total", shadow="reg-2", outcome="ok"),
            "failing": _sample(
                m, "dockyard_serve_shadow_requests_total", shadow="failing-1", outcome="error"
            ),
            "sleepy": _sample(
                m, "dockyard_serve_shadow_requests_total", shadow="sleepy-1", outcome="timeout"
            )
            + _sample(
                m, "dockyard_serve_shadow_requests_total", shadow="sleepy-1", outcome="dropped"
            ),
            "diff": _sample(m, "dockyard_serve_shadow_abs_diff_count", shadow="reg-2"),
        }
        if done["reg"] >= 8 and done["failing"] >= 8 and done["sleepy"] >= 1 and done["diff"] >= 24:
            break
        assert time.monotonic() < deadline, done
        time.sleep(0.2)
    # The caller's answers after all that: still the primary, still fine.
    status, _, got = request(serve.url, "POST", "/endpoints/price/predict", ROWS)
    assert status == 200 and got["predictions"] == pytest.approx(_expected(world["reg1"], ROWS))
    assert _sample(m, "dockyard_serve_errors_total", endpoint="price") == 0


def test_metrics_parse_and_count(serve: ServeProcess) -> None:
    request(serve.url, "POST", "/endpoints/swap/predict", ROWS)
    request(serve.url, "POST", "/endpoints/swap/predict", [{"no such column": 1}])  # an error
    m = _metrics(serve)
    names = {n for n, _ in m}
    for family in (
        "dockyard_serve_requests_total",
        "dockyard_serve_errors_total",
        "dockyard_serve_request_seconds_bucket",
        "dockyard_serve_batch_requests_bucket",
        "dockyard_serve_batch_rows_bucket",
        "dockyard_serve_model_load_seconds",
        "dockyard_serve_policy_version",
        "dockyard_serve_ready",
        "dockyard_serve_predlog_records_written_total",
        "dockyard_serve_predlog_records_dropped_total",
    ):
        assert family in names, family
    assert _sample(m, "dockyard_serve_requests_total", endpoint="swap", code="200") >= 1
    assert _sample(m, "dockyard_serve_model_load_seconds", model="clf", version="1") > 0
    assert _sample(m, "dockyard_serve_ready") == 1


def test_every_request_and_shadow_call_reaches_the_prediction_log(serve: ServeProcess) -> None:
    from dockyard.serving.predlog import read_predictions

    status, _, got = request(
        serve.url, "POST", "/endpoints/price/predict", ROWS, headers={"X-Request-Id": "logged-1"}
    )
    assert status == 200
    deadline = time.monotonic() + 30
    while True:
        table = read_predictions(str(serve.home / "artifacts"), "price").to_pylist()
        mine = [r for r in table if r["request_id"] == "logged-1"]
        live = [r for r in mine if not r["shadow"]]
        shadow = {r["variant"] for r in mine if r["shadow"] and r["status"] == 200}
        if len(live) == 3 and "reg-2" in shadow:
            break
        assert time.monotonic() < deadline, mine
        time.sleep(0.3)
    assert [r["row"] for r in sorted(live, key=lambda r: r["row"])] == [0, 1, 2]
    first = sorted(live, key=lambda r: r["row"])[0]
    assert (first["endpoint"], first["variant"], first["model"], first["model_version"]) == (
        "price",
        "reg-1",
        "reg",
        1,
    )
    assert first["status"] == 200 and first["forced"] is False and first["latency_ms"] >= 0
    assert first["in.x1"] == ROWS[0]["x1"] and first["prediction"] == pytest.approx(
        got["predictions"][0]
    )
    bad = request(
        serve.url,
        "POST",
        "/endpoints/price/predict",
        [{"x1": "a", "x2": 1, "n": 1}],
        headers={"X-Request-Id": "logged-bad"},
    )
    assert bad[0] == 400
    deadline = time.monotonic() + 30
    while not [
        r
        for r in read_predictions(str(serve.home / "artifacts"), "price").to_pylist()
        if r["request_id"] == "logged-bad"
    ]:
        assert time.monotonic() < deadline
        time.sleep(0.3)


# -- hot swap ------------------------------------------------------------------------------------


class _Load:
    """Threads sending requests to /endpoints/swap/predict until stopped."""

    def __init__(self, serve: ServeProcess, threads: int = 4) -> None:
        self.serve = serve
        self.results: list[tuple[int, Any]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                status, _, got = request(self.serve.url, "POST", "/endpoints/swap/predict", ROWS)
                self.results.append((status, got.get("model_version") if status == 200 else got))
            except OSError as exc:  # a refused or reset connection is a failure too
                self.results.append((0, repr(exc)))

    def __enter__(self) -> _Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def wait_for_version(self, version: int, timeout: float = 60) -> None:
        """Until the last 8 answers all came from model version ``version``."""
        deadline = time.monotonic() + timeout
        while {v for _, v in self.results[-8:]} != {version} or len(self.results) < 8:
            assert time.monotonic() < deadline, self.results[-8:]
            time.sleep(0.05)


def test_hot_swap_and_rollback_fail_no_request(serve: ServeProcess, world: dict[str, Any]) -> None:
    backend = open_backend(world["home"])
    try:
        eps = backend.endpoints(ME)
        with _Load(serve) as load:
            load.wait_for_version(1)
            eps.deploy("swap", "clf/2", reason="hot swap test")
            load.wait_for_version(2)
            eps.rollback("swap", reason="hot swap test")
            load.wait_for_version(1)
    finally:
        backend.close()
    failures = [r for r in load.results if r[0] != 200]
    assert failures == []
    versions = [v for _, v in load.results]
    assert set(versions) == {1, 2} and len(versions) > 50
    # Under that load the prediction log kept every record: nothing dropped.
    assert _sample(_metrics(serve), "dockyard_serve_predlog_records_dropped_total") == 0


def test_a_policy_that_fails_to_load_keeps_the_old_one_serving(
    serve: ServeProcess, world: dict[str, Any]
) -> None:
    """A python_function model whose module the server does not trust cannot load."""
    backend = open_backend(world["home"])
    try:
        x = training_frame()
        v = register(backend, "clf", _Untrusted(), x)
        backend.endpoints(ME).deploy("swap", f"clf/{v}", reason="bad model")
        deadline = time.monotonic() + 30
        while (
            _sample(_metrics(serve), "dockyard_serve_model_load_failures_total", endpoint="swap")
            < 1
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for _ in range(5):
            status, _, got = request(serve.url, "POST", "/endpoints/swap/predict", ROWS)
            assert status == 200 and got["model_version"] == 1
        assert request(serve.url, "GET", "/v2/health/ready")[0] == 200
        backend.endpoints(ME).rollback("swap", reason="back")
    finally:
        backend.close()


class _Untrusted:
    """Defined in this test module, which the server's trusted modules do not cover."""

    def predict(self, frame: Any) -> Any:
        import numpy as np

        return np.zeros(len(frame), dtype="int64")


def test_labels_arrive_later_and_join_by_request_id(serve: ServeProcess) -> None:
    from dockyard.serving.labels import LabelStore, join_labels
    from dockyard.serving.predlog import read_predictions

    status, _, _ = request(
        serve.url, "POST", "/endpoints/price/predict", ROWS, headers={"X-Request-Id": "to-label"}
    )
    assert status == 200
    body = [
        {"request_id": "to-label", "row": 0, "label": 1.5},
        {"request_id": "to-label", "row": 2, "label": 7.25},
    ]
    status, _, got = request(serve.url, "POST", "/endpoints/price/labels", body)
    assert status == 201 and got["count"] == 2, got
    status, _, got = request(serve.url, "POST", "/endpoints/price/labels", {"to-label": [1, 2]})
    assert status in (400, 422) and "label" in json.dumps(got), got
    status, _, got = request(serve.url, "POST", "/endpoints/../labels", {"x": 1})
    assert 400 <= status < 500
    root = str(serve.home / "artifacts")
    deadline = time.monotonic() + 30
    while True:
        preds = read_predictions(root, "price")
        mine = preds.filter(pc_equal(preds, "request_id", "to-label"))
        if mine.num_rows >= 3:
            break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    joined = join_labels(mine, LabelStore(root).read_labels("price")).to_pylist()
    live = sorted((r for r in joined if not r["shadow"]), key=lambda r: r["row"])
    assert [r["label"] for r in live] == [1.5, None, 7.25]  # float labels stay floats


def pc_equal(table: Any, column: str, value: str) -> Any:
    import pyarrow.compute as pc

    return pc.equal(table[column], value)
