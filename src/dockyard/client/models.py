"""The fluent model API: ``dy.log_model``, ``dy.load_model``, ``dy.register_model``.

``log_model`` saves a model as a package (:func:`dockyard.registry.packaging.save_model`: skops
for scikit-learn, native files for XGBoost/LightGBM, ONNX, or a python_function) into a private
temporary folder and logs it as the active run's artifacts under ``artifact_path``. It returns a
:class:`ModelInfo`, a ``str`` equal to ``runs:/<run_id>/<artifact_path>`` that also carries the
manifest's flavor and digest and, when ``registered_model_name`` was given, the registered
version.

``load_model`` accepts

* ``runs:/<run_id>/<artifact_path>`` -- a package logged by a run,
* ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/<name>/<status>``
  (``latest`` too) -- resolved by the registry; the package is materialised in the local cache
  (``<home>/cache/packages/<digest>``, re-verified on every reuse) and loaded with the digest
  the registry recorded as the expected one; the load is audited,
* a local package folder (one holding ``manifest.json``).

Every load verifies each file's sha256 and size against the manifest before deserialising
anything; a pickle-based package needs ``trust_pickle=True``. Heavy modules (the packaging code,
pandas, the frameworks) are imported only when these functions run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from dockyard.client.client import Client
    from dockyard.core.registry_entities import ModelVersion
    from dockyard.registry.packaging import LoadedModel

__all__ = ["ModelInfo", "load_model", "log_model", "register_model"]

_ACCEPTED_LOAD = (
    "runs:/<run_id>/<artifact_path>, models:/<name>/<version>, models:/<name>@<alias>, "
    "models:/<name>/<status>, or a local package folder holding manifest.json"
)


class ModelInfo(str):
    """What :func:`log_model` returns: the model URI (``runs:/<run_id>/<path>``) as a string,
    with details as attributes (like MLflow's ``ModelInfo``).

    Being a ``str``, it passes straight to :func:`load_model` or :func:`register_model` and
    compares equal to the URI. Attributes: ``model_uri``, ``run_id``, ``artifact_path``,
    ``flavor``, ``package_digest``, ``registered_model_name`` and ``version`` (both None unless
    ``registered_model_name`` was given), ``model_version`` (the registered
    :class:`~dockyard.core.registry_entities.ModelVersion` or None), ``manifest``.
    """

    model_uri: str
    run_id: str
    artifact_path: str
    flavor: str
    package_digest: str
    registered_model_name: str | None
    version: int | None
    model_version: ModelVersion | None
    manifest: Any

    def __new__(
        cls,
        run_id: str,
        artifact_path: str,
        *,
        flavor: str,
        package_digest: str,
        manifest: Any = None,
        model_version: ModelVersion | None = None,
    ) -> ModelInfo:
        uri = f"runs:/{run_id}/{artifact_path}"
        self = super().__new__(cls, uri)
        self.model_uri = uri
        self.run_id = run_id
        self.artifact_path = artifact_path
        self.flavor = flavor
        self.package_digest = package_digest
        self.manifest = manifest
        self.model_version = model_version
        self.registered_model_name = model_version.name if model_version else None
        self.version = model_version.version if model_version else None
        return self

    @property
    def registered_uri(self) -> str | None:
        """``models:/<name>/<version>`` when the model was registered, else None."""
        if self.model_version is None:
            return None
        return f"models:/{self.model_version.name}/{self.model_version.version}"

    def __repr__(self) -> str:
        extra = f" registered={self.registered_uri}" if self.model_version else ""
        return f"<ModelInfo {self.model_uri} flavor={self.flavor}{extra}>"

    def __reduce__(self) -> Any:  # pickling keeps the plain URI string
        return (str, (str(self),))


def _client() -> Client:
    from dockyard.client.fluent import get_client

    return get_client()


def _manifest_field(manifest: Any, name: str) -> Any:
    if isinstance(manifest, Mapping):
        return manifest.get(name)
    return getattr(manifest, name, None)


def _check_artifact_path(artifact_path: str) -> str:
    from dockyard.artifacts.paths import safe_prefix

    if not isinstance(artifact_path, str) or not artifact_path.strip("/"):
        raise InvalidInput(
            f"artifact_path must be a non-empty relative path like 'model', got {artifact_path!r}"
        )
    return safe_prefix(artifact_path)


def log_model(
    model: Any,
    artifact_path: str = "model",
    *,
    input_example: Any = None,
    signature: Mapping[str, Any] | None = None,
    task: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    trust_pickle: bool = False,
    flavor: str | None = None,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Save ``model`` as a package and log it in the active run under ``artifact_path``.

    The flavor is inferred from the model's type unless ``flavor`` is given; the signature from
    ``input_example`` (a DataFrame's first rows, say) unless ``signature`` is given.
    ``trust_pickle=True`` allows a pickle-based package (recorded in the manifest and, on
    registration, in the audit log). With ``registered_model_name`` the package is registered
    at once as a new version of that model (created if missing).

    Returns a :class:`ModelInfo`: the string ``runs:/<run_id>/<artifact_path>`` with
    ``.version`` set when the model was registered.
    """
    from dockyard.client.fluent import _current
    from dockyard.registry.packaging import package_digest, save_model

    run_id = _current().run_id
    prefix = _check_artifact_path(artifact_path)
    client = _client()
    # mkdtemp creates the folder readable by this user only (0700): a model may be sensitive.
    tmp = tempfile.mkdtemp(prefix="dockyard-model-")
    try:
        folder = Path(tmp) / "package"
        manifest = save_model(
            model,
            folder,
            flavor=flavor,
            input_example=input_example,
            signature=dict(signature) if signature is not None else None,
            task=task,
            pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
            trust_pickle=trust_pickle,
        )
        client.log_artifacts(run_id, folder, prefix)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info = ModelInfo(
        run_id,
        prefix,
        flavor=str(_manifest_field(manifest, "flavor")),
        package_digest=package_digest(manifest),
        manifest=manifest,
    )
    if registered_model_name is None:
        return info
    version = client.create_model_version(registered_model_name, info.model_uri)
    return ModelInfo(
        run_id,
        prefix,
        flavor=info.flavor,
        package_digest=info.package_digest,
        manifest=manifest,
        model_version=version,
    )


def _is_local_package(source: str | os.PathLike[str]) -> Path | None:
    if isinstance(source, str) and (source.startswith(("runs:/", "models:/")) or ":/" in source):
        return None
    path = Path(source).expanduser()
    if path.is_dir() and (path / "manifest.json").is_file():
        return path
    return None


def register_model(
    source: str | os.PathLike[str],
    name: str,
    *,
    description: str = "",
    tags: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Register a new version of model ``name`` (created if missing) from ``source``.

    ``source`` is ``runs:/<run_id>/<artifact_path>`` (a package a run logged), a
    ``models:/...`` URI (a copy of another version), or a local package folder that this
    process uploads (its files verified against its manifest first). Anything else -- a URL, a
    ``file:`` URI, a path that is not a package -- is refused by the registry.
    """
    client = _client()
    local = _is_local_package(source)
    if local is not None:
        return client.register_package(name, local, description=description, tags=tags)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    return client.create_model_version(name, str(source), description=description, tags=tags)


def _parse_runs_uri(uri: str) -> tuple[str, str]:
    from dockyard.artifacts.paths import safe_prefix
    from dockyard.tracking import _validation as v

    rest = uri[len("runs:/") :]
    run_id, _, path = rest.partition("/")
    if not run_id or not path.strip("/"):
        raise InvalidInput(f"model URI {uri!r} must look like runs:/<run_id>/<artifact_path>")
    return v.check_run_id(run_id), safe_prefix(path)


def load_model(
    uri: str | os.PathLike[str],
    *,
    trust_pickle: bool = False,
    extra_columns: str | None = None,
    client: Client | None = None,
) -> LoadedModel:
    """Load a model package by URI or local folder; returns an object with ``predict``.

    Accepted: ``runs:/<run_id>/<artifact_path>``, ``models:/<name>/<version>``,
    ``models:/<name>@<alias>``, ``models:/<name>/<status>`` and a local package folder.
    Every file is verified (sha256 and size) against the manifest, and for ``models:/`` URIs
    the manifest against the package digest the registry recorded, before anything is
    deserialised: a tampered package raises :class:`~dockyard.core.errors.IntegrityError`.
    ``extra_columns`` says what ``predict`` does with input columns the signature does not
    name: ``"drop"`` them (one ``UserWarning`` per column) or ``"reject"`` the input; by
    default the ``model_extra_columns`` setting (``DOCKYARD_MODEL_EXTRA_COLUMNS``, ``drop``).
    """
    from dockyard.registry.packaging.api import EXTRA_COLUMNS_MODES

    if extra_columns is None:
        extra_columns = str((client or _client()).settings.model_extra_columns)
        if extra_columns not in EXTRA_COLUMNS_MODES:
            raise InvalidInput(
                f"setting DOCKYARD_MODEL_EXTRA_COLUMNS must be one of "
                f"{list(EXTRA_COLUMNS_MODES)}, not {extra_columns!r}"
            )
    if extra_columns not in EXTRA_COLUMNS_MODES:
        raise InvalidInput(
            f"extra_columns must be one of {list(EXTRA_COLUMNS_MODES)}, not {extra_columns!r}"
        )
    loaded = _load(uri, trust_pickle=trust_pickle, client=client)
    loaded.extra_columns = extra_columns
    return loaded  # type: ignore[no-any-return]


def _load(uri: str | os.PathLike[str], *, trust_pickle: bool, client: Client | None) -> Any:
    from dockyard.registry.packaging import load_model as load_package

    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri:
        raise InvalidInput(f"model URI must be a non-empty string: {_ACCEPTED_LOAD}")
    if uri.startswith("models:/"):
        # The registry resolves the URI, materialises the package in the local cache (verified
        # blobs), loads it with the digest it recorded as expected_digest, and audits the load.
        return (client or _client()).registry.load_model(uri, trust_pickle=trust_pickle)
    if uri.startswith("runs:/"):
        client = client or _client()
        run_id, prefix = _parse_runs_uri(uri)
        tmp = tempfile.mkdtemp(prefix="dockyard-load-")
        try:
            folder = client.download_artifacts(run_id, prefix, tmp)
            if not (folder / "manifest.json").is_file():
                raise NotFound(
                    f"run {run_id} has no model package at {prefix!r} (no manifest.json there)"
                )
            return load_package(folder, trust_pickle=trust_pickle)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if "://" in uri or uri.startswith(("file:", "http:", "https:", "s3:", "gs:")):
        raise InvalidInput(f"cannot load a model from {uri!r}; accepted: {_ACCEPTED_LOAD}")
    local = _is_local_package(uri)
    if local is None:
        raise InvalidInput(f"{uri!r} is not a model package folder; accepted: {_ACCEPTED_LOAD}")
    return load_package(local, trust_pickle=trust_pickle)
