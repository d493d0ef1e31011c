"""The package manifest: what a model package holds, and the proof that it is intact.

A model package is a folder with ``manifest.json`` plus the files the manifest lists. This
module reads and validates manifests, computes the package digest and verifies a folder
against its manifest. It imports nothing heavy (no NumPy, no frameworks).

``manifest.json`` (``format_version`` 1)::

    {"format_version": 1, "flavor": "sklearn", "framework": {"name": ..., "version": ...},
     "task": "classification" | "regression" | null, "serialization": "skops" | ...,
     "trusted_pickle": false, "signature": {...}, "input_example": "input_example.json" | null,
     "requirements": [...], "skops_trusted_types": [...], "flavor_config": {...},
     "files": {"model.skops": {"sha256": "<64 hex>", "size": 123}, ...},
     "created_time": <ms>, "dockyard_version": "0.1.0"}

``files`` lists every file of the package except ``manifest.json`` itself. Paths are POSIX
relative paths that pass :func:`dockyard.artifacts.paths.safe_relpath` (no ``..``, no absolute
path, no backslash...), so a manifest can never point a loader outside its folder.

``flavor_config`` holds flavor-specific settings (which file holds the model, the wrapper class
of an XGBoost/LightGBM scikit-learn estimator, ONNX input names...).

**Package digest** (:func:`package_digest`): the SHA-256 (64 lowercase hex digits) of the
canonical JSON (sorted keys, no whitespace, UTF-8) of the whole manifest *except*
``created_time`` and ``dockyard_version``. It therefore binds the file hashes, the flavor, the
signature, the serialization, the pickle-trust flag and the recorded trusted skops types: any
edit of the manifest that could change what a load does changes the digest. The two excluded
fields are bookkeeping, so saving the same model twice with a deterministic serializer gives
the same digest. The registry stores the digest on the model version and passes it to
``load_model(..., expected_digest=...)``.

**Verification** (:func:`verify_package`): before anything is deserialised, every listed file is
read (regular files only: symlinks are refused), its size and SHA-256 compared with the
manifest, and any file in the folder that the manifest does not list is refused. The verified
bytes are returned and the flavors deserialise *those bytes*, never the file again, so a file
swapped on disk after the check cannot be loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from dockyard.artifacts.paths import safe_relpath
from dockyard.core.errors import IntegrityError, InvalidInput, NotFound, UnsafePath

__all__ = [
    "FLAVORS",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "PICKLE_SERIALIZATIONS",
    "SERIALIZATIONS",
    "Manifest",
    "package_digest",
    "read_manifest",
    "sha256_bytes",
    "verify_package",
]

FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
FLAVORS: Final[tuple[str, ...]] = ("sklearn", "xgboost", "lightgbm", "onnx", "python_function")
SERIALIZATIONS: Final[tuple[str, ...]] = (
    "skops",
    "native",
    "onnx",
    "pickle",
    "cloudpickle",
    "joblib",
)
#: Serializations that can run arbitrary code when read: written and read only with trust.
PICKLE_SERIALIZATIONS: Final[frozenset[str]] = frozenset({"pickle", "cloudpickle", "joblib"})
TASKS: Final[tuple[str, ...]] = ("classification", "regression")

#: Fields left out of the package digest (bookkeeping that does not change a load).
_UNDIGESTED: Final = frozenset({"created_time", "dockyard_version"})
_MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")


def sha256_bytes(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated ``manifest.json`` (see the module docstring for the format)."""

    flavor: str
    framework: dict[str, str]
    serialization: str
    files: dict[str, dict[str, Any]]
    signature: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    trusted_pickle: bool = False
    input_example: str | None = None
    requirements: list[str] = field(default_factory=list)
    skops_trusted_types: list[str] = field(default_factory=list)
    flavor_config: dict[str, Any] = field(default_factory=dict)
    created_time: int = 0
    dockyard_version: str = ""
    format_version: int = FORMAT_VERSION

    # -- conversion ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (a fresh, deep-copied dict)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.loads(json.dumps(out))

    def to_json(self) -> str:
        """Pretty JSON, as written to ``manifest.json``."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Validate a manifest's JSON form; :class:`InvalidInput` names the first bad field."""
        if not isinstance(data, Mapping):
            raise InvalidInput("manifest.json must hold a JSON object")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidInput("manifest.json: 'format_version' must be an integer")
        if version > FORMAT_VERSION:
            raise InvalidInput(
                f"manifest.json has format_version {version}, newer than this Dockyard "
                f"understands ({FORMAT_VERSION}); upgrade Dockyard to load this package"
            )
        if version < 1:
            raise InvalidInput(f"manifest.json: unknown format_version {version}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"manifest.json: unknown field(s) {unknown}")

        flavor = _req_str(data, "flavor")
        if flavor not in FLAVORS:
            raise InvalidInput(f"manifest.json: unknown flavor {flavor!r}; known: {list(FLAVORS)}")
        serialization = _req_str(data, "serialization")
        if serialization not in SERIALIZATIONS:
            raise InvalidInput(
                f"manifest.json: unknown serialization {serialization!r}; "
                f"known: {list(SERIALIZATIONS)}"
            )
        framework = data.get("framework")
        if not isinstance(framework, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in framework.items()
        ):
            raise InvalidInput("manifest.json: 'framework' must map strings to strings")
        task = data.get("task")
        if task is not None and task not in TASKS:
            raise InvalidInput(f"manifest.json: 'task' must be one of {list(TASKS)} or null")
        trusted = data.get("trusted_pickle", False)
        if not isinstance(trusted, bool):
            raise InvalidInput("manifest.json: 'trusted_pickle' must be true or false")
        if serialization in PICKLE_SERIALIZATIONS and not trusted:
            raise InvalidInput(
                f"manifest.json: serialization {serialization!r} requires trusted_pickle: true"
            )
        files = _validate_files(data.get("files"))
        example = data.get("input_example")
        if example is not None:
            if not isinstance(example, str):
                raise InvalidInput("manifest.json: 'input_example' must be a file name or null")
            example = safe_relpath(example)
            if example not in files:
                raise InvalidInput(
                    f"manifest.json: input example {example!r} is not among the listed files"
                )
        signature = data.get("signature") or {}
        if not isinstance(signature, Mapping):
            raise InvalidInput("manifest.json: 'signature' must be an object")
        from dockyard.registry.packaging.signature import validate_signature

        signature = validate_signature(dict(signature))
        requirements = _str_list(data, "requirements")
        skops_types = _str_list(data, "skops_trusted_types")
        config = data.get("flavor_config") or {}
        if not isinstance(config, Mapping):
            raise InvalidInput("manifest.json: 'flavor_config' must be an object")
        created = data.get("created_time", 0)
        if not isinstance(created, int) or isinstance(created, bool):
            raise InvalidInput("manifest.json: 'created_time' must be an integer (ms)")
        dy_version = data.get("dockyard_version", "")
        if not isinstance(dy_version, str):
            raise InvalidInput("manifest.json: 'dockyard_version' must be a string")
        return cls(
            format_version=version,
            flavor=flavor,
            framework=dict(framework),
            task=task,
            serialization=serialization,
            trusted_pickle=trusted,
            signature=signature,
            input_example=example,
            requirements=requirements,
            skops_trusted_types=skops_types,
            flavor_config=json.loads(json.dumps(dict(config))),
            files=files,
            created_time=created,
            dockyard_version=dy_version,
        )

    # -- conveniences -------------------------------------------------------------------------

    @property
    def digest(self) -> str:
        """:func:`package_digest` of this manifest."""
        return package_digest(self)

    @property
    def classes(self) -> list[Any] | None:
        """Class labels of a classifier (from the signature), else ``None``."""
        classes = self.signature.get("classes")
        return list(classes) if classes is not None else None

    def model_file(self) -> str:
        """The file the flavor deserialises (``flavor_config["model_file"]``)."""
        name = self.flavor_config.get("model_file")
        if not isinstance(name, str):
            raise InvalidInput("manifest.json: flavor_config.model_file is missing")
        name = safe_relpath(name)
        if name not in self.files:
            raise IntegrityError(
                f"model package: the model file {name!r} is not listed in the manifest's files",
                path=name,
            )
        return name


def _req_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"manifest.json: {key!r} must be a non-empty string")
    return value


