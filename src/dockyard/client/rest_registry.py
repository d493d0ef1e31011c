"""The model registry over HTTP: :class:`RestRegistryService`.

Same public methods, signatures and return types as
:class:`dockyard.registry.service.RegistryService` (a test pins them), so the SDK and the CLI
use either one without knowing which. Results are the same domain objects
(:mod:`dockyard.core.registry_entities`), read back with their ``from_dict``; errors come back as
the service's exception classes with its messages (:class:`~dockyard.client.rest.RestTransport`
does that for every remote service).

Wire details:

* Model names and aliases are checked with the registry's own rules before they become URL
  segments (a ``/`` would change which route a URL hits), then percent-encoded.
* ``validate`` sends the holdout data inline, as columns (``{"columns", "dtypes"}``): the server
  never reads a file a client names. Missing values travel as ``null``; datetimes as ISO 8601
  strings with their dtype, so the server rebuilds the same DataFrame.
* ``download_package``, ``materialize`` and ``load_model`` fetch each package file with a
  streamed GET, checking it against the sha256 and size the registry recorded before it is
  renamed into place; ``materialize`` keeps verified packages in
  ``<home>/cache/packages/<package_digest>`` on this machine (``cache_dir`` to change it), and
  ``load_model`` deserialises here, on the client, never on the server. The cache and the
  download folder work as the local service's do: both use :mod:`dockyard.registry.cache`.
* ``create_model_version_from_files`` takes blobs already stored on the server; upload a local
  package's files first with :meth:`RestRegistryService.upload_blob` (``POST /api/v1/blobs``,
  streamed).
* ``validate(..., trust_pickle=True)`` is refused by the server (PermissionDenied): a server
  never unpickles because a request asks it to. Validate pickle-based packages in local mode.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.artifacts._private import create_private, publish_mode
from dockyard.artifacts.paths import safe_local_destination, safe_relpath
from dockyard.client.rest import (
    RestTransport,
    _seg,
    _upload_chunks,
    _VerifiedDownload,
    _wire_map,
)
from dockyard.core.entities import Page
from dockyard.core.errors import IntegrityError, InvalidInput, NotFound
from dockyard.core.registry_entities import (
    AliasEvent,
    Approval,
    ModelVersion,
    RegisteredModel,
    StatusEvent,
    ValidationResult,
)
from dockyard.core.wire import HOLDOUT_DTYPE_PATTERN
from dockyard.registry import cache as package_cache
from dockyard.registry.uris import check_alias, check_model_name, check_version, parse_model_uri

__all__ = ["RestRegistryService"]


def _name(name: Any) -> str:
    return _seg(check_model_name(name))


def _version(version: Any) -> int:
    return check_version(version)


def _opt_version(version: Any) -> int | None:
    return None if version is None else check_version(version)


def _mv_path(name: Any, version: Any) -> str:
    return f"/models/{_name(name)}/versions/{_version(version)}"


def _model(d: dict[str, Any]) -> RegisteredModel:
    return RegisteredModel.from_dict(d)


def _mv(d: dict[str, Any]) -> ModelVersion:
    return ModelVersion.from_dict(d)


# -- holdout data on the wire ----------------------------------------------------------------


def _cell(value: Any) -> Any:
    """One value as JSON: numpy scalars as Python ones, missing values (NaN, NaT) as null."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar -> Python scalar
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def holdout_payload(data: Any) -> dict[str, Any]:
    """The ``data`` field of a validate request: ``{"columns": {...}, "dtypes": {...}}``.

    Accepts a pandas DataFrame, a mapping of columns or a list of records (dicts).
    """
    if isinstance(data, Mapping):
        return {"columns": {str(k): [_cell(x) for x in v] for k, v in data.items()}}
    if isinstance(data, list | tuple) and all(isinstance(r, Mapping) for r in data):
        return {"records": [{str(k): _cell(x) for k, x in r.items()} for r in data]}
    if not (hasattr(data, "columns") and hasattr(data, "dtypes")):
        raise InvalidInput(
            "validation data must be a pandas DataFrame, a dict of columns or a list of "
            f"records, got {type(data).__name__}"
        )
    import re

    import pandas as pd

    pattern = re.compile(HOLDOUT_DTYPE_PATTERN)
    columns: dict[str, list[Any]] = {}
    dtypes: dict[str, str] = {}
    for name in data.columns:
        if not isinstance(name, str):
            raise InvalidInput(f"validation data column names must be strings, got {name!r}")
        series = data[name]
        dtype = str(series.dtype)
        if pattern.match(dtype):
            dtypes[name] = dtype
        values = series.astype(object).where(pd.notna(series), None).tolist()
        columns[name] = [_cell(v) for v in values]
    return {"columns": columns, "dtypes": dtypes}


