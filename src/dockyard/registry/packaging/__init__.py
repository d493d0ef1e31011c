"""Model packages: a model saved as a verified folder that any flavor loads through one call.

A package is a folder: ``manifest.json`` (flavor, framework and version, task, signature,
requirements, the SHA-256 and size of every file; see :mod:`.manifest`), the flavor's model
file (``model.skops``, ``model.ubj``, ``model.txt``, ``model.onnx``, ``model.pkl``...),
``input_example.json`` and ``requirements.txt``. It knows nothing of the store; the registry
copies packages into the artifact store and records their digest.

>>> from dockyard.registry.packaging import save_model, load_model  # doctest: +SKIP
>>> manifest = save_model(pipeline, "out/model", input_example=df.head())  # doctest: +SKIP
>>> model = load_model("out/model", expected_digest=manifest.digest)  # doctest: +SKIP
>>> model.predict(df)  # doctest: +SKIP

Security (details in :mod:`.trust`): scikit-learn models are written with skops' secure
format and read back trusting only skops' defaults plus the types recorded at save; pickle,
joblib and cloudpickle need ``trust_pickle=True`` on save *and* on load; every load verifies
every file against the manifest before deserialising anything.

Flavors and their extras: ``sklearn`` (core), ``python_function`` (core; cloudpickle for
objects skops cannot hold), ``xgboost`` (``pip install 'dockyard[xgboost]'``), ``lightgbm``
(``dockyard[lightgbm]``), ``onnx`` (``dockyard[onnx]``: onnx, onnxruntime, skl2onnx).

Importing this package is cheap: the names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dockyard.registry.packaging.errors import ModelInputError, UntrustedModel

if TYPE_CHECKING:
    from dockyard.registry.packaging.api import LoadedModel, load_model, save_model
    from dockyard.registry.packaging.manifest import Manifest, package_digest, read_manifest
    from dockyard.registry.packaging.signature import infer_signature

__all__ = [
    "LoadedModel",
    "Manifest",
    "ModelInputError",
    "UntrustedModel",
    "infer_signature",
    "load_model",
    "package_digest",
    "read_manifest",
    "save_model",
]

_LAZY: dict[str, str] = {
    "LoadedModel": "dockyard.registry.packaging.api",
    "load_model": "dockyard.registry.packaging.api",
    "save_model": "dockyard.registry.packaging.api",
    "Manifest": "dockyard.registry.packaging.manifest",
    "package_digest": "dockyard.registry.packaging.manifest",
    "read_manifest": "dockyard.registry.packaging.manifest",
    "infer_signature": "dockyard.registry.packaging.signature",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
