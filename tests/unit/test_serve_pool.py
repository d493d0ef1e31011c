"""The model handle runs a classifier once per batch when its labels are the argmax of its
probabilities, and the answers are exactly the model's own predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import SVC

from dockyard.core.serving_entities import ModelRef
from dockyard.registry.packaging import load_model, save_model
from dockyard.serving.inputs import Payload
from dockyard.serving.pool import ModelHandle


def _frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)}
    )


def _handle(tmp_path: Path, model: Any, x: pd.DataFrame) -> ModelHandle:
    save_model(model, tmp_path / "m", input_example=x.head(), trust_pickle=True)
    handle = ModelHandle(ModelRef("m", 1), load_model(tmp_path / "m", trust_pickle=True))
    handle.configure(None, None, max_rows=256, max_wait_ms=0)
    return handle


@pytest.mark.parametrize(
    ("estimator", "once"),
    [
        (HistGradientBoostingClassifier(max_iter=20), True),
        (LogisticRegression(), True),
        (CalibratedClassifierCV(SVC(), ensemble=False), False),  # not argmax by construction
    ],
)
def test_labels_equal_the_models_own_predict(tmp_path: Path, estimator: Any, once: bool) -> None:
    x = _frame()
    y = np.where(x["a"] + (x["c"] == "y") > 0.3, "fraud", "ok")
    pre = ColumnTransformer([("oh", OneHotEncoder(), ["c"])], remainder="passthrough")
    model = make_pipeline(pre, estimator).fit(x, y)
    handle = _handle(tmp_path, model, x)
    assert (handle._labels_from_proba is not None) is once
    cols = {k: x[k].tolist() for k in x.columns}
    [pred] = handle.predict_batch([Payload(rows=len(x), columns=cols)])
    assert list(pred.predictions) == list(model.predict(x))  # type: ignore[union-attr]
    np.testing.assert_allclose(pred.probabilities, model.predict_proba(x))  # type: ignore[union-attr]