def _str_list(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"manifest.json: {key!r} must be a list of strings")
    return list(value)


def _validate_files(files: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(files, Mapping) or not files:
        raise InvalidInput("manifest.json: 'files' must be a non-empty object")
    out: dict[str, dict[str, Any]] = {}
    for raw_path, entry in files.items():
        try:
            path = safe_relpath(raw_path)
        except UnsafePath as exc:
            raise UnsafePath(
                f"manifest.json lists an unsafe file path: {exc.message}", **exc.details
            ) from None
        if path != raw_path or path == MANIFEST_NAME:
            raise UnsafePath(f"manifest.json lists a file it may not: {raw_path!r}", path=raw_path)
        if not isinstance(entry, Mapping):
            raise InvalidInput(f"manifest.json: entry of {path!r} must be an object")
        sha = entry.get("sha256")
        size = entry.get("size")
        if not isinstance(sha, str) or not _SHA256_RE.match(sha):
            raise InvalidInput(f"manifest.json: sha256 of {path!r} must be 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"manifest.json: size of {path!r} must be a non-negative integer")
        out[path] = {"sha256": sha, "size": size}
    return out


def package_digest(manifest: Manifest | Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of the manifest minus its bookkeeping fields.

    See the module docstring for exactly what is covered. Accepts a :class:`Manifest` or its
    dict form.
    """
    data = manifest.to_dict() if isinstance(manifest, Manifest) else dict(manifest)
    body = {k: v for k, v in data.items() if k not in _UNDIGESTED}
    return sha256_bytes(_canonical(body))


def _normalise_digest(digest: str) -> str:
    value = digest.strip().lower()
    return value.removeprefix("sha256:")


def _lstat_regular(path: Path, shown: str) -> os.stat_result:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise IntegrityError(
            f"model package is incomplete: file {shown!r} listed in the manifest is missing",
            path=shown,
        ) from None
    if stat.S_ISLNK(st.st_mode):
        raise IntegrityError(
            f"model package file {shown!r} is a symbolic link; packages hold regular files only",
            path=shown,
        )
    if not stat.S_ISREG(st.st_mode):
        raise IntegrityError(f"model package entry {shown!r} is not a regular file", path=shown)
    return st


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate ``<path>/manifest.json`` (``path`` may also name the file itself)."""
    folder = Path(path)
    target = (
        folder if folder.name == MANIFEST_NAME and not folder.is_dir() else folder / MANIFEST_NAME
    )
    if not target.parent.is_dir():
        raise NotFound(f"model package folder not found: {os.fspath(path)!r}", path=str(path))
    if not target.exists() and not target.is_symlink():
        raise NotFound(
            f"not a Dockyard model package: {os.fspath(target.parent)!r} has no {MANIFEST_NAME}",
            path=str(path),
        )
    st = _lstat_regular(target, MANIFEST_NAME)
    if st.st_size > _MAX_MANIFEST_BYTES:
        raise InvalidInput(f"{MANIFEST_NAME} is too large ({st.st_size} bytes)")
    raw = target.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            f"{MANIFEST_NAME} of {os.fspath(folder)!r} is not valid JSON: {exc}"
        ) from None
    return Manifest.from_dict(data)


def _folder_files(root: Path) -> list[str]:
    """Every entry under ``root`` as a relative POSIX path (folders descended, links not)."""
    out: list[str] = []
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                rel = f"{prefix}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                else:
                    out.append(rel)
    return sorted(out)


def verify_package(
    path: str | os.PathLike[str],
    manifest: Manifest | None = None,
    *,
    expected_digest: str | None = None,
) -> tuple[Manifest, dict[str, bytes]]:
    """Check a package folder against its manifest; return the manifest and the verified bytes.

    Raises :class:`~dockyard.core.errors.IntegrityError` naming the file for a missing,
    resized, altered, linked or unlisted file, or naming ``manifest.json`` when the package
    digest differs from ``expected_digest``.
    """
    root = Path(path)
    manifest = manifest or read_manifest(root)
    if expected_digest is not None:
        actual = manifest.digest
        if _normalise_digest(expected_digest) != actual:
            raise IntegrityError(
                f"model package {os.fspath(root)!r}: {MANIFEST_NAME} does not match the "
                f"recorded package digest (expected {_normalise_digest(expected_digest)}, "
                f"got {actual}); the manifest was altered or this is another package",
                path=MANIFEST_NAME,
                expected=expected_digest,
                actual=actual,
            )
    present = set(_folder_files(root)) - {MANIFEST_NAME}
    unlisted = sorted(present - set(manifest.files))
    if unlisted:
        raise IntegrityError(
            f"model package {os.fspath(root)!r} holds file(s) its manifest does not list: "
            f"{', '.join(repr(u) for u in unlisted[:10])}; a package may hold only the files "
            "its manifest lists",
            path=unlisted[0],
        )
    blobs: dict[str, bytes] = {}
    for rel, entry in sorted(manifest.files.items()):
        file_path = root.joinpath(*rel.split("/"))
        for parent in list(file_path.relative_to(root).parents)[:-1]:
            if (root / parent).is_symlink():
                raise IntegrityError(
                    f"model package file {rel!r} lies under a symbolic link", path=rel
                )
        st = _lstat_regular(file_path, rel)
        if st.st_size != entry["size"]:
            raise IntegrityError(
                f"model package file {rel!r} has {st.st_size} bytes, the manifest says "
                f"{entry['size']}: it was altered or truncated",
                path=rel,
            )
        data = file_path.read_bytes()
        if len(data) != entry["size"] or sha256_bytes(data) != entry["sha256"]:
            raise IntegrityError(
                f"model package file {rel!r} does not match its sha256 in the manifest: "
                "it was tampered with or corrupted; refusing to load it",
                path=rel,
                expected=entry["sha256"],
                actual=sha256_bytes(data),
            )
        blobs[rel] = data
    return manifest, blobs
