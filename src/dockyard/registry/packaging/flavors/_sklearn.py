"""The scikit-learn flavor: estimators and pipelines, saved with skops' secure format.

``serialization`` is ``"skops"`` (``model.skops``) by default. ``"cloudpickle"``,
``"pickle"`` and ``"joblib"`` (``model.pkl`` / ``model.joblib``) are written only with
``trust_pickle=True``; a model skops cannot hold is refused without it, naming the reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dockyard.core.errors import InvalidInput
from dockyard.registry.packaging.flavors.base import Adapter, SavedModel, requirement
from dockyard.registry.packaging.manifest import PICKLE_SERIALIZATIONS, Manifest
from dockyard.registry.packaging.trust import (
    dump_pickle,
    load_pickle,
    require_pickle_trust,
    skops_dumps,
    skops_loads,
)

__all__ = ["load", "matches", "save"]

_PICKLE_FILES = {"pickle": "model.pkl", "cloudpickle": "model.pkl", "joblib": "model.joblib"}


def matches(model: Any) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(model, BaseEstimator)


def _task(model: Any) -> str | None:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return "classification"
    if is_regressor(model):
        return "regression"
    return None


def _classes(model: Any) -> list[Any] | None:
    from dockyard.registry.packaging.signature import json_safe

    try:
        classes = model.classes_
    except AttributeError:
        return None
    return json_safe(list(classes))


def warn_main_types(types: list[str], file: str) -> None:
    """Warn when a skops file needs types from ``__main__``: only that script can load them."""
    local = [t for t in types if t.startswith("__main__.")]
    if local:
        warnings.warn(
            f"model file {file!r} needs type(s) defined in __main__ ({', '.join(local)}); only "
            "a process that defines them can load it. Move them into an importable module.",
            UserWarning,
            stacklevel=4,
        )


def write_serialized(
    model: Any,
    folder: Path,
    *,
    trust_pickle: bool,
    serialization: str | None,
    check_roundtrip: bool = False,
) -> tuple[str, str, list[str]]:
    """Write ``model`` with skops (preferred) or a trusted pickle; return (kind, file, types)."""
    kind = serialization or "skops"
    if kind not in ("skops", *PICKLE_SERIALIZATIONS):
        raise InvalidInput(
            f"serialization {kind!r} is not available here; use 'skops' or, with "
            f"trust_pickle=True, one of {sorted(PICKLE_SERIALIZATIONS)}"
        )
    if kind == "skops":
        from dockyard.registry.packaging.errors import UntrustedModel

        try:
            data, types = skops_dumps(model, "model.skops")
            if check_roundtrip:
                skops_loads(data, types, "model.skops")
        except UntrustedModel:
            raise
        except Exception as exc:
            if not trust_pickle:
                raise UntrustedModel(
                    f"this model cannot be stored in skops' secure format "
                    f"({type(exc).__name__}: {exc}); pass trust_pickle=True to store it with "
                    "cloudpickle instead (whoever loads it must then trust you, and pass "
                    "trust_pickle=True too)",
                    serialization="skops",
                    flag="trust_pickle",
                ) from exc
            kind = "cloudpickle"
        else:
            warn_main_types(types, "model.skops")
            (folder / "model.skops").write_bytes(data)
            return "skops", "model.skops", types
    file = _PICKLE_FILES[kind]
    require_pickle_trust(trust_pickle, file, kind, "write")
    (folder / file).write_bytes(dump_pickle(model, kind))
    return kind, file, []


def read_serialized(
    manifest: Manifest,
    blobs: dict[str, bytes],
    *,
    trust_pickle: bool,
    trusted_modules: Sequence[str] | None = None,
) -> Any:
    """Deserialise the verified model file of a skops/pickle package."""
    file = manifest.model_file()
    if manifest.serialization == "skops":
        return skops_loads(blobs[file], manifest.skops_trusted_types, file, trusted_modules)
    if manifest.serialization in PICKLE_SERIALIZATIONS:
        require_pickle_trust(trust_pickle, file, manifest.serialization, "load")
        return load_pickle(blobs[file], manifest.serialization)
    raise InvalidInput(
        f"flavor {manifest.flavor!r} cannot read serialization {manifest.serialization!r}"
    )


def _requirements(kind: str) -> list[str]:
    reqs = [requirement("scikit-learn"), requirement("numpy"), requirement("scipy")]
    if kind == "skops":
        reqs.append(requirement("skops"))
    elif kind in ("cloudpickle", "joblib"):
        reqs.append(requirement(kind))
    return reqs


def adapter(model: Any) -> Adapter:
    proba = getattr(model, "predict_proba", None) if hasattr(model, "predict_proba") else None
    return Adapter(raw=model, predict=model.predict, predict_proba=proba)


def save(model: Any, folder: Path, *, trust_pickle: bool, serialization: str | None) -> SavedModel:
    import sklearn

    if not matches(model):
        raise InvalidInput(f"flavor 'sklearn' needs a scikit-learn estimator, not {type(model)}")
    kind, file, types = write_serialized(
        model, folder, trust_pickle=trust_pickle, serialization=serialization
    )
    return SavedModel(
        serialization=kind,
        framework={"name": "scikit-learn", "version": sklearn.__version__},
        flavor_config={"model_file": file},
        requirements=_requirements(kind),
        adapter=adapter(model),
        skops_trusted_types=types,
        task=_task(model),
        classes=_classes(model),
    )


def load(
    manifest: Manifest,
    blobs: dict[str, bytes],
    *,
    trust_pickle: bool,
    trusted_modules: Sequence[str] | None = None,
) -> Adapter:
    model = read_serialized(
        manifest, blobs, trust_pickle=trust_pickle, trusted_modules=trusted_modules
    )
    if not callable(getattr(model, "predict", None)):
        raise InvalidInput(f"the model in {manifest.model_file()!r} has no predict method")
    return adapter(model)
