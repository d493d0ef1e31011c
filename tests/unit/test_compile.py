"""Compiled models (dockyard.serving.compile / compiled): a scikit-learn package compiled to
ONNX Runtime answers exactly what scikit-learn answers, validates requests with the same
rules and messages, and a package that cannot be compiled, or a damaged compiled folder,
falls back to scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

from dockyard.registry.packaging import ModelInputError, load_model, save_model
from dockyard.registry.packaging.signature import columns_each
from dockyard.serving.compile import compile_package
from dockyard.serving.compiled import RECORD, CompiledModel, _fast_feed, read_compiled
from dockyard.serving.inputs import Payload
from dockyard.serving.pool import ModelHandle

CATS = ["retail", "travel", "grocery", "online_gaming"]


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, rows).round(2)
    amount[rng.random(rows) < 0.05] = np.nan  # missing values the imputer fills
    return pd.DataFrame(
        {
            "merchant": rng.choice(CATS, rows).astype(object),
            "amount": amount,
            "hour": rng.integers(0, 24, rows).astype("int64"),
            "score": rng.random(rows).round(3),
            "foreign": rng.random(rows) < 0.2,
        }
    )


def label(x: pd.DataFrame) -> np.ndarray:
    risky = (x["merchant"] == "online_gaming") | (x["amount"].fillna(0) > 60)
    return (risky & (x["score"] < 0.6) | x["foreign"] & (x["hour"] < 5)).astype("int64").to_numpy()


def pipeline(final: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant"]),
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                ["amount", "hour", "score", "foreign"],
            ),
        ]
    )
    return Pipeline([("features", pre), ("model", final)])


def package(tmp: Path, model: Any, x: pd.DataFrame) -> tuple[Path, str]:
    folder = tmp / "pkg"
    save_model(model, folder, input_example=x[:5])
    return folder, load_model(folder).digest


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x = frame(3000, seed=0)
    model = pipeline(HistGradientBoostingClassifier(max_iter=40, random_state=0))
    return model.fit(x, label(x)), x


@pytest.fixture(scope="module")
def compiled(fitted: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    model, x = fitted
    tmp = tmp_path_factory.mktemp("compiled")
    path, digest = package(tmp, model, x)
    root = tmp / "compiled"
    record = compile_package(path, root / digest, digest=digest)
    assert record["status"] == "compiled", record
    state = read_compiled(path, digest, root)
    assert state.model is not None, state.reason
    return state.model, load_model(path), root


def fresh_rows() -> pd.DataFrame:
    """Rows the model never saw: other seeds, missing values, an unseen category."""
    x = frame(1500, seed=7)
    x.loc[x.index[::50], "merchant"] = "crypto"
    x.loc[x.index[3::40], "score"] = np.nan
    return x


def test_the_compiled_model_answers_what_scikit_learn_answers(compiled: Any, fitted: Any) -> None:
    onnx_model, _native, root = compiled
    model, _x = fitted
    x = fresh_rows()
    labels, proba = onnx_model.predict_both(onnx_model.prepare(x))
    assert np.array_equal(labels, model.predict(x))
    assert np.max(np.abs(proba - model.predict_proba(x))) < 1e-5
    # The record says what was checked, and binds the file to the package.
    record = json.loads((root / onnx_model.digest / RECORD).read_text())
    assert record["check"]["labels_differ"] == 0
    assert record["check"]["rows"] > 2000
    assert record["check"]["max_probability_difference"] < 1e-5
    assert record["package_digest"] == onnx_model.digest


def test_json_columns_take_the_fast_path_and_give_the_same_inputs(compiled: Any) -> None:
    onnx_model, _native, _root = compiled
    x = frame(20, seed=3)
    x["amount"] = x["amount"].fillna(12.5)
    columns = {k: list(v) for k, v in x.to_dict("list").items()}
    columns["merchant"] = [str(v) for v in columns["merchant"]]
    fast = columns_each(
        onnx_model.signature["inputs"]["columns"], columns, lambda s, v: _fast_feed(s, v, np)
    )
    assert fast is not None  # plain JSON values: no pandas
    full = onnx_model.prepare(x)  # a DataFrame: the package's own validation
    assert fast.keys() == full.keys()
    for name in fast:
        assert fast[name].dtype == full[name].dtype, name
        assert np.array_equal(fast[name], full[name]), name


@pytest.mark.parametrize(
    "bad",
    [
        {"merchant": ["retail"], "amount": [1.0], "hour": [3], "score": [0.5]},  # no 'foreign'
        {"merchant": ["retail"], "amount": ["lots"], "hour": [3], "score": [0.5], "foreign": [0]},
        {"merchant": ["retail"], "amount": [1.0], "hour": [3.5], "score": [0.5], "foreign": [0]},
        {"merchant": [None], "amount": [1.0], "hour": [3], "score": [0.5], "foreign": [False]},
    ],
)
def test_bad_input_is_refused_with_the_native_message(compiled: Any, bad: dict[str, Any]) -> None:
    onnx_model, native, _root = compiled
    with pytest.raises(ModelInputError) as native_error:
        native.prepare(bad)
    with pytest.raises(ModelInputError) as compiled_error:
        onnx_model.prepare(bad)
    assert str(compiled_error.value) == str(native_error.value)


def test_the_batch_path_splits_answers_per_request(compiled: Any, fitted: Any) -> None:
    onnx_model, _native, _root = compiled
    model, _x = fitted
    handle = ModelHandle(ref=None, model=onnx_model)  # type: ignore[arg-type]
    handle.configure(None, None, 2048, 0.0)
    assert handle.runtime == "onnxruntime"
    handle.warm_up()  # the record's JSON example, through the batch path
    x = frame(7, seed=11)
    x["amount"] = x["amount"].fillna(3.0)
    items = []
    for lo, hi in ((0, 1), (1, 4), (4, 7)):
        cols = {k: list(v) for k, v in x.iloc[lo:hi].to_dict("list").items()}
        items.append(Payload(rows=hi - lo, columns=cols))
    out = handle.predict_batch(items)
    got = np.concatenate([p.predictions for p in out])
    assert np.array_equal(got, model.predict(x))
    proba = np.concatenate([p.probabilities for p in out])
    assert np.max(np.abs(proba - model.predict_proba(x))) < 1e-5


def test_a_regressor_is_compiled_within_tolerance(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    x = frame(2000, seed=1)
    y = 3 * x["score"] + x["hour"] / 10 + x["amount"].fillna(0) / 50
    model = pipeline(HistGradientBoostingRegressor(max_iter=30, random_state=0)).fit(x, y)
    path, digest = package(tmp_path, model, x)
    record = compile_package(path, tmp_path / "c" / digest, digest=digest)
    assert record["status"] == "compiled", record
    state = read_compiled(path, digest, tmp_path / "c")
    assert isinstance(state.model, CompiledModel)
    rows = fresh_rows()
    got = state.model.predict(rows).reshape(-1)
    assert np.max(np.abs(got - model.predict(rows)) / np.maximum(1, np.abs(got))) < 1e-5


def test_a_model_skl2onnx_cannot_convert_stays_native(tmp_path: Path) -> None:
    from sklearn.kernel_ridge import KernelRidge

    x = frame(300, seed=2)[["hour", "score"]]
    model = KernelRidge().fit(x, x["score"] * 2)
    path, digest = package(tmp_path, model, x)
    record = compile_package(path, tmp_path / "c" / digest, digest=digest)
    assert record["status"] == "native"
    assert "KernelRidge" in record["reason"]
    state = read_compiled(path, digest, tmp_path / "c")
    assert state.model is None and not state.compile  # recorded: not tried again
    assert "KernelRidge" in (state.reason or "")
    # ... until another skl2onnx is installed.
    record_path = tmp_path / "c" / digest / RECORD
    stale = json.loads(record_path.read_text())
    stale["versions"]["skl2onnx"] = "0.1"
    record_path.write_text(json.dumps(stale))
    assert read_compiled(path, digest, tmp_path / "c").compile


def test_an_altered_compiled_file_is_refused_and_rebuilt(compiled: Any, tmp_path: Path) -> None:
    onnx_model, native, root = compiled
    import shutil

    copy = tmp_path / "compiled"
    shutil.copytree(root, copy)
    folder = copy / onnx_model.digest
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    state = read_compiled(native.path, onnx_model.digest, copy)
    assert state.model is None and state.compile  # altered: compile again
    assert "altered" in (state.reason or "")
    # A record for another package is not used either.
    other = tmp_path / "other"
    shutil.copytree(root, other)
    record = json.loads((other / onnx_model.digest / RECORD).read_text())
    record["package_digest"] = "0" * 64
    (other / onnx_model.digest / RECORD).write_text(json.dumps(record))
    assert read_compiled(native.path, onnx_model.digest, other).model is None


@pytest.mark.parametrize(
    "final",
    [
        "sklearn.linear_model.LogisticRegression",
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.linear_model.LinearRegression",
    ],
)
def test_other_common_models_compile(final: str, tmp_path: Path) -> None:
    import importlib

    module, _, name = final.rpartition(".")
    estimator = getattr(importlib.import_module(module), name)()
    x = frame(800, seed=4)
    y = label(x) if "Regression" not in name or name == "LogisticRegression" else x["score"]
    model = pipeline(estimator).fit(x, y)
    path, digest = package(tmp_path, model, x)
    record = compile_package(path, tmp_path / "c" / digest, digest=digest)
    assert record["status"] == "compiled", record.get("reason")
    state = read_compiled(path, digest, tmp_path / "c")
    assert state.model is not None
    rows = fresh_rows()
    got = np.asarray(state.model.predict(rows)).reshape(-1)
    want = model.predict(rows)
    if want.dtype.kind == "f":
        assert np.max(np.abs(got - want)) < 1e-5
    else:
        assert np.array_equal(got, want)


def test_a_tensor_model_is_compiled_and_batched(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 4))
    y = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype("int64")
    model = RandomForestClassifier(20, random_state=0).fit(x, y)
    path, digest = package(tmp_path, model, x)
    record = compile_package(path, tmp_path / "c" / digest, digest=digest)
    assert record["status"] == "compiled", record.get("reason")
    state = read_compiled(path, digest, tmp_path / "c")
    assert state.model is not None
    handle = ModelHandle(ref=None, model=state.model)  # type: ignore[arg-type]
    handle.configure(None, None, 2048, 0.0)
    handle.warm_up()
    fresh = rng.normal(size=(9, 4))
    items = [
        Payload(rows=3, array=state.model.prepare(fresh[:3].tolist())),
        Payload(rows=6, array=state.model.prepare(fresh[3:])),
    ]
    out = handle.predict_batch(items)
    assert np.array_equal(np.concatenate([p.predictions for p in out]), model.predict(fresh))
    with pytest.raises(ModelInputError, match="wrong shape"):
        state.model.prepare(fresh[:, :3])