# -- the service -----------------------------------------------------------------------------


class RestRegistryService(RestTransport):
    """:class:`~dockyard.registry.service.RegistryService`, spoken to a Dockyard server.

    Parameters are those of :class:`~dockyard.client.rest.RestTransport`, plus ``cache_dir``:
    where :meth:`materialize` keeps verified packages on this machine (default
    ``<DOCKYARD_HOME>/cache/packages``).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(base_url, token=token, timeout=timeout)
        if cache_dir is None:
            from dockyard.core.config import load_settings

            cache_dir = load_settings().home_path / "cache" / "packages"
        self.cache_dir = Path(cache_dir)

    # -- registered models -------------------------------------------------------------------

    def create_registered_model(
        self, name: str, description: str = "", tags: Mapping[str, Any] | None = None
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": _wire_map("tag", tags)}
        return _model(self._json("POST", "/models", body=body))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return _model(self._json("GET", f"/models/{_name(name)}"))

    def list_registered_models(
        self, max_results: int | None = None, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        d = self._json(
            "GET", "/models", params={"max_results": max_results, "page_token": page_token}
        )
        return Page([_model(x) for x in d["items"]], d["next_page_token"])

    def update_registered_model(self, name: str, description: str | None = None) -> RegisteredModel:
        d = self._json("PATCH", f"/models/{_name(name)}", body={"description": description})
        return _model(d)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        tag = _wire_map("tag", {key: value})
        path = f"/models/{_name(name)}/tags/{_segs(key)}"
        self._json("PUT", path, body={"value": tag[key]})

    # -- versions ----------------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        body = {"source": source, "description": description, "tags": _wire_map("tag", tags)}
        return _mv(self._json("POST", f"/models/{_name(name)}/versions", body=body))

    def create_model_version_from_files(
        self,
        name: str,
        files: Mapping[str, tuple[str, int] | Sequence[Any] | Mapping[str, Any]],
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        if not isinstance(files, Mapping) or not files:
            raise InvalidInput("files must be a non-empty mapping of path -> (sha256, size)")
        wire: dict[str, Any] = {}
        for path, entry in files.items():
            if isinstance(entry, Mapping):
                wire[path] = {"sha256": entry.get("sha256"), "size": entry.get("size")}
            elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
                wire[path] = {"sha256": entry[0], "size": entry[1]}
            else:
                raise InvalidInput(f"file {path!r} needs (sha256, size), got {entry!r}")
        body = {"files": wire, "description": description, "tags": _wire_map("tag", tags)}
        return _mv(self._json("POST", f"/models/{_name(name)}/versions", body=body))

    def upload_blob(self, stream: Iterable[bytes] | BinaryIO) -> tuple[str, int]:
        """Store one file's bytes on the server (streamed); returns its ``(sha256, size)``, as
        :meth:`create_model_version_from_files` takes them. Remote mode only: locally the
        artifact store is at hand (``artifacts.put_file``)."""
        d = self._json("POST", "/blobs", content=_upload_chunks(stream, None))
        return str(d["sha256"]), int(d["size"])

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        return _mv(self._json("GET", _mv_path(name, version)))

    def list_model_versions(
        self,
        name: str,
        status: str | Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        statuses = None if status is None else [status] if isinstance(status, str) else status
        d = self._json(
            "GET",
            f"/models/{_name(name)}/versions",
            params={
                "status": None if statuses is None else list(statuses),
                "max_results": max_results,
                "page_token": page_token,
            },
        )
        return Page([_mv(x) for x in d["items"]], d["next_page_token"])

    def update_model_version(
        self, name: str, version: int | str, description: str | None = None
    ) -> ModelVersion:
        return _mv(self._json("PATCH", _mv_path(name, version), body={"description": description}))

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: Any) -> None:
        tag = _wire_map("tag", {key: value})
        path = f"{_mv_path(name, version)}/tags/{_segs(key)}"
        self._json("PUT", path, body={"value": tag[key]})

    def resolve(self, uri_or_ref: str) -> ModelVersion:
        parse_model_uri(uri_or_ref)  # the service's own message for a malformed reference
        return _mv(self._json("GET", "/models/resolve", params={"uri": uri_or_ref}))

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        path = f"/models/{_name(name)}/aliases/{_seg(check_alias(alias))}"
        return _mv(self._json("PUT", path, body={"version": _version(version)}))

    def delete_alias(self, name: str, alias: str) -> None:
        self._json("DELETE", f"/models/{_name(name)}/aliases/{_seg(check_alias(alias))}")

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        d = self._json("GET", f"/models/{_name(name)}/aliases/history", params={"alias": alias})
        return [AliasEvent.from_dict(x) for x in d["items"]]

    # -- lifecycle ---------------------------------------------------------------------------

    def transition(
        self,
        name: str,
        version: int | str,
        to_status: str,
        *,
        reason: str | None = None,
        override_gate: bool = False,
    ) -> ModelVersion:
        body = {"to": to_status, "reason": reason, "override_gate": override_gate}
        return _mv(self._json("POST", f"{_mv_path(name, version)}/transition", body=body))

    def retire(
        self,
        name: str,
        version: int | str,
        *,
        reason: str,
        replacement_version: int | str | None = None,
    ) -> ModelVersion:
        body = {"reason": reason, "replacement_version": _opt_version(replacement_version)}
        return _mv(self._json("POST", f"{_mv_path(name, version)}/retire", body=body))

    def status_history(self, name: str, version: int | str) -> list[StatusEvent]:
        d = self._json("GET", f"{_mv_path(name, version)}/status-history")
        return [StatusEvent.from_dict(x) for x in d["items"]]

    # -- approvals ---------------------------------------------------------------------------

    def set_approval_policy(self, name: str, required: bool) -> RegisteredModel:
        body = {"require_approval": required}
        return _model(self._json("PUT", f"/models/{_name(name)}/approval-policy", body=body))

    def request_approval(self, name: str, version: int | str, comment: str = "") -> Approval:
        return self._approval_step(name, version, "request", comment)

    def approve(self, name: str, version: int | str, comment: str = "") -> Approval:
        return self._approval_step(name, version, "approve", comment)

    def reject(self, name: str, version: int | str, comment: str) -> Approval:
        return self._approval_step(name, version, "reject", comment)

    def _approval_step(self, name: str, version: int | str, action: str, comment: Any) -> Approval:
        body = {"action": action, "comment": "" if comment is None else comment}
        d = self._json("POST", f"{_mv_path(name, version)}/approvals", body=body)
        return Approval.from_dict(d)

    def approvals(self, name: str, version: int | str) -> list[Approval]:
        d = self._json("GET", f"{_mv_path(name, version)}/approvals")
        return [Approval.from_dict(x) for x in d["items"]]

    def check_production_approval(self, name: str, version: int | str) -> Approval | None:
        d = self._json("GET", f"{_mv_path(name, version)}/production-approval")
        return None if d.get("approval") is None else Approval.from_dict(d["approval"])

    # -- validation and lineage --------------------------------------------------------------

    def validate(
        self,
        name: str,
        version: int | str,
        data: Any,
        *,
        label: str,
        against: str | int | None = "champion",
        requirements: Sequence[str] = (),
        trust_pickle: bool = False,
    ) -> ValidationResult:
        path = f"{_mv_path(name, version)}/validate"
        if isinstance(requirements, str):
            requirements = [requirements]
        body = {
            "data": holdout_payload(data),
            "label": label,
            "against": against,
            "requirements": list(requirements),
            "trust_pickle": trust_pickle,
        }
        return ValidationResult.from_dict(self._json("POST", path, body=body))

    def validations(self, name: str, version: int | str) -> list[ValidationResult]:
        d = self._json("GET", f"{_mv_path(name, version)}/validations")
        return [ValidationResult.from_dict(x) for x in d["items"]]

    def lineage(self, name: str, version: int | str) -> dict[str, Any]:
        graph: dict[str, Any] = self._json("GET", f"{_mv_path(name, version)}/lineage")
        return graph

    # -- packages ----------------------------------------------------------------------------

    def open_package_file(
        self, name: str, version: int | str, path: str
    ) -> tuple[dict[str, Any], Iterator[bytes]]:
        mv = self.get_model_version(name, version)
        entry = mv.files.get(path)
        if entry is None:
            raise NotFound(f"model {mv.name} version {mv.version} has no file {path!r}", path=path)
        url = f"{_mv_path(mv.name, mv.version)}/files/{_segs(safe_relpath(path))}"
        what = f"file {path!r} of model {mv.name!r} version {mv.version}"
        response = self._send("GET", url, stream=True)
        return dict(entry), iter(
            _VerifiedDownload(response, str(entry["sha256"]), what, self.base_url)
        )

    def _fetch(self, mv: ModelVersion, rel: str, expected: Mapping[str, Any], target: Path) -> None:
        """Stream one package file beside ``target``, check it against the registry's record
        (sha256 and size), then rename it into place."""
        path = f"{_mv_path(mv.name, mv.version)}/files/{_segs(safe_relpath(rel))}"
        response = self._send("GET", path, stream=True)
        what = f"file {rel!r} of model {mv.name!r} version {mv.version}"
        # Checked against the registry's record, not against what the response announces.
        chunks = _VerifiedDownload(response, str(expected["sha256"]), what, self.base_url)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
        size = 0
        try:
            with create_private(tmp) as out:  # 0600 while partial
                for chunk in chunks:  # IntegrityError at the end if the sha256 differs
                    size += len(chunk)
                    out.write(chunk)
            if size != int(expected["size"]):
                raise IntegrityError(
                    f"{what} is {size} bytes, the registry recorded {expected['size']}"
                )
            publish_mode(tmp)
            os.replace(tmp, target)
        except BaseException:
            chunks.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _fill(self, dest: Path, mv: ModelVersion) -> None:
        for rel, entry in sorted(mv.files.items()):
            self._fetch(mv, rel, entry, safe_local_destination(dest, rel))

    def download_package(
        self, name: str, version: int | str, dest_dir: str | os.PathLike[str]
    ) -> Path:
        mv = self.get_model_version(name, version)
        return package_cache.download_package(dest_dir, mv, self._fill)

    def materialize(self, name: str, version: int | str) -> Path:
        return self._materialize(self.get_model_version(name, version))

    def _materialize(self, mv: ModelVersion) -> Path:
        return package_cache.materialize(self.cache_dir, mv, self._fill)

    def package(self, uri_or_ref: str) -> tuple[ModelVersion, Path]:
        mv = self.resolve(uri_or_ref)
        return mv, self._materialize(mv)

    def load_model(self, uri_or_ref: str, *, trust_pickle: bool = False) -> Any:
        from dockyard.registry import packaging

        mv, path = self.package(uri_or_ref)
        return packaging.load_model(
            path, trust_pickle=trust_pickle, expected_digest=mv.package_digest
        )


def _segs(path: str) -> str:
    """A key or package path that may hold '/', encoded segment by segment."""
    if not isinstance(path, str):
        raise InvalidInput(f"expected a string, got {path!r}")
    return "/".join(_seg(part) for part in path.split("/"))
