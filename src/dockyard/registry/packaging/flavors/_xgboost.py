"""The XGBoost flavor: a Booster or a scikit-learn wrapper, in XGBoost's own model format.

The model is written with ``save_model`` as UBJSON (``model.ubj``; a ``model.json`` written by
an older package loads too). For the scikit-learn wrappers (``XGBClassifier``,
``XGBRegressor``...) the wrapper class is recorded and rebuilt on load, so ``classes_`` and
``predict_proba`` keep working; a bare Booster predicts through a ``DMatrix``.
No pickle is involved: XGBoost's format holds only trees and parameters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from dockyard.core.errors import InvalidInput
from dockyard.registry.packaging.flavors.base import (
    Adapter,
    SavedModel,
    import_framework,
    requirement,
)
from dockyard.registry.packaging.manifest import Manifest

__all__ = ["load", "matches", "save"]

_WRAPPERS: Final = (
    "XGBClassifier",
    "XGBRegressor",
    "XGBRFClassifier",
    "XGBRFRegressor",
    "XGBRanker",
)
_MODEL_FILES: Final = ("model.ubj", "model.json")


def matches(model: Any) -> bool:
    xgb = import_framework("xgboost", "xgboost")
    return isinstance(model, xgb.Booster | xgb.XGBModel)


def _booster_task(booster: Any) -> str | None:
    try:
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    except (KeyError, ValueError):
        return None
    if objective.startswith(("binary:", "multi:")):
        return "classification"
    if objective.startswith(("reg:", "count:", "survival:")):
        return "regression"
    return None


def _adapter(model: Any, xgb: Any) -> Adapter:
    if isinstance(model, xgb.XGBModel):
        proba = model.predict_proba if hasattr(model, "predict_proba") else None
        return Adapter(raw=model, predict=model.predict, predict_proba=proba)

    def predict(data: Any) -> Any:
        categorical = _has_categorical(data)
        return model.predict(xgb.DMatrix(data, enable_categorical=categorical))

    return Adapter(raw=model, predict=predict)


def _has_categorical(data: Any) -> bool:
    dtypes = getattr(data, "dtypes", None)
    return dtypes is not None and any(str(d) == "category" for d in dtypes)


def save(model: Any, folder: Path, *, trust_pickle: bool, serialization: str | None) -> SavedModel:
    xgb = import_framework("xgboost", "xgboost")
    if serialization not in (None, "native"):
        raise InvalidInput("the xgboost flavor writes XGBoost's native format only")
    if not isinstance(model, xgb.Booster | xgb.XGBModel):
        raise InvalidInput(f"flavor 'xgboost' needs an XGBoost model, not {type(model)}")
    if isinstance(model, xgb.XGBModel):
        cls = type(model).__name__
        if cls not in _WRAPPERS:
            raise InvalidInput(
                f"cannot save a {cls}: the xgboost flavor knows {list(_WRAPPERS)} and Booster"
            )
        task = "classification" if hasattr(model, "predict_proba") else "regression"
        if cls == "XGBRanker":
            task = None
        classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
    else:
        cls, task, classes = "Booster", _booster_task(model), []
    model.save_model(str(folder / "model.ubj"))
    return SavedModel(
        serialization="native",
        framework={"name": "xgboost", "version": xgb.__version__},
        flavor_config={"model_file": "model.ubj", "model_class": cls},
        requirements=[requirement("xgboost-cpu", "xgboost"), requirement("numpy")],
        adapter=_adapter(model, xgb),
        task=task,
        classes=classes or None,
    )


def load(
    manifest: Manifest,
    blobs: dict[str, bytes],
    *,
    trust_pickle: bool,
    trusted_modules: Sequence[str] | None = None,  # no Python objects are deserialised here
) -> Adapter:
    xgb = import_framework("xgboost", "xgboost")
    file = manifest.model_file()
    if file not in _MODEL_FILES:
        raise InvalidInput(f"xgboost model file must be one of {list(_MODEL_FILES)}, not {file!r}")
    cls = manifest.flavor_config.get("model_class", "Booster")
    if cls != "Booster" and cls not in _WRAPPERS:
        raise InvalidInput(f"unknown xgboost model class {cls!r} in the manifest")
    model = getattr(xgb, cls)()
    model.load_model(bytearray(blobs[file]))
    return _adapter(model, xgb)
