"""``dockyard serve`` answering scikit-learn models from their compiled ONNX Runtime form, as a
real process on loopback: prepared ahead (the server then never loads scikit-learn or
pandas), or compiled in the background and swapped in under load with no failed request; the
answers are scikit-learn's, through JSON, MLflow and a stock V2 client; a model skl2onnx
cannot convert is served natively."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.governance.audit import Actor

from ._serve import open_backend, register, request, running_serve

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.e2e
ME = Actor("tester")
CATS = ["retail", "travel", "grocery", "online_gaming"]


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, rows).round(2)
    amount[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "merchant": rng.choice(CATS, rows).astype(object),
            "amount": amount,
            "hour": rng.integers(0, 24, rows).astype("int64"),
            "foreign": rng.random(rows) < 0.2,
        }
    )


def fitted() -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x = frame(2000, seed=0)
    y = ((x["merchant"] == "online_gaming") & (x["hour"] < 12) | (x["amount"] > 70)).astype(int)
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant"]),
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                ["amount", "hour", "foreign"],
            ),
        ]
    )
    model = Pipeline([("features", pre), ("model", HistGradientBoostingClassifier(max_iter=30))])
    return model.fit(x, y), x


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Endpoints ``fraud`` (a compilable pipeline) and ``kr`` (KernelRidge: skl2onnx has no
    converter for it)."""
    from sklearn.kernel_ridge import KernelRidge

    home = tmp_path_factory.mktemp("compiled") / "home"
    backend = open_backend(home)
    model, x = fitted()
    register(backend, "fraud", model, x)
    numbers = x[["hour"]].astype("float64")
    kr = KernelRidge().fit(numbers, numbers["hour"] * 2)
    register(backend, "kr", kr, numbers)
    eps = backend.endpoints(ME)
    eps.deploy("fraud", "fraud/1")
    eps.deploy("kr", "kr/1")
    backend.close()
    return {"home": home, "model": model, "kr": kr}


def fresh_records() -> list[dict[str, Any]]:
    """Rows the model never saw, with a missing amount and an unseen merchant."""
    x = frame(40, seed=9)
    x.loc[3, "merchant"] = "crypto"
    records = x.to_dict("records")
    records[5]["amount"] = None
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in records
    ]


def runtime_of(url: str, endpoint: str) -> str:
    status, _, meta = request(url, "GET", f"/v2/models/{endpoint}")
    assert status == 200, meta
    return str(meta["parameters"]["runtime"])


def mapped_files(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        pytest.skip("no /proc here to read a process's mapped libraries")


def test_a_prepared_model_answers_like_scikit_learn_without_loading_it(
    world: dict[str, Any],
) -> None:
    import tritonclient.http as th

    from dockyard.core.config import load_settings
    from dockyard.serving.compiled import prepare

    rows = prepare(load_settings(overrides={"home": str(world["home"])}, environ={}))
    by_endpoint = {r["endpoint"]: r for r in rows}
    assert by_endpoint["fraud"]["runtime"] == "onnxruntime"
    assert by_endpoint["fraud"]["checked_rows"] > 2000
    assert by_endpoint["fraud"]["max_difference"] < 1e-5
    assert by_endpoint["kr"]["runtime"] == "native"
    assert "KernelRidge" in by_endpoint["kr"]["reason"]

    model = world["model"]
    with running_serve(world["home"], DOCKYARD_SERVE_RUNTIME="auto") as serve:
        assert runtime_of(serve.url, "fraud") == "onnxruntime"
        assert runtime_of(serve.url, "kr") == "sklearn"
        maps = mapped_files(serve.process.pid)
        assert "onnxruntime" in maps
        # KernelRidge is native, so scikit-learn is loaded now: the check is for the start
        # with the compiled model only (below); here the answers.
        records = fresh_records()
        status, headers, body = request(
            serve.url, "POST", "/endpoints/fraud/predict", {"dataframe_records": records}
        )
        assert status == 200, body
        want = pd.DataFrame(records).astype({"amount": "float64"})
        assert body["predictions"] == model.predict(want).tolist()
        assert np.max(np.abs(np.array(body["probabilities"]) - model.predict_proba(want))) < 1e-5
        assert headers["x-dockyard-model-version"] == "1"
        # A stock V2 client: one tensor per column, BYTES for the strings.
        client = th.InferenceServerClient(serve.hostport)
        x = frame(8, seed=4).fillna({"amount": 10.0})
        inputs = []
        for col, dtype in (
            ("merchant", "BYTES"),
            ("amount", "FP64"),
            ("hour", "INT64"),
            ("foreign", "BOOL"),
        ):
            inp = th.InferInput(col, [len(x)], dtype)
            values = x[col].to_numpy()
            inp.set_data_from_numpy(values.astype(object) if dtype == "BYTES" else values)
            inputs.append(inp)
        result = client.infer("fraud", inputs)
        assert result.as_numpy("predict").tolist() == model.predict(x).tolist()
        # Bad input: the same 4xx, naming the column, as from scikit-learn.
        bad = dict(records[0], hour="noon")
        status, _, body = request(serve.url, "POST", "/endpoints/fraud/predict", [bad])
        assert status == 400 and "hour" in body["error"]["message"], body
        status, _, text = request(serve.url, "GET", "/metrics")
        assert (
            'dockyard_serve_model_runtime{model="fraud",runtime="onnxruntime",version="1"} 1.0'
            in text
        )

    # Serving only the compiled model, the server never maps scikit-learn's or pandas'
    # compiled libraries: it never imported them.
    with running_serve(world["home"], "fraud", DOCKYARD_SERVE_RUNTIME="auto") as serve:
        status, _, body = request(serve.url, "POST", "/endpoints/fraud/predict", records[:3])
        assert status == 200, body
        maps = mapped_files(serve.process.pid)
        assert "/sklearn/" not in maps and "/pandas/" not in maps and "/scipy/" not in maps
        assert "onnxruntime" in maps


def test_a_model_compiled_in_the_background_is_swapped_in_without_a_failed_request(
    world: dict[str, Any], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    shutil.rmtree(home / "cache" / "compiled", ignore_errors=True)
    model = world["model"]
    records = fresh_records()
    want = model.predict(pd.DataFrame(records).astype({"amount": "float64"})).tolist()
    answers: list[tuple[int, Any]] = []
    stop = threading.Event()

    with running_serve(home, "fraud", DOCKYARD_SERVE_RUNTIME="auto") as serve:
        assert runtime_of(serve.url, "fraud") == "sklearn"  # nothing cached: native first

        def load() -> None:
            while not stop.is_set():
                status, _, body = request(serve.url, "POST", "/endpoints/fraud/predict", records)
                answers.append((status, body.get("predictions") if status == 200 else body))

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 120
            while runtime_of(serve.url, "fraud") != "onnxruntime":
                assert time.monotonic() < deadline, serve.log.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(1.0)  # some traffic on the compiled model too
        finally:
            stop.set()
            for t in threads:
                t.join()
        log = serve.log.read_text()
    assert "compiled model fraud/1 to ONNX Runtime" in log
    assert answers and all(status == 200 for status, _ in answers), [
        a for a in answers if a[0] != 200
    ][:3]
    assert all(preds == want for _, preds in answers)
    assert (home / "cache" / "compiled").is_dir()
