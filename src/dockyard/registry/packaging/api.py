"""Save a model as a package, load it back verified, and predict through its signature."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from dockyard.core.errors import AlreadyExists, InvalidInput
from dockyard.registry.packaging.errors import ModelInputError
from dockyard.registry.packaging.flavors import detect_flavor, get_flavor
from dockyard.registry.packaging.flavors.base import Adapter
from dockyard.registry.packaging.manifest import (
    FLAVORS,
    MANIFEST_NAME,
    PICKLE_SERIALIZATIONS,
    Manifest,
    sha256_bytes,
    verify_package,
)
from dockyard.registry.packaging.signature import (
    EXTRA_COLUMNS_MODES,
    infer_schema,
    json_safe,
    output_schema_of,
    prepare_input,
    validate_signature,
)

__all__ = ["LoadedModel", "load_model", "save_model"]

EXAMPLE_FILE: Final = "input_example.json"
REQUIREMENTS_FILE: Final = "requirements.txt"
#: At most this many rows of ``input_example`` are stored (the signature sees them all).
MAX_EXAMPLE_ROWS: Final = 100


# -- input example ----------------------------------------------------------------------------


def _head(example: Any, n: int) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(example, pd.DataFrame | pd.Series | np.ndarray):
        return example[:n] if not isinstance(example, pd.DataFrame) else example.head(n)
    if isinstance(example, list):
        return example[:n]
    if isinstance(example, Mapping) and not all(
        isinstance(v, str | int | float | bool) or v is None for v in example.values()
    ):
        return {k: list(v)[:n] for k, v in example.items()}
    return example


def _example_json(example: Any, schema: dict[str, Any] | None) -> bytes | None:
    import numpy as np

    if schema is None:
        return None
    if schema["kind"] == "columns":
        frame = prepare_input(schema, example, extra_columns="drop", warned=set())
        names = [c["name"] for c in schema["columns"]]
        rows = [
            [json_safe(v) for v in row]
            for row in frame[names].astype(object).itertuples(index=False, name=None)
        ]
        body: dict[str, Any] = {"kind": "columns", "columns": names, "data": rows}
    else:
        arr = np.asarray(example)
        body = {"kind": "tensor", "dtype": str(arr.dtype), "data": json_safe(arr.tolist())}
    return (json.dumps(body, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


def _example_from_json(data: bytes) -> Any:
    import numpy as np
    import pandas as pd

    body = json.loads(data.decode("utf-8"))
    if body.get("kind") == "tensor":
        return np.asarray(body["data"], dtype=body.get("dtype"))
    return pd.DataFrame(body["data"], columns=body["columns"])


# -- saving -----------------------------------------------------------------------------------


def _check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise AlreadyExists(f"cannot save a model package to {str(dest)!r}: it is a file")
    if dest.is_dir() and any(dest.iterdir()):
        raise AlreadyExists(
            f"cannot save a model package to {str(dest)!r}: the folder is not empty",
            path=str(dest),
        )


def _hash_folder(folder: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        data = file.read_bytes()
        files[rel] = {"sha256": sha256_bytes(data), "size": len(data)}
    return files


def _dockyard_version() -> str:
    from dockyard import __version__

    return __version__


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Mapping[str, Any] | None = None,
    task: str | None = None,
    pip_requirements: list[str] | None = None,
    trust_pickle: bool = False,
    serialization: str | None = None,
) -> Manifest:
    """Write ``model`` as a package into ``path`` (absent or an empty folder); return its manifest.

    ``flavor`` is inferred from the model's type when None (scikit-learn estimator/pipeline,
    XGBoost Booster/XGBModel, LightGBM Booster/LGBMModel, ONNX ModelProto or bytes, anything
    with ``predict`` -> ``python_function``). The signature is inferred from ``input_example``
    (and the model's prediction on it) unless ``signature`` is given. ``task`` defaults to
    what the model says (classifier/regressor). ``pip_requirements`` replaces the inferred
    requirements. ``serialization`` (sklearn and python_function): ``"skops"`` (default) or,
    only with ``trust_pickle=True``, ``"cloudpickle"``/``"pickle"``/``"joblib"``.

    The manifest's ``trusted_pickle`` is true exactly when a pickle-family serialization was
    written (so a python_function object that skops can hold is stored with skops even when
    ``trust_pickle=True`` was passed, and its package needs no trust to load).

    The package is built in a temporary sibling folder and renamed into place, so ``path``
    never holds half a package.
    """
    dest = Path(path)
    _check_destination(dest)
    if flavor is None:
        flavor = detect_flavor(model)
    if flavor not in FLAVORS:
        raise InvalidInput(f"unknown flavor {flavor!r}; known flavors: {list(FLAVORS)}")
    if task is not None and task not in ("classification", "regression"):
        raise InvalidInput(f"task must be 'classification', 'regression' or None, not {task!r}")
    module = get_flavor(flavor)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        saved = module.save(model, tmp, trust_pickle=trust_pickle, serialization=serialization)
        if signature is not None:
            sig = validate_signature(dict(signature))
        else:
            inputs = infer_schema(input_example) if input_example is not None else None
            sig = validate_signature(
                {"inputs": inputs or saved.adapter.default_inputs, "outputs": None}
            )
        example = _head(input_example, MAX_EXAMPLE_ROWS) if input_example is not None else None
        if example is not None and sig["inputs"] is not None:
            prepared = prepare_input(sig["inputs"], example, extra_columns="drop", warned=set())
            if sig["outputs"] is None:
                try:
                    prediction = saved.adapter.predict(prepared)
                except ModelInputError:
                    raise
                except Exception as exc:
                    raise InvalidInput(
                        f"the model failed to predict on input_example "
                        f"({type(exc).__name__}: {exc}); give an example the model accepts"
                    ) from exc
                sig["outputs"] = output_schema_of(_as_array(prediction))
        if sig.get("classes") is None:
            sig["classes"] = saved.classes
        example_name = None
        if example is not None:
            example_bytes = _example_json(example, sig["inputs"])
            if example_bytes is not None:
                (tmp / EXAMPLE_FILE).write_bytes(example_bytes)
                example_name = EXAMPLE_FILE
        requirements = (
            list(pip_requirements) if pip_requirements is not None else (saved.requirements)
        )
        (tmp / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in requirements))
        manifest = Manifest(
            flavor=flavor,
            framework=saved.framework,
            task=task if task is not None else saved.task,
            serialization=saved.serialization,
            trusted_pickle=saved.serialization in PICKLE_SERIALIZATIONS,
            signature=sig,
            input_example=example_name,
            requirements=requirements,
            skops_trusted_types=saved.skops_trusted_types,
            flavor_config=saved.flavor_config,
            files=_hash_folder(tmp),
            created_time=int(time.time() * 1000),
            dockyard_version=_dockyard_version(),
        )
        manifest = Manifest.from_dict(manifest.to_dict())  # the same checks a loader applies
        (tmp / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        if dest.is_dir():
            dest.rmdir()  # empty (checked above); rename cannot replace a folder on every OS
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


# -- loading ----------------------------------------------------------------------------------


def _as_array(prediction: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(prediction, pd.DataFrame | pd.Series):
        return prediction.to_numpy()
    if isinstance(prediction, np.ndarray):
        return prediction
    return np.asarray(prediction)


class LoadedModel:
    """A verified, loaded model package with one ``predict`` for every flavor.

    ``predict(data)`` takes a pandas DataFrame, a dict of columns, a list of records or a
    NumPy array, validates it against the signature (raising
    :class:`~dockyard.registry.packaging.ModelInputError`), reorders and casts the columns,
    and returns a NumPy array. ``predict_proba`` exists only when the model offers it
    (``hasattr(model, "predict_proba")`` tells). ``raw`` is the underlying framework object.
    ``extra_columns`` (``"drop"`` with one warning per column name, or ``"reject"``) can be
    set per model or per call.
    """

    def __init__(
        self,
        manifest: Manifest,
        adapter: Adapter,
        *,
        path: str | os.PathLike[str] | None = None,
        extra_columns: str = "drop",
        example_bytes: bytes | None = None,
    ) -> None:
        if extra_columns not in EXTRA_COLUMNS_MODES:
            raise InvalidInput(
                f"extra_columns must be one of {list(EXTRA_COLUMNS_MODES)}, not {extra_columns!r}"
            )
        self.manifest = manifest
        self.path = Path(path) if path is not None else None
        self.extra_columns = extra_columns
        self._adapter = adapter
        self._example_bytes = example_bytes
        self._warned: set[str] = set()

    # -- descriptive --------------------------------------------------------------------------

    @property
    def raw(self) -> Any:
        """The underlying model object (estimator, Booster, InferenceSession, user object)."""
        return self._adapter.raw

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def task(self) -> str | None:
        return self.manifest.task

    @property
    def signature(self) -> dict[str, Any]:
        return self.manifest.signature

    @property
    def classes(self) -> list[Any] | None:
        return self.manifest.classes

    @property
    def digest(self) -> str:
        """The package digest (see :func:`~dockyard.registry.packaging.package_digest`)."""
        return self.manifest.digest

    @property
    def input_example(self) -> Any:
        """The stored input example (DataFrame or array), or None."""
        if self._example_bytes is None:
            return None
        return _example_from_json(self._example_bytes)

    def __repr__(self) -> str:
        where = f" from {str(self.path)!r}" if self.path else ""
        return f"<LoadedModel {self.flavor} ({self.manifest.serialization}){where}>"

    # -- prediction ---------------------------------------------------------------------------

    def prepare(self, data: Any, *, extra_columns: str | None = None) -> Any:
        """Validate and cast ``data`` to what the model takes (without predicting)."""
        return prepare_input(
            self.signature.get("inputs"),
            data,
            extra_columns=extra_columns or self.extra_columns,
            warned=self._warned,
        )

    def predict(self, data: Any, *, extra_columns: str | None = None) -> Any:
        """Validate ``data`` against the signature and return the model's predictions."""
        return _as_array(self._adapter.predict(self.prepare(data, extra_columns=extra_columns)))

    @property
    def predict_proba(self) -> Callable[..., Any]:
        """Class probabilities (classifiers whose flavor supports them); else AttributeError."""
        proba = self._adapter.predict_proba
        if proba is None:
            raise AttributeError(
                f"this {self.flavor} model has no predict_proba (it is not a probabilistic "
                "classifier)"
            )

        def predict_proba(data: Any, *, extra_columns: str | None = None) -> Any:
            return _as_array(proba(self.prepare(data, extra_columns=extra_columns)))

        return predict_proba


#: (package digest, trust_pickle, trusted module roots or None): what a load depends on.
_MemoKey = tuple[str, bool, tuple[str, ...] | None]


class _LoadedModels:
    """Models this process already deserialised, by package digest: a load of the same package
    again (the same verified bytes, since the digest covers every file's sha256 and the
    manifest) returns an independent deep copy instead of running the deserialiser again.

    Every load still verifies every file before this is consulted, so a tampered package is
    refused exactly as before; only the deserialisation (skops' audit and rebuild: tens of
    milliseconds for a boosted pipeline, against about 1 ms for the copy) is skipped. Bounded
    by count and by the packages' total size. Only adapters whose prediction functions are
    bound methods of the model are kept (a deep copy rebinds those to the copy; a closure would
    still point at the kept original), and only objects that deep-copy at all (not an ONNX
    Runtime session): the others are deserialised afresh on every load.
    """

    def __init__(self, max_items: int = 16, max_bytes: int = 256 * 1024 * 1024) -> None:
        import threading
        from collections import OrderedDict

        self._items: OrderedDict[_MemoKey, tuple[Adapter, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_items = max_items
        self.max_bytes = max_bytes

    def get(self, key: _MemoKey) -> Adapter | None:
        import copy

        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
        return copy.deepcopy(hit[0])

    def put(self, key: _MemoKey, adapter: Adapter, size: int) -> None:
        import copy

        if size > self.max_bytes or not _copies_cleanly(adapter):
            return
        try:
            kept = copy.deepcopy(adapter)  # the caller's object stays theirs alone
        except Exception:  # not copyable (native handles): load it afresh each time
            return
        with self._lock:
            self._items[key] = (kept, size)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items or (
                sum(n for _, n in self._items.values()) > self.max_bytes
            ):
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _copies_cleanly(adapter: Adapter) -> bool:
    return all(
        getattr(fn, "__self__", None) is adapter.raw
        for fn in (adapter.predict, adapter.predict_proba)
        if fn is not None
    )


_LOADED = _LoadedModels()


def load_model(
    path: str | os.PathLike[str],
    *,
    trust_pickle: bool = False,
    expected_digest: str | None = None,
    extra_columns: str = "drop",
    trusted_modules: Sequence[str] | None = None,
) -> LoadedModel:
    """Verify the package at ``path`` and load it.

    Before anything is deserialised, every file's size and SHA-256 are checked against the
    manifest (and the manifest against ``expected_digest`` when given): a mismatch, a missing,
    linked or unlisted file raises :class:`~dockyard.core.errors.IntegrityError` naming it.
    skops files are loaded with the type policy of :mod:`dockyard.registry.packaging.trust`
    (:class:`~dockyard.registry.packaging.UntrustedModel` names refused types); a pickle-based
    package needs ``trust_pickle=True``. ``trusted_modules`` (a server's policy) limits the
    recorded skops types honoured to those module roots.
    """
    if extra_columns not in EXTRA_COLUMNS_MODES:
        raise InvalidInput(
            f"extra_columns must be one of {list(EXTRA_COLUMNS_MODES)}, not {extra_columns!r}"
        )
    manifest, blobs = verify_package(path, expected_digest=expected_digest)
    if manifest.serialization in PICKLE_SERIALIZATIONS:
        from dockyard.registry.packaging.trust import require_pickle_trust

        require_pickle_trust(
            trust_pickle,
            f"{os.fspath(path)}/{manifest.model_file()}",
            manifest.serialization,
            "load",
        )
    policy = None if trusted_modules is None else tuple(sorted(trusted_modules))
    key = (manifest.digest, trust_pickle, policy)
    adapter = _LOADED.get(key)
    if adapter is None:
        adapter = get_flavor(manifest.flavor).load(
            manifest, blobs, trust_pickle=trust_pickle, trusted_modules=policy
        )
        _LOADED.put(key, adapter, sum(map(len, blobs.values())))
    example = blobs.get(manifest.input_example) if manifest.input_example else None
    return LoadedModel(
        manifest, adapter, path=path, extra_columns=extra_columns, example_bytes=example
    )
