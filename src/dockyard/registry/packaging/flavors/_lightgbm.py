"""The LightGBM flavor: a Booster or a scikit-learn wrapper, as LightGBM's text model.

The Booster is written as LightGBM's text format (``model.txt``, what ``Booster.save_model``
writes). LightGBM cannot rebuild its scikit-learn wrappers from that file, so for an
``LGBMClassifier`` Dockyard records the classes and reproduces the wrapper's ``predict`` and
``predict_proba`` exactly (probabilities from the Booster; ``[1 - p, p]`` for binary;
the class with the highest probability, first on ties). ``raw`` is the Booster.
"""

from __future__ import annotations

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

_CLASSIFIERS: Final = ("LGBMClassifier",)
_REGRESSORS: Final = ("LGBMRegressor", "LGBMRanker")


def matches(model: Any) -> bool:
    lgb = import_framework("lightgbm", "lightgbm")
    return isinstance(model, lgb.Booster | lgb.LGBMModel)


def _adapter(booster: Any, cls: str, classes: list[Any] | None) -> Adapter:
    import numpy as np

    if cls in _CLASSIFIERS:
        labels = np.asarray(classes)

        def predict_proba(data: Any) -> Any:
            result = booster.predict(data)
            if result.ndim == 1:
                return np.vstack((1.0 - result, result)).transpose()
            return result

        def predict(data: Any) -> Any:
            return labels[np.argmax(predict_proba(data), axis=1)]

        return Adapter(raw=booster, predict=predict, predict_proba=predict_proba)
    return Adapter(raw=booster, predict=booster.predict)


def _task(booster: Any, cls: str) -> str | None:
    if cls in _CLASSIFIERS:
        return "classification"
    if cls == "LGBMRegressor":
        return "regression"
    objective = str(booster.params.get("objective", ""))
    if objective.startswith(("binary", "multiclass", "softmax", "multiclassova")):
        return "classification"
    if objective.startswith(("regression", "l1", "l2", "huber", "poisson", "gamma", "tweedie")):
        return "regression"
    return None


def save(model: Any, folder: Path, *, trust_pickle: bool, serialization: str | None) -> SavedModel:
    lgb = import_framework("lightgbm", "lightgbm")
    if serialization not in (None, "native"):
        raise InvalidInput("the lightgbm flavor writes LightGBM's native text format only")
    classes: list[Any] | None = None
    if isinstance(model, lgb.LGBMModel):
        cls = type(model).__name__
        if cls not in _CLASSIFIERS + _REGRESSORS:
            raise InvalidInput(
                f"cannot save a {cls}: the lightgbm flavor knows "
                f"{list(_CLASSIFIERS + _REGRESSORS)} and Booster"
            )
        if callable(getattr(model, "objective", None)):
            raise InvalidInput("a LightGBM model with a custom objective function cannot be saved")
        booster = model.booster_
        if cls in _CLASSIFIERS:
            classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    elif isinstance(model, lgb.Booster):
        cls, booster = "Booster", model
    else:
        raise InvalidInput(f"flavor 'lightgbm' needs a LightGBM model, not {type(model)}")
    (folder / "model.txt").write_text(booster.model_to_string(), encoding="utf-8")
    config: dict[str, Any] = {"model_file": "model.txt", "model_class": cls}
    if classes is not None:
        config["classes"] = classes
    return SavedModel(
        serialization="native",
        framework={"name": "lightgbm", "version": lgb.__version__},
        flavor_config=config,
        requirements=[requirement("lightgbm"), requirement("numpy")],
        adapter=_adapter(booster, cls, classes),
        task=_task(booster, cls),
        classes=classes,
    )


def load(
    manifest: Manifest,
    blobs: dict[str, bytes],
    *,
    trust_pickle: bool,
    trusted_modules: Sequence[str] | None = None,  # no Python objects are deserialised here
) -> Adapter:
    lgb = import_framework("lightgbm", "lightgbm")
    file = manifest.model_file()
    cls = manifest.flavor_config.get("model_class", "Booster")
    if cls != "Booster" and cls not in _CLASSIFIERS + _REGRESSORS:
        raise InvalidInput(f"unknown lightgbm model class {cls!r} in the manifest")
    classes = manifest.flavor_config.get("classes")
    if cls in _CLASSIFIERS and not isinstance(classes, list):
        raise InvalidInput("manifest.json: a LightGBM classifier needs flavor_config.classes")
    try:
        text = blobs[file].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file!r} is not a LightGBM text model") from None
    booster = lgb.Booster(model_str=text)
    return _adapter(booster, cls, classes)
