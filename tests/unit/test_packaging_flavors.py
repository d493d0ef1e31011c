"""Every flavor round-trips: the loaded package predicts exactly what the original model does.

The heavy frameworks come from the ``dev`` extra (xgboost-cpu, lightgbm, onnx, onnxruntime,
skl2onnx), so these tests never skip in CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
import pandas as pd
import pytest
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dockyard.core.errors import InvalidInput
from dockyard.data.synthetic import (
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    make_fraud_transactions,
)
from dockyard.registry.packaging import (
    LoadedModel,
    ModelInputError,
    UntrustedModel,
    load_model,
    read_manifest,
    save_model,
)

from ._models import category_encoder


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_fraud_transactions(400, random_state=7, fraud_rate=0.1)


@pytest.fixture(scope="module")
def numeric(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(NUMERIC_COLUMNS)].astype({"is_foreign": "int64"})


@pytest.fixture(scope="module")
def label(frame: pd.DataFrame) -> pd.Series:
    return frame[LABEL_COLUMN]


def _round_trip(model: Any, path: Path, example: Any, **kwargs: Any) -> LoadedModel:
    manifest = save_model(model, path, input_example=example, **kwargs)
    assert read_manifest(path) == manifest
    return load_model(path, expected_digest=manifest.digest, trust_pickle=manifest.trusted_pickle)


# -- scikit-learn -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
        RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0),
        LogisticRegression(max_iter=1000),
    ],
    ids=["hist_gradient_boosting", "random_forest", "logistic_regression"],
)
def test_sklearn_pipelines(
    tmp_path: Path, features: pd.DataFrame, label: pd.Series, estimator: Any
) -> None:
    steps = [category_encoder()]
    if not isinstance(estimator, HistGradientBoostingClassifier):
        steps += [SimpleImputer(), StandardScaler()]
    model = make_pipeline(*steps, estimator).fit(features, label)
    loaded = _round_trip(model, tmp_path / "m", features.head())
    assert loaded.flavor == "sklearn"
    assert loaded.manifest.serialization == "skops"
    assert loaded.task == "classification"
    assert loaded.classes == [0, 1]
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    np.testing.assert_array_equal(loaded.raw.predict(features), model.predict(features))


def test_sklearn_regressor_and_string_labels(
    tmp_path: Path, features: pd.DataFrame, label: pd.Series
) -> None:
    numeric_features = features[list(NUMERIC_COLUMNS)]
    regressor = HistGradientBoostingRegressor(max_iter=20, random_state=0)
    regressor.fit(numeric_features.drop(columns=["amount"]), features["amount"])
    loaded = _round_trip(regressor, tmp_path / "r", numeric_features.drop(columns=["amount"]))
    assert loaded.task == "regression"
    assert not hasattr(loaded, "predict_proba")
    x = numeric_features.drop(columns=["amount"])
    np.testing.assert_array_equal(loaded.predict(x), regressor.predict(x))
    assert loaded.manifest.signature["outputs"]["dtype"] == "float64"

    names = label.map({0: "legit", 1: "fraud"})
    classifier = make_pipeline(category_encoder(), HistGradientBoostingClassifier(max_iter=10))
    classifier.fit(features, names)
    loaded = _round_trip(classifier, tmp_path / "c", features.head())
    assert loaded.classes == ["fraud", "legit"]
    np.testing.assert_array_equal(loaded.predict(features), classifier.predict(features))


# -- XGBoost ----------------------------------------------------------------------------------


def test_xgboost_classifier(tmp_path: Path, numeric: pd.DataFrame, label: pd.Series) -> None:
    model = xgb.XGBClassifier(n_estimators=15, max_depth=3, random_state=0).fit(numeric, label)
    loaded = _round_trip(model, tmp_path / "m", numeric.head())
    manifest = loaded.manifest
    assert manifest.flavor == "xgboost"
    assert manifest.serialization == "native"
    assert set(manifest.files) == {"model.ubj", "input_example.json", "requirements.txt"}
    assert manifest.flavor_config["model_class"] == "XGBClassifier"
    assert manifest.task == "classification"
    assert loaded.classes == [0, 1]
    assert isinstance(loaded.raw, xgb.XGBClassifier)
    np.testing.assert_array_equal(loaded.raw.classes_, model.classes_)
    np.testing.assert_array_equal(loaded.predict(numeric), model.predict(numeric))
    np.testing.assert_array_equal(loaded.predict_proba(numeric), model.predict_proba(numeric))


def test_xgboost_categorical_regressor_and_booster(
    tmp_path: Path, features: pd.DataFrame, numeric: pd.DataFrame, label: pd.Series
) -> None:
    regressor = xgb.XGBRegressor(
        n_estimators=10, max_depth=3, enable_categorical=True, tree_method="hist"
    )
    x = features.drop(columns=["amount"])
    regressor.fit(x, features["amount"])
    loaded = _round_trip(regressor, tmp_path / "r", x.head())
    assert loaded.task == "regression"
    np.testing.assert_array_equal(loaded.predict(x), regressor.predict(x))
    np.testing.assert_array_equal(loaded.predict(x.to_dict("records")), regressor.predict(x))

    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3},
        xgb.DMatrix(numeric, label=label),
        num_boost_round=10,
    )
    loaded = _round_trip(booster, tmp_path / "b", numeric.head())
    assert loaded.manifest.flavor_config["model_class"] == "Booster"
    assert loaded.task == "classification"
    np.testing.assert_array_equal(loaded.predict(numeric), booster.predict(xgb.DMatrix(numeric)))


def test_xgboost_json_model_file_loads(
    tmp_path: Path, numeric: pd.DataFrame, label: pd.Series
) -> None:
    """A package whose model file is XGBoost JSON (the other native format) loads too."""
    import json

    from dockyard.registry.packaging.manifest import sha256_bytes

    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(numeric, label)
    path = tmp_path / "m"
    save_model(model, path, input_example=numeric.head())
    model.save_model(str(tmp_path / "model.json"))
    data = (tmp_path / "model.json").read_bytes()
    (path / "model.ubj").unlink()
    (path / "model.json").write_bytes(data)
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["files"]["model.ubj"]
    manifest["files"]["model.json"] = {"sha256": sha256_bytes(data), "size": len(data)}
    manifest["flavor_config"]["model_file"] = "model.json"
    (path / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(numeric), model.predict_proba(numeric))


# -- LightGBM ---------------------------------------------------------------------------------


def test_lightgbm_classifier_with_categories(
    tmp_path: Path, features: pd.DataFrame, label: pd.Series
) -> None:
    model = lgb.LGBMClassifier(n_estimators=15, num_leaves=8, verbose=-1, random_state=0)
    model.fit(features, label)
    loaded = _round_trip(model, tmp_path / "m", features.head())
    manifest = loaded.manifest
    assert manifest.flavor == "lightgbm"
    assert set(manifest.files) == {"model.txt", "input_example.json", "requirements.txt"}
    assert manifest.flavor_config["model_class"] == "LGBMClassifier"
    assert manifest.task == "classification"
    assert loaded.classes == [0, 1]
    assert isinstance(loaded.raw, lgb.Booster)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    shuffled = features[list(reversed(features.columns))]
    np.testing.assert_array_equal(loaded.predict_proba(shuffled), model.predict_proba(features))


def test_lightgbm_multiclass_regressor_and_booster(
    tmp_path: Path, numeric: pd.DataFrame, frame: pd.DataFrame
) -> None:
    channel = frame["channel"].astype(str)
    multi = lgb.LGBMClassifier(n_estimators=10, num_leaves=8, verbose=-1).fit(numeric, channel)
    loaded = _round_trip(multi, tmp_path / "c", numeric.head())
    assert loaded.classes == list(multi.classes_)
    np.testing.assert_array_equal(loaded.predict(numeric), multi.predict(numeric))
    np.testing.assert_array_equal(loaded.predict_proba(numeric), multi.predict_proba(numeric))

    x = numeric.drop(columns=["amount"])
    regressor = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(x, numeric["amount"])
    loaded = _round_trip(regressor, tmp_path / "r", x.head())
    assert loaded.task == "regression"
    assert not hasattr(loaded, "predict_proba")
    np.testing.assert_array_equal(loaded.predict(x), regressor.predict(x))

    booster = regressor.booster_
    loaded = _round_trip(booster, tmp_path / "b", x.head())
    assert loaded.manifest.flavor_config["model_class"] == "Booster"
    assert loaded.task == "regression"
    np.testing.assert_array_equal(loaded.predict(x), booster.predict(x))


# -- ONNX -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_source(numeric: pd.DataFrame, label: pd.Series) -> tuple[Any, np.ndarray]:
    x = numeric.fillna(0).to_numpy(np.float32)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, label)
    return model, x


def test_onnx_model_proto(tmp_path: Path, onnx_source: tuple[Any, np.ndarray]) -> None:
    import onnxruntime as ort

    model, x = onnx_source
    proto = to_onnx(model, x[:1], options={"zipmap": False})
    assert isinstance(proto, onnx.ModelProto)
    loaded = _round_trip(proto, tmp_path / "m", x[:5])
    manifest = loaded.manifest
    assert manifest.flavor == "onnx"
    assert manifest.serialization == "onnx"
    assert set(manifest.files) == {"model.onnx", "input_example.json", "requirements.txt"}
    assert manifest.signature["inputs"] == {"kind": "tensor", "dtype": "float32", "shape": [-1, 9]}
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_array_equal(loaded.predict(x), label)
    np.testing.assert_array_equal(loaded.predict_proba(x), proba)
    # and close to scikit-learn itself (float32 arithmetic)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-5)
    # float64 input is cast to the graph's float32
    np.testing.assert_array_equal(loaded.predict(x.astype(np.float64)), label)
    with pytest.raises(ModelInputError, match=r"wrong shape"):
        loaded.predict(x[:, :3])


def test_onnx_bytes_path_zipmap_and_graph_signature(
    tmp_path: Path, onnx_source: tuple[Any, np.ndarray]
) -> None:
    model, x = onnx_source
    proto = to_onnx(model, x[:1])  # with ZipMap: probabilities as a list of dicts
    raw = proto.SerializeToString()
    loaded = _round_trip(raw, tmp_path / "bytes", None)
    # Without an example the signature comes from the graph.
    assert loaded.signature["inputs"] == {"kind": "tensor", "dtype": "float32", "shape": [-1, 9]}
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))

    file = tmp_path / "model.onnx"
    file.write_bytes(raw)
    loaded_from_path = _round_trip(str(file), tmp_path / "path", x[:3])
    np.testing.assert_array_equal(loaded_from_path.predict_proba(x), loaded.predict_proba(x))
    with pytest.raises(InvalidInput, match=r"not a valid ONNX model"):
        save_model(b"not onnx", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_onnx_columns_to_several_inputs(tmp_path: Path, frame: pd.DataFrame) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    cols = ["amount", "hour", "customer_age"]
    x = frame[cols].astype("float32")
    model = LogisticRegression(max_iter=1000).fit(x.to_numpy(), frame[LABEL_COLUMN])
    from skl2onnx import convert_sklearn
    from sklearn.compose import ColumnTransformer as CT

    pipe = make_pipeline(CT([("all", "passthrough", cols)]), model)
    pipe.fit(x, frame[LABEL_COLUMN])
    proto = convert_sklearn(
        pipe,
        initial_types=[(c, FloatTensorType([None, 1])) for c in cols],
        options={id(model): {"zipmap": False}},
    )
    manifest = save_model(proto, tmp_path / "m")
    assert [c["name"] for c in manifest.signature["inputs"]["columns"]] == cols
    loaded = load_model(tmp_path / "m")
    records = x.to_dict("records")
    np.testing.assert_array_equal(loaded.predict(records), pipe.predict(x))
    np.testing.assert_allclose(loaded.predict_proba(x), pipe.predict_proba(x), atol=1e-5)


# -- python_function --------------------------------------------------------------------------


class ThresholdModel:
    """Custom post-processing around a scikit-learn classifier (importable: stored with skops)."""

    def __init__(self, estimator: Any, threshold: float) -> None:
        self.estimator = estimator
        self.threshold = threshold

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(data)[:, 1] >= self.threshold).astype(np.int64)

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(data)


def test_python_function_with_skops(
    tmp_path: Path, features: pd.DataFrame, label: pd.Series
) -> None:
    inner = make_pipeline(category_encoder(), HistGradientBoostingClassifier(max_iter=10)).fit(
        features, label
    )
    model = ThresholdModel(inner, 0.2)
    loaded = _round_trip(model, tmp_path / "m", features.head(), task="classification")
    manifest = loaded.manifest
    assert manifest.flavor == "python_function"
    assert manifest.serialization == "skops"
    assert manifest.trusted_pickle is False
    assert f"{__name__}.ThresholdModel" in manifest.skops_trusted_types
    assert manifest.task == "classification"
    assert isinstance(loaded.raw, ThresholdModel)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))


class LambdaModel:
    """Holds a lambda: skops cannot store it, cloudpickle can."""

    def __init__(self) -> None:
        self.transform = lambda values: values * 3 + 1

    def predict(self, data: np.ndarray) -> np.ndarray:
        return self.transform(data).sum(axis=1)


def test_python_function_needs_trust_when_skops_cannot_hold_it(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    with pytest.raises(UntrustedModel, match=r"trust_pickle=True"):
        save_model(LambdaModel(), tmp_path / "refused", input_example=x)
    assert not (tmp_path / "refused").exists()

    manifest = save_model(LambdaModel(), tmp_path / "m", input_example=x, trust_pickle=True)
    assert manifest.flavor == "python_function"
    assert manifest.serialization == "cloudpickle"
    assert manifest.trusted_pickle is True
    with pytest.raises(UntrustedModel, match=r"model\.pkl.*trust_pickle=True"):
        load_model(tmp_path / "m")
    loaded = load_model(tmp_path / "m", trust_pickle=True)
    np.testing.assert_array_equal(loaded.predict(x), LambdaModel().predict(x))
    assert not hasattr(loaded, "predict_proba")
