"""Flavors: how each kind of model is written, read back and called.

Each flavor module exposes ``matches(model) -> bool``, ``save(model, folder, *, trust_pickle,
serialization) -> SavedModel`` and ``load(manifest, blobs, *, trust_pickle) -> Adapter``, and
imports its framework only inside those functions, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Final

from dockyard.core.errors import InvalidInput

__all__ = ["FLAVOR_MODULES", "detect_flavor", "get_flavor"]

FLAVOR_MODULES: Final[dict[str, str]] = {
    "sklearn": "dockyard.registry.packaging.flavors._sklearn",
    "xgboost": "dockyard.registry.packaging.flavors._xgboost",
    "lightgbm": "dockyard.registry.packaging.flavors._lightgbm",
    "onnx": "dockyard.registry.packaging.flavors._onnx",
    "python_function": "dockyard.registry.packaging.flavors._pyfunc",
}


def get_flavor(name: str) -> ModuleType:
    """The module implementing flavor ``name``."""
    try:
        return importlib.import_module(FLAVOR_MODULES[name])
    except KeyError:
        raise InvalidInput(
            f"unknown flavor {name!r}; known flavors: {sorted(FLAVOR_MODULES)}"
        ) from None


def _roots(model: Any) -> set[str]:
    return {(getattr(c, "__module__", "") or "").split(".")[0] for c in type(model).__mro__}


def detect_flavor(model: Any) -> str:
    """Pick the flavor from the model's type without importing any framework."""
    roots = _roots(model)
    if isinstance(model, str | os.PathLike) and os.fspath(model).endswith(".onnx"):
        return "onnx"
    if isinstance(model, bytes | bytearray) or "onnx" in roots:
        return "onnx"
    if "xgboost" in roots:
        return "xgboost"
    if "lightgbm" in roots:
        return "lightgbm"
    if "sklearn" in roots:
        return "sklearn"
    if callable(getattr(model, "predict", None)):
        return "python_function"
    raise InvalidInput(
        f"cannot tell how to save a {type(model).__module__}.{type(model).__qualname__}: "
        "give a scikit-learn estimator, an XGBoost or LightGBM model, an ONNX model, or an "
        "object with a predict method (or pass flavor=)"
    )
