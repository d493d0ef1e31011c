"""The python_function flavor: any object with a ``predict`` method (custom pre/post-processing).

The object is stored with skops when skops can hold it and read it back (the object's own
class and any other non-default types are recorded as trusted, see
:mod:`dockyard.registry.packaging.trust`). The class must be importable by the loading process
(defined in a module, not in ``__main__`` -- a warning says so). Otherwise it is stored with
cloudpickle, and only with ``trust_pickle=True`` (cloudpickle also captures classes defined in
``__main__`` or a notebook). ``predict`` is called with the validated input (a DataFrame for a
columns signature, an array for a tensor); ``predict_proba`` is offered when the object has it.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dockyard.core.errors import InvalidInput
from dockyard.registry.packaging.flavors._sklearn import read_serialized, write_serialized
from dockyard.registry.packaging.flavors.base import Adapter, SavedModel, requirement
from dockyard.registry.packaging.manifest import Manifest

__all__ = ["load", "matches", "save"]


def matches(model: Any) -> bool:
    return callable(getattr(model, "predict", None))


def _adapter(model: Any) -> Adapter:
    proba = getattr(model, "predict_proba", None)
    return Adapter(
        raw=model, predict=model.predict, predict_proba=proba if callable(proba) else None
    )


def save(model: Any, folder: Path, *, trust_pickle: bool, serialization: str | None) -> SavedModel:
    if not matches(model):
        raise InvalidInput(
            f"flavor 'python_function' needs an object with a predict method, not {type(model)}"
        )
    kind, file, types = write_serialized(
        model, folder, trust_pickle=trust_pickle, serialization=serialization, check_roundtrip=True
    )
    reqs = [requirement("numpy"), requirement("pandas")]
    reqs.append(requirement("skops") if kind == "skops" else requirement(kind))
    classes = getattr(model, "classes_", None)
    from dockyard.registry.packaging.signature import json_safe

    return SavedModel(
        serialization=kind,
        framework={"name": "python", "version": platform.python_version()},
        flavor_config={
            "model_file": file,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
        },
        requirements=reqs,
        adapter=_adapter(model),
        skops_trusted_types=types,
        classes=json_safe(list(classes)) if classes is not None else None,
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
    if not matches(model):
        raise InvalidInput(f"the object in {manifest.model_file()!r} has no predict method")
    return _adapter(model)
