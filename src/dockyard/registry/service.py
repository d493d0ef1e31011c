"""Registry use cases: registered models, immutable versions, aliases, lifecycle, gates, lineage.

The one place where registry rules live; the REST routes, the CLI and the SDK call
:class:`RegistryService`. Like :class:`~dockyard.tracking.service.TrackingService` it takes a
store, an artifact store and the acting principal, validates plain values, runs each change in
one transaction together with its audit event, and returns domain objects
(:mod:`dockyard.core.registry_entities`).

Rules worth knowing:

* **Sources.** A version is created only from a package Dockyard stored itself:
  ``runs:/<run_id>/<artifact_path>`` (a folder of the run's artifacts holding a
  ``manifest.json``), ``models:/<name>/<version>`` (or any model reference: a copy of a
  registered version), or blobs the caller already put in the artifact store
  (:meth:`RegistryService.create_model_version_from_files`, source ``package:<digest>``).
  Local paths and URLs (``file:``, ``http(s):``, ``s3:``, ``/x``, ``../x``, ``//x``) are refused.
* **Verification.** Every file the manifest lists must be among the run's artifact rows (or the
  uploaded files) with the same sha256 and size, and its blob must be stored; otherwise
  :class:`~dockyard.core.errors.IntegrityError` names the file. The version records every file
  of the package (``manifest.json`` included) and the package digest.
* **Numbering.** Versions are numbered 1, 2, ... per model inside the write transaction, under
  a row lock on the model (PostgreSQL) or the database write lock (SQLite), and the
  ``(name, version)`` primary key catches anything else (the store retries the transaction).
* **Lifecycle.** :data:`~dockyard.core.registry_entities.TRANSITIONS`; moving to ``approved``
  needs the latest validation to have passed, or ``override_gate=True`` with a written reason
  (audited as ``model_version.gate_override``). :meth:`RegistryService.retire` retires from
  candidate, approved or deprecated (production must be deprecated first) and refuses a version
  that still holds aliases.
* **Validation without a champion.** When ``against`` names an alias or status that selects no
  version yet (the first model), checks relative to the champion are reported as passed with
  ``champion: None`` and a note "no champion"; absolute checks still apply.
* **Approvals (four eyes).** A model's approval policy (:meth:`RegistryService.set_approval_policy`,
  off by default) makes a move to ``production`` need an approval: a version's approval is
  requested (:meth:`~RegistryService.request_approval`), then approved or rejected by a user
  with ``model:approve`` who is neither the version's author (``created_by``) nor the
  requester (PermissionDenied naming which). Every step records the version's package digest;
  the latest decision counts, and only while its digest is the version's. Without a valid one
  the move is a Conflict saying what is missing; :meth:`~RegistryService.check_production_approval`
  is the same check for serving.
* **Latest.** ``models:/<name>/latest`` is the highest version that is not retired or rejected.
* **Cache.** :meth:`RegistryService.materialize` fills ``<cache>/<package_digest>/`` from the
  artifact store (every blob verified on read), builds it in a temporary sibling folder and
  renames it into place, and re-verifies every file's size and sha256 on each reuse (a damaged
  cache folder is rebuilt).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.artifacts import ArtifactStore, is_digest
from dockyard.artifacts.paths import safe_local_destination, safe_prefix, safe_relpath
from dockyard.core import paging
from dockyard.core.entities import Page
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from dockyard.core.registry_entities import (
    APPROVAL_APPROVE,
    APPROVAL_REJECT,
    APPROVAL_REQUEST,
    APPROVED,
    CANDIDATE,
    PRODUCTION,
    REJECTED,
    RETIRABLE_FROM,
    RETIRED,
    STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    AliasEvent,
    Approval,
    ModelVersion,
    RegisteredModel,
    StatusEvent,
    ValidationResult,
)
from dockyard.governance.audit import Actor, now_ms, record_event
from dockyard.governance.permissions import (
    EXPERIMENT_READ,
    MODEL_APPROVE,
    MODEL_READ,
    MODEL_WRITE,
    Authorizer,
    enforced,
)
from dockyard.registry import cache as package_cache
from dockyard.registry.uris import (
    LATEST,
    ModelRef,
    check_alias,
    check_model_name,
    check_version,
    parse_model_uri,
)

if TYPE_CHECKING:
    from dockyard.store.base import Store, Unit

MANIFEST = package_cache.MANIFEST
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_DESCRIPTION = 10_000
MAX_REASON = 4_000
SOURCE_FORMS = (
    "runs:/<run_id>/<artifact_path> (a model logged in a run, e.g. runs:/<id>/model) or "
    "models:/<name>/<version> (a copy of a registered version); local paths and URLs are "
    "refused -- log the model to a run first (dy.log_model) or upload the package"
)
_USABLE = tuple(s for s in STATUSES if s not in TERMINAL_STATUSES)


@dataclass(frozen=True)
class _Package:
    """A verified package description, ready to become a version row."""

    files: dict[str, tuple[str, int]]  # every file of the package, manifest.json included
    digest: str
    flavor: str
    task: str | None
    signature: dict[str, Any]
    trusted_pickle: bool


def _v() -> Any:
    """The tracking layer's value checks (imported on use: the tracking package loads the
    store, and this module stays importable without SQLAlchemy)."""
    from dockyard.tracking import _validation

    return _validation


def _clean_text(kind: str, text: Any, max_len: int) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{kind} must be a string, got {type(text).__name__}")
    return _v().check_text(kind, text, max_len)


def _clean_reason(reason: Any) -> str | None:
    if reason is None:
        return None
    text = _clean_text("reason", reason, MAX_REASON).strip()
    return text or None


def _finite(values: Mapping[str, Any]) -> dict[str, float | None]:
    """Metric values fit for JSON on every database: NaN and infinities become None."""
    out: dict[str, float | None] = {}
    for k, x in values.items():
        f = None if x is None else float(x)
        out[k] = f if f is not None and math.isfinite(f) else None
    return out


def _mv_id(name: str, version: int) -> str:
    return f"{name}/{version}"


#: The permission each public method needs, on the registered model it names (deny by default:
#: :func:`enforced` refuses to build the class if a public method is missing here).
#: ``transition`` is gated on ``model:read`` and then checks ``model:approve`` for a move to
#: approved, production or rejected and ``model:write`` for any other move. Registering from
#: ``runs:/...`` also needs ``experiment:read`` on the run's experiment.
REGISTRY_PERMISSIONS: dict[str, str] = {
    "create_registered_model": MODEL_WRITE,
    "get_registered_model": MODEL_READ,
    "list_registered_models": MODEL_READ,
    "update_registered_model": MODEL_WRITE,
    "set_registered_model_tag": MODEL_WRITE,
    "create_model_version": MODEL_WRITE,
    "create_model_version_from_files": MODEL_WRITE,
    "get_model_version": MODEL_READ,
    "list_model_versions": MODEL_READ,
    "update_model_version": MODEL_WRITE,
    "set_model_version_tag": MODEL_WRITE,
    "resolve": MODEL_READ,
    "set_alias": MODEL_WRITE,
    "delete_alias": MODEL_WRITE,
    "alias_history": MODEL_READ,
    "transition": MODEL_READ,
    "retire": MODEL_WRITE,
    "status_history": MODEL_READ,
    "validate": MODEL_WRITE,
    "validations": MODEL_READ,
    "materialize": MODEL_READ,
    "download_package": MODEL_READ,
    "load_model": MODEL_READ,
    "package": MODEL_READ,
    "open_package_file": MODEL_READ,
    "lineage": MODEL_READ,
    "set_approval_policy": MODEL_APPROVE,
    "request_approval": MODEL_WRITE,
    "approve": MODEL_APPROVE,
    "reject": MODEL_APPROVE,
    "approvals": MODEL_READ,
    "check_production_approval": MODEL_READ,
}
#: Moves of a version's status that are decisions of an approver.
APPROVAL_STATUSES = frozenset({APPROVED, PRODUCTION, REJECTED})


@enforced(REGISTRY_PERMISSIONS)
class RegistryService:
    """Registry operations on behalf of ``actor``.

    ``cache_dir`` holds materialized packages (default: ``<artifact root>/cache/packages`` for a
    local artifact root, else a per-user folder in the system temp folder;
    :meth:`dockyard.backend.Backend.registry` passes ``<home>/cache/packages``).
    ``trusted_modules`` is the server's deserialisation policy (see
    :mod:`dockyard.registry.packaging.trust`): None in local mode, where the user loading a
    package is the one trusting its author; the ``DOCKYARD_TRUSTED_MODULES`` roots on a server.
    """

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        actor: Actor,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        trusted_modules: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.trusted_modules = trusted_modules
        self.artifacts = artifacts
        self.actor = actor
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)
        if cache_dir is None:
            if artifacts.local_root is not None:
                cache_dir = artifacts.local_root / "cache" / "packages"
            else:
                uid = os.getuid() if hasattr(os, "getuid") else "user"
                cache_dir = Path(tempfile.gettempdir()) / f"dockyard-{uid}" / "packages"
        self.cache_dir = Path(cache_dir)

    # -- registered models -------------------------------------------------------------------

    def create_registered_model(
        self, name: str, description: str = "", tags: Mapping[str, Any] | None = None
    ) -> RegisteredModel:
        """Create a registered model owned by the actor; AlreadyExists if the name is taken."""
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        desc = _clean_text("description", description, MAX_DESCRIPTION)
        clean_tags = self._clean_tags(tags)

        def fn(u: Unit) -> RegisteredModel:
            if not u.insert_registered_model(name, desc, self.actor.name, clean_tags, now_ms()):
                raise AlreadyExists(f"registered model {name!r} already exists", name=name)
            record_event(
                u,
                self.actor,
                "registered_model.create",
                "registered_model",
                name,
                tags=sorted(clean_tags),
            )
            model = u.get_registered_model(name)
            assert model is not None
            return model

        return self.store.write(fn)

    def get_registered_model(self, name: str) -> RegisteredModel:
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        model = self.store.read(lambda u: u.get_registered_model(name))
        if model is None:
            raise self._no_model(name)
        return model

    def list_registered_models(
        self, max_results: int | None = None, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        """Registered models ordered by name, one page at a time."""
        limit = paging.check_page_size(max_results)
        q = paging.fingerprint("registered_models")
        offset = paging.decode_token(page_token, q)
        items = self.store.read(lambda u: u.list_registered_models(limit + 1, offset))
        token = paging.encode_token(offset + limit, q) if len(items) > limit else None
        items = items[:limit]
        if not self.authz.allows(MODEL_READ):  # per-model grants: only those
            items = [m for m in items if self.authz.allows(MODEL_READ, m.name)]
        return Page(items, token)

    def update_registered_model(self, name: str, description: str | None = None) -> RegisteredModel:
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        desc = (
            None
            if description is None
            else _clean_text("description", description, MAX_DESCRIPTION)
        )

        def fn(u: Unit) -> RegisteredModel:
            self._lock(u, name)
            values = {} if desc is None else {"description": desc}
            u.update_registered_model(name, now_ms(), **values)
            record_event(
                u,
                self.actor,
                "registered_model.update",
                "registered_model",
                name,
                fields=sorted(values),
            )
            model = u.get_registered_model(name)
            assert model is not None
            return model

        return self.store.write(fn)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        _v().check_key("tag", key)
        val = _v().tag_value(key, value)

        def fn(u: Unit) -> None:
            self._lock(u, name)
            u.set_registered_model_tags(name, {key: val})
            u.update_registered_model(name, now_ms())
            record_event(
                u, self.actor, "registered_model.set_tag", "registered_model", name, key=key
            )

        self.store.write(fn)

    # -- model versions ----------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register the package at ``source`` as the next version of ``name``.

        ``source`` is ``runs:/<run_id>/<artifact_path>`` or a model reference
        (``models:/<name>/<version>``, ``@alias``, ``/<status>``: a copy of that version,
        with its files, digest and lineage). The registered model is created if missing.
        """
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        desc = _clean_text("description", description, MAX_DESCRIPTION)
        clean_tags = self._clean_tags(tags)
        kind, target = self._parse_source(source)
        if kind == "models":
            assert isinstance(target, ModelRef)
            origin = self.resolve(str(target))
            package = _Package(
                files={p: (f["sha256"], int(f["size"])) for p, f in origin.files.items()},
                digest=origin.package_digest,
                flavor=origin.flavor,
                task=origin.task,
                signature=origin.signature,
                trusted_pickle=origin.trusted_pickle,
            )
            lineage = {
                "source": origin.uri,
                "run_id": origin.run_id,
                "datasets": origin.datasets,
                "code": origin.code,
                "metrics": origin.metrics,
            }
        else:
            assert isinstance(target, tuple)
            run_id, prefix = target
            package, lineage = self._package_from_run(run_id, prefix)
        return self._insert_version(name, package, lineage, desc, clean_tags)

    def create_model_version_from_files(
        self,
        name: str,
        files: Mapping[str, tuple[str, int] | Sequence[Any] | Mapping[str, Any]],
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register an uploaded package: ``files`` maps each package path (``manifest.json``
        included) to ``(sha256, size)`` (or ``{"sha256", "size"}``) of a blob the caller already
        stored with ``artifacts.put_file``/``put_stream``. The same checks apply as for a run's
        package, and every file must be listed in the manifest. Source: ``package:<digest>``.
        """
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        desc = _clean_text("description", description, MAX_DESCRIPTION)
        clean_tags = self._clean_tags(tags)
        if not isinstance(files, Mapping) or not files:
            raise InvalidInput("files must be a non-empty mapping of path -> (sha256, size)")
        available: dict[str, tuple[str, int]] = {}
        for raw_path, entry in files.items():
            path = safe_relpath(raw_path)
            if isinstance(entry, Mapping):
                digest, size = entry.get("sha256"), entry.get("size")
            elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
                digest, size = entry
            else:
                raise InvalidInput(f"file {path!r} needs (sha256, size), got {entry!r}")
            if not is_digest(digest):
                raise InvalidInput(f"file {path!r} has an invalid sha256 {digest!r}")
            size = _v().integer(f"file {path!r} size", size)
            if size < 0:
                raise InvalidInput(f"file {path!r} has a negative size")
            available[path] = (str(digest), size)
        package = self._inspect_package(available, "the uploaded package")
        extra = sorted(set(available) - set(package.files))
        if extra:
            raise InvalidInput(
                f"the uploaded package has files its manifest does not list: {extra[:10]}"
            )
        for path, (digest, size) in package.files.items():
            try:
                stored = self.artifacts.size(digest)
            except NotFound:
                raise InvalidInput(
                    f"file {path!r} of the uploaded package (sha256 {digest}) is not in the "
                    "artifact store; upload it first"
                ) from None
            if stored != size:
                raise InvalidInput(
                    f"file {path!r} of the uploaded package is {stored} bytes in the artifact "
                    f"store, not {size}"
                )
        lineage = {
            "source": f"package:{package.digest}",
            "run_id": None,
            "datasets": [],
            "code": {},
            "metrics": {},
        }
        return self._insert_version(name, package, lineage, desc, clean_tags)

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        ver = check_version(version)
        mv = self.store.read(lambda u: u.get_model_version(name, ver))
        if mv is None:
            raise self._no_version(name, ver)
        return mv

    def list_model_versions(
        self,
        name: str,
        status: str | Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        """Versions of ``name`` by ascending number, optionally only those with ``status``
        (one status or several)."""
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        statuses: list[str] | None = None
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                self._check_status(s)
        limit = paging.check_page_size(max_results)
        q = paging.fingerprint("model_versions", name, statuses)
        offset = paging.decode_token(page_token, q)

        def fn(u: Unit) -> list[ModelVersion]:
            if u.get_registered_model(name) is None:
                raise self._no_model(name)
            return u.list_model_versions(name, statuses, limit + 1, offset)

        items = self.store.read(fn)
        token = paging.encode_token(offset + limit, q) if len(items) > limit else None
        return Page(items[:limit], token)

    def update_model_version(
        self, name: str, version: int | str, description: str | None = None
    ) -> ModelVersion:
        """Change a version's description (its package and lineage never change)."""
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        ver = check_version(version)
        desc = (
            None
            if description is None
            else _clean_text("description", description, MAX_DESCRIPTION)
        )

        def fn(u: Unit) -> ModelVersion:
            self._lock(u, name)
            self._version_status(u, name, ver)
            values = {} if desc is None else {"description": desc}
            u.update_model_version(name, ver, now_ms(), **values)
            record_event(
                u,
                self.actor,
                "model_version.update",
                "model_version",
                _mv_id(name, ver),
                fields=sorted(values),
            )
            mv = u.get_model_version(name, ver)
            assert mv is not None
            return mv

        return self.store.write(fn)

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: Any) -> None:
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        ver = check_version(version)
        _v().check_key("tag", key)
        val = _v().tag_value(key, value)

        def fn(u: Unit) -> None:
            self._lock(u, name)
            self._version_status(u, name, ver)
            u.set_model_version_tags(name, ver, {key: val})
            record_event(
                u,
                self.actor,
                "model_version.set_tag",
                "model_version",
                _mv_id(name, ver),
                key=key,
            )

        self.store.write(fn)

    def resolve(self, uri_or_ref: str) -> ModelVersion:
        """The version a reference names: ``models:/fraud/3``, ``models:/fraud@champion``,
        ``models:/fraud/production`` (highest version with that status; any status works),
        ``models:/fraud/latest`` (highest version not retired or rejected), or the short forms
        ``fraud/3``, ``fraud@champion``, ``fraud/production``."""
        ref = parse_model_uri(uri_or_ref)
        self.authz.require(MODEL_READ, ref.name)

        def fn(u: Unit) -> ModelVersion:
            ver = self._resolve_in(u, ref)
            mv = u.get_model_version(ref.name, ver)
            assert mv is not None
            return mv

        return self.store.read(fn)

    def _resolve_in(self, u: Unit, ref: ModelRef) -> int:
        if ref.version is not None:
            if u.model_version_status(ref.name, ref.version) is None:
                raise self._no_version(ref.name, ref.version)
            return ref.version
        if u.get_registered_model(ref.name) is None:
            raise self._no_model(ref.name)
        if ref.alias is not None:
            ver = u.get_alias(ref.name, ref.alias)
            if ver is None:
                raise NotFound(
                    f"model {ref.name!r} has no alias {ref.alias!r}",
                    name=ref.name,
                    alias=ref.alias,
                )
            return ver
        assert ref.selector is not None
        statuses = _USABLE if ref.selector == LATEST else (ref.selector,)
        top = u.highest_version(ref.name, statuses)
        if top is None:
            what = (
                "that is not retired or rejected"
                if ref.selector == LATEST
                else (f"with status {ref.selector}")
            )
            raise NotFound(f"model {ref.name!r} has no version {what}", name=ref.name)
        return top

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        """Point ``alias`` at ``version`` (moving it if set); returns the aliased version.
        Retired and rejected versions cannot be aliased. Setting an alias to the version it
        already points to changes nothing and records nothing."""
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        check_alias(alias)
        ver = check_version(version)

        def fn(u: Unit) -> ModelVersion:
            self._lock(u, name)
            status = self._version_status(u, name, ver)
            if status in TERMINAL_STATUSES:
                raise Conflict(
                    f"version {ver} of model {name!r} is {status}; a {status} version cannot be "
                    "aliased",
                    name=name,
                    version=ver,
                    status=status,
                )
            current = u.get_alias(name, alias)
            if current != ver:
                now = now_ms()
                u.put_alias(name, alias, ver)
                u.insert_alias_event(name, alias, current, ver, self.actor.name, now)
                u.update_registered_model(name, now)
                record_event(
                    u,
                    self.actor,
                    "alias.set",
                    "registered_model",
                    name,
                    alias=alias,
                    from_version=current,
                    to_version=ver,
                )
            mv = u.get_model_version(name, ver)
            assert mv is not None
            return mv

        return self.store.write(fn)

    def delete_alias(self, name: str, alias: str) -> None:
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        check_alias(alias)

        def fn(u: Unit) -> None:
            self._lock(u, name)
            current = u.get_alias(name, alias)
            if current is None or not u.remove_alias(name, alias):
                raise NotFound(f"model {name!r} has no alias {alias!r}", name=name, alias=alias)
            now = now_ms()
            u.insert_alias_event(name, alias, current, None, self.actor.name, now)
            u.update_registered_model(name, now)
            record_event(
                u,
                self.actor,
                "alias.delete",
                "registered_model",
                name,
                alias=alias,
                from_version=current,
            )

        self.store.write(fn)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        if alias is not None:
            check_alias(alias)

        def fn(u: Unit) -> list[AliasEvent]:
            if u.get_registered_model(name) is None:
                raise self._no_model(name)
            return u.alias_events(name, alias)

        return self.store.read(fn)

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
        """Move a version along :data:`TRANSITIONS`; an illegal move is a Conflict naming the
        allowed targets. ``approved`` needs the latest validation to have passed, or
        ``override_gate=True`` with a written ``reason``. ``production`` needs a valid approval
        when the model's approval policy is on (:meth:`check_production_approval`).
        ``retired`` follows the rules of :meth:`retire` (reason required, no aliases)."""
        check_model_name(name)
        ver = check_version(version)
        self._check_status(to_status)
        self.authz.require(MODEL_APPROVE if to_status in APPROVAL_STATUSES else MODEL_WRITE, name)
        why = _clean_reason(reason)
        if not isinstance(override_gate, bool):
            raise InvalidInput(f"override_gate must be true or false, got {override_gate!r}")
        if override_gate and to_status != APPROVED:
            raise InvalidInput(
                f"override_gate only applies to a move to {APPROVED}, not to {to_status}"
            )
        if override_gate and why is None:
            raise InvalidInput("overriding the validation gate needs a written reason (reason=...)")
        if to_status == RETIRED and why is None:
            raise InvalidInput("retiring a version needs a reason")

        def fn(u: Unit) -> ModelVersion:
            self._lock(u, name)
            current = self._version_status(u, name, ver)
            allowed = TRANSITIONS[current]
            if to_status == current:
                raise Conflict(f"version {ver} of model {name!r} is already {current}")
            if to_status not in allowed:
                raise Conflict(
                    f"cannot move version {ver} of model {name!r} from {current} to "
                    f"{to_status}; " + _allowed_text(current),
                    name=name,
                    version=ver,
                    status=current,
                    allowed=list(allowed),
                )
            overridden = False
            if to_status == APPROVED:
                overridden = self._check_gate(u, name, ver, override_gate)
            if to_status == RETIRED:
                self._check_no_aliases(u, name, ver)
            approval = None
            if to_status == PRODUCTION:
                approval = self._production_approval(u, name, ver)
            now = now_ms()
            u.update_model_version(name, ver, now, status=to_status, status_reason=why)
            u.insert_status_event(name, ver, current, to_status, self.actor.name, now, why)
            if overridden:
                record_event(
                    u,
                    self.actor,
                    "model_version.gate_override",
                    "model_version",
                    _mv_id(name, ver),
                    reason=why,
                )
            record_event(
                u,
                self.actor,
                "model_version.transition",
                "model_version",
                _mv_id(name, ver),
                from_status=current,
                to_status=to_status,
                reason=why,
                **(
                    {}
                    if approval is None
                    else {"approval_id": approval.id, "approved_by": approval.actor}
                ),
            )
            mv = u.get_model_version(name, ver)
            assert mv is not None
            return mv

        return self.store.write(fn)

    def _check_gate(self, u: Unit, name: str, ver: int, override: bool) -> bool:
        """True when the gate is overridden; Conflict when it blocks."""
        latest = u.latest_validation(name, ver)
        if latest is not None and latest.passed:
            return False
        if override:
            return True
        if latest is None:
            raise Conflict(
                f"version {ver} of model {name!r} has no validation; approving it needs a "
                "passed validation gate (validate it against the champion) or an override with "
                "a written reason",
                name=name,
                version=ver,
            )
        failed = [c.get("requirement") for c in latest.checks if not c.get("passed")]
        raise Conflict(
            f"version {ver} of model {name!r} failed its latest validation "
            f"(failed checks: {', '.join(map(str, failed)) or 'none recorded'}); approving it "
            "needs a passed validation gate or an override with a written reason",
            name=name,
            version=ver,
            failed=failed,
        )

    @staticmethod
    def _check_no_aliases(u: Unit, name: str, ver: int) -> None:
        held = u.aliases_of_version(name, ver)
        if held:
            raise Conflict(
                f"version {ver} of model {name!r} is still aliased as {', '.join(held)}; move "
                "or delete those aliases before retiring it",
                name=name,
                version=ver,
                aliases=held,
            )

    def retire(
        self,
        name: str,
        version: int | str,
        *,
        reason: str,
        replacement_version: int | str | None = None,
    ) -> ModelVersion:
        """Retire a version with a reason and, optionally, the version that replaces it.

        Legal from candidate, approved and deprecated (production must be deprecated first).
        The replacement must exist, differ from the version and not be retired or rejected. A
        version that still holds aliases is refused (Conflict naming them).
        """
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        ver = check_version(version)
        why = _clean_reason(reason)
        if why is None:
            raise InvalidInput("retiring a version needs a reason")
        repl = None if replacement_version is None else check_version(replacement_version)
        if repl == ver:
            raise InvalidInput(f"version {ver} cannot be its own replacement")

        def fn(u: Unit) -> ModelVersion:
            self._lock(u, name)
            current = self._version_status(u, name, ver)
            if current not in RETIRABLE_FROM:
                hint = (
                    "deprecate it first"
                    if current == PRODUCTION
                    else f"{current} is a final status"
                )
                raise Conflict(
                    f"cannot retire version {ver} of model {name!r}: it is {current}; {hint}",
                    name=name,
                    version=ver,
                    status=current,
                )
            if repl is not None:
                repl_status = u.model_version_status(name, repl)
                if repl_status is None:
                    raise self._no_version(name, repl)
                if repl_status in TERMINAL_STATUSES:
                    raise Conflict(
                        f"replacement version {repl} of model {name!r} is {repl_status}; name a "
                        "version that can still be used"
                    )
            self._check_no_aliases(u, name, ver)
            now = now_ms()
            u.update_model_version(
                name, ver, now, status=RETIRED, status_reason=why, replacement_version=repl
            )
            u.insert_status_event(name, ver, current, RETIRED, self.actor.name, now, why)
            record_event(
                u,
                self.actor,
                "model_version.retire",
                "model_version",
                _mv_id(name, ver),
                from_status=current,
                reason=why,
                replacement_version=repl,
            )
            mv = u.get_model_version(name, ver)
            assert mv is not None
            return mv

        return self.store.write(fn)

    def status_history(self, name: str, version: int | str) -> list[StatusEvent]:
        """Every status change of a version, its creation first."""
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        ver = check_version(version)

        def fn(u: Unit) -> list[StatusEvent]:
            self._version_status(u, name, ver)
            return u.status_events(name, ver)

        return self.store.read(fn)

    # -- approvals ---------------------------------------------------------------------------

    def set_approval_policy(self, name: str, required: bool) -> RegisteredModel:
        """Turn the model's approval policy on or off: when on, a move to production (and,
        for serving, live traffic) needs a four-eyes approval of the version's package.
        Needs ``model:approve`` on the model (admins have it). Audited as
        ``approval_policy.set``."""
        check_model_name(name)
        self.authz.require(MODEL_APPROVE, name)
        if not isinstance(required, bool):
            raise InvalidInput(f"required must be true or false, got {required!r}")

        def fn(u: Unit) -> RegisteredModel:
            self._lock(u, name)
            before = u.model_requires_approval(name)
            u.update_registered_model(name, now_ms(), require_approval=required)
            record_event(
                u,
                self.actor,
                "approval_policy.set",
                "registered_model",
                name,
                require_approval=required,
                previous=before,
            )
            model = u.get_registered_model(name)
            assert model is not None
            return model

        return self.store.write(fn)

    def request_approval(self, name: str, version: int | str, comment: str = "") -> Approval:
        """Ask for an approval of a version (its current package digest is recorded); the
        requester may not approve it. Needs ``model:write``. Audited as ``approval.request``."""
        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        ver = check_version(version)
        text = _clean_comment(comment)

        def fn(u: Unit) -> Approval:
            self._lock(u, name)
            mv = self._approvable_version(u, name, ver, "request an approval for")
            step = u.insert_approval(
                {
                    "name": name,
                    "version": ver,
                    "action": APPROVAL_REQUEST,
                    "actor": self.actor.name,
                    "requester": self.actor.name,
                    "comment": text,
                    "package_digest": mv.package_digest,
                    "time": now_ms(),
                }
            )
            record_event(
                u,
                self.actor,
                "approval.request",
                "model_version",
                _mv_id(name, ver),
                approval_id=step.id,
                package_digest=mv.package_digest,
                comment=text,
            )
            return step

        return self.store.write(fn)

    def approve(self, name: str, version: int | str, comment: str = "") -> Approval:
        """Approve the requested version for production, bound to its package digest. Needs
        ``model:approve``, and the approver must be neither the version's author nor the
        requester (PermissionDenied naming which). Audited as ``approval.approve``."""
        return self._decide(name, version, APPROVAL_APPROVE, comment)

    def reject(self, name: str, version: int | str, comment: str) -> Approval:
        """Reject the requested version (a comment saying why is required); a rejection after
        an approval withdraws it. Same rules as :meth:`approve`; audited as
        ``approval.reject``."""
        return self._decide(name, version, APPROVAL_REJECT, comment)

    def approvals(self, name: str, version: int | str) -> list[Approval]:
        """Every request, approval and rejection of a version, oldest first."""
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        ver = check_version(version)

        def fn(u: Unit) -> list[Approval]:
            self._version_status(u, name, ver)
            return u.list_approvals(name, ver)

        return self.store.read(fn)

    def check_production_approval(self, name: str, version: int | str) -> Approval | None:
        """Whether the version may serve in production under its model's approval policy:
        None when the policy is off, the approval that counts when it is on, and a Conflict
        saying exactly what is missing otherwise. The check :meth:`transition` applies to a
        move to production (and serving applies to live traffic)."""
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        ver = check_version(version)
        return self.store.read(lambda u: self._production_approval(u, name, ver))

    def _decide(self, name: str, version: int | str, action: str, comment: str) -> Approval:
        check_model_name(name)
        self.authz.require(MODEL_APPROVE, name)
        ver = check_version(version)
        text = _clean_comment(comment)
        if action == APPROVAL_REJECT and not text:
            raise InvalidInput("a rejection needs a comment saying why (comment=...)")

        def fn(u: Unit) -> Approval:
            self._lock(u, name)
            verb = "approve" if action == APPROVAL_APPROVE else "reject"
            mv = self._approvable_version(u, name, ver, verb)
            request = _latest_request(u.list_approvals(name, ver), mv.package_digest)
            if request is None:
                raise Conflict(
                    f"no approval was requested for version {ver} of model {name!r} (package "
                    f"{mv.package_digest[:12]}); request one first (dockyard models approval "
                    f"request {name}/{ver})",
                    name=name,
                    version=ver,
                )
            who = self.actor.name
            for role, holder in (("author", mv.created_by), ("requester", request.actor)):
                if who == holder:
                    raise PermissionDenied(
                        f"{who!r} cannot {verb} version {ver} of model {name!r}: they are its "
                        f"{role} (four-eyes rule: the approver must be neither the author "
                        f"({mv.created_by}) nor the requester ({request.actor}))",
                        permission=MODEL_APPROVE,
                        resource_type="registered_model",
                        resource_id=name,
                        principal=who,
                        rule="four_eyes",
                        conflict=role,
                    )
            step = u.insert_approval(
                {
                    "name": name,
                    "version": ver,
                    "action": action,
                    "actor": who,
                    "requester": request.actor,
                    "comment": text,
                    "package_digest": mv.package_digest,
                    "time": now_ms(),
                }
            )
            record_event(
                u,
                self.actor,
                f"approval.{action}",
                "model_version",
                _mv_id(name, ver),
                approval_id=step.id,
                requester=request.actor,
                package_digest=mv.package_digest,
                comment=text,
            )
            return step

        return self.store.write(fn)

    def _approvable_version(self, u: Unit, name: str, ver: int, verb: str) -> ModelVersion:
        status = self._version_status(u, name, ver)
        if status in TERMINAL_STATUSES:
            raise Conflict(
                f"cannot {verb} version {ver} of model {name!r}: it is {status}",
                name=name,
                version=ver,
                status=status,
            )
        mv = u.get_model_version(name, ver)
        assert mv is not None
        return mv

    def _production_approval(self, u: Unit, name: str, ver: int) -> Approval | None:
        return production_approval(u, name, ver)

    # -- validation gate ---------------------------------------------------------------------

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
        """Evaluate the version (and the champion) on ``data`` and store the verdict.

        ``data`` is a pandas DataFrame (or a dict of columns / list of records) holding the
        features and the ``label`` column. ``against`` is an alias name (default
        ``champion``), a status name or ``latest`` (highest such version), a version number,
        or None for absolute checks only. ``requirements`` are gate expressions such as
        ``roc_auc>=0.80`` or ``roc_auc>=champion-0.01`` (see :mod:`dockyard.registry.gate`).
        Both packages load through :func:`dockyard.registry.packaging.load_model`, verified
        against the versions' recorded package digests; ``trust_pickle`` is passed on.

        Without a champion (the alias or status selects nothing yet) a relative check passes
        with ``champion: None`` and a note; a required metric the model cannot produce
        (``roc_auc`` without ``predict_proba``) fails with a note.
        """
        from dockyard.registry import gate

        check_model_name(name)
        self.authz.require(MODEL_WRITE, name)
        ver = check_version(version)
        if not isinstance(label, str) or not label:
            raise InvalidInput(f"label must name the label column, got {label!r}")
        if isinstance(requirements, str):
            requirements = [requirements]
        reqs = [gate.parse_requirement(r) for r in requirements]
        if against is None and any(r.relative is not None for r in reqs):
            raise InvalidInput(
                "requirements relative to the champion need against=<alias, status or version>"
            )
        frame = _as_frame(data)
        if label not in frame.columns:
            raise InvalidInput(
                f"the validation data has no label column {label!r}; columns: "
                f"{[str(c) for c in frame.columns][:20]}"
            )
        if len(frame) == 0:
            raise InvalidInput("the validation data has no rows")
        y = frame[label].to_numpy()
        x = frame.drop(columns=[label])

        candidate = self.get_model_version(name, ver)
        champion_ver = self._champion(name, against)
        task = candidate.task or gate.infer_task(r.metric for r in reqs)
        if task is None:
            raise InvalidInput(
                f"version {ver} of model {name!r} records no task; require at least one "
                "metric so the task (classification or regression) can be told"
            )
        notes: dict[str, str] = {}
        cand_metrics = gate.evaluate(self._load(candidate, trust_pickle), x, y, task, notes=notes)
        champ_metrics: dict[str, float] | None = None
        if champion_ver is not None:
            champion = (
                candidate if champion_ver == ver else self.get_model_version(name, champion_ver)
            )
            champ_metrics = gate.evaluate(self._load(champion, trust_pickle), x, y, task)
        checks = [
            gate.check(r, cand_metrics, champ_metrics, notes=notes, against=against) for r in reqs
        ]
        passed = all(c["passed"] for c in checks)
        values = {
            "name": name,
            "version": ver,
            "against_version": champion_ver,
            "passed": passed,
            "checks": checks,
            "metrics": {
                "candidate": _finite(cand_metrics),
                "champion": None if champ_metrics is None else _finite(champ_metrics),
                "task": task,
                "notes": notes,
            },
            "data_digest": _frame_digest(frame),
            "num_rows": len(frame),
            "actor": self.actor.name,
            "time": now_ms(),
        }

        def fn(u: Unit) -> ValidationResult:
            self._lock(u, name)
            self._version_status(u, name, ver)
            result = u.insert_validation(values)
            record_event(
                u,
                self.actor,
                "model_version.validate",
                "model_version",
                _mv_id(name, ver),
                validation_id=result.id,
                passed=passed,
                against_version=champion_ver,
                requirements=[c["requirement"] for c in checks],
            )
            return result

        return self.store.write(fn)

    def _champion(self, name: str, against: str | int | None) -> int | None:
        """The version ``against`` selects now, or None when it selects nothing yet."""
        if against is None:
            return None
        if isinstance(against, int) or (isinstance(against, str) and against.isdigit()):
            return self.get_model_version(name, against).version
        if not isinstance(against, str):
            raise InvalidInput(f"against must be an alias, a status or a version, not {against!r}")
        if against in STATUSES or against == LATEST:
            ref = ModelRef(name=name, selector=against)
        else:
            ref = ModelRef(name=name, alias=check_alias(against))
        try:
            return self.store.read(lambda u: self._resolve_in(u, ref))
        except NotFound:
            self.get_registered_model(name)  # a missing model is still an error
            return None

    def validations(self, name: str, version: int | str) -> list[ValidationResult]:
        """Every stored verdict of a version, oldest first."""
        check_model_name(name)
        self.authz.require(MODEL_READ, name)
        ver = check_version(version)

        def fn(u: Unit) -> list[ValidationResult]:
            self._version_status(u, name, ver)
            return u.list_validations(name, ver)

        return self.store.read(fn)

    # -- packages: cache, download, load -----------------------------------------------------

    def materialize(self, name: str, version: int | str) -> Path:
        """A local folder holding the version's package, verified; built from the artifact
        store's blobs into ``<cache_dir>/<package_digest>/`` on first use."""
        mv = self.get_model_version(name, version)
        return self._materialize(mv)

    def _materialize(self, mv: ModelVersion) -> Path:
        return package_cache.materialize(self.cache_dir, mv, self._fill)

    def _fill(self, dest: Path, mv: ModelVersion) -> None:
        for path, f in sorted(mv.files.items()):
            target = safe_local_destination(dest, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            info = self.artifacts.download_blob(f["sha256"], target)
            if info.size != int(f["size"]):
                raise IntegrityError(
                    f"file {path!r} of model {mv.name!r} version {mv.version} is {info.size} "
                    f"bytes in the artifact store, the registry recorded {f['size']}"
                )

    def download_package(
        self, name: str, version: int | str, dest_dir: str | os.PathLike[str]
    ) -> Path:
        """Copy the version's package into ``dest_dir`` (missing or empty), every file
        verified against its recorded sha256; returns ``dest_dir``. Audited
        (``model_version.download``)."""
        mv = self.get_model_version(name, version)
        dest = package_cache.download_package(dest_dir, mv, self._fill)
        self._audit_download(mv, "download_package")
        return dest

    def load_model(self, uri_or_ref: str, *, trust_pickle: bool = False) -> Any:
        """Resolve a model reference, materialize the package and load it with
        :func:`dockyard.registry.packaging.load_model` (digest verified); audited as
        ``model_version.download``. Returns a ``LoadedModel``."""
        mv = self.resolve(uri_or_ref)
        model = self._load(mv, trust_pickle)
        self._audit_download(mv, "load_model")
        return model

    def package(self, uri_or_ref: str) -> tuple[ModelVersion, Path]:
        """Resolve a model reference and materialize its package: the version and the
        verified local folder (what a server loads in its own way). Audited as
        ``model_version.download``."""
        mv = self.resolve(uri_or_ref)
        path = self._materialize(mv)
        self._audit_download(mv, "package")
        return mv, path

    def _load(self, mv: ModelVersion, trust_pickle: bool) -> Any:
        from dockyard.registry import packaging

        path = self._materialize(mv)
        return packaging.load_model(
            path,
            trust_pickle=trust_pickle,
            expected_digest=mv.package_digest,
            trusted_modules=self.trusted_modules,
        )

    def open_package_file(
        self, name: str, version: int | str, path: str
    ) -> tuple[dict[str, Any], Iterator[bytes]]:
        """One file of a version's package: its record (``sha256``, ``size``) and its bytes as
        chunks (the artifact store checks the hash after the last chunk). Audited as
        ``model_version.download`` with the file's path: the server's download route."""
        mv = self.get_model_version(name, version)
        entry = mv.files.get(path)
        if entry is None:
            raise NotFound(f"model {mv.name} version {mv.version} has no file {path!r}", path=path)
        chunks = self.artifacts.open_blob(str(entry["sha256"]))
        self._audit_download(mv, "file", path=path)
        return dict(entry), iter(chunks)

    def _audit_download(self, mv: ModelVersion, via: str, **extra: Any) -> None:
        def fn(u: Unit) -> None:
            record_event(
                u,
                self.actor,
                "model_version.download",
                "model_version",
                _mv_id(mv.name, mv.version),
                via=via,
                package_digest=mv.package_digest,
                **extra,
            )

        self.store.write(fn)

    # -- lineage -----------------------------------------------------------------------------

    def lineage(self, name: str, version: int | str) -> dict[str, Any]:
        """The version's lineage as a graph: ``{"root", "nodes", "edges"}``.

        Nodes (``{"id", "kind", "label", "data"}``) of kind model_version, run, experiment,
        params, dataset, code, artifact and deployment (none until serving exists); edges
        (``{"from", "to", "kind"}``) point from the model version back to what it was built
        from: ``packages`` (artifact), ``copied_from`` (model_version), ``produced_by`` (run),
        ``replaced_by`` (model_version), and from the run: ``in_experiment``, ``used_params``,
        ``trained_on`` / ``<context>`` (dataset), ``at_code``.
        """
        mv = self.get_model_version(name, version)
        nodes: dict[str, dict[str, Any]] = {}
        edges: list[dict[str, Any]] = []

        def node(nid: str, kind: str, label: str, **data: Any) -> str:
            nodes.setdefault(nid, {"id": nid, "kind": kind, "label": label, "data": data})
            return nid

        def edge(a: str, b: str, kind: str) -> None:
            edges.append({"from": a, "to": b, "kind": kind})

        root = node(
            f"model_version:{mv.name}/{mv.version}",
            "model_version",
            f"{mv.name} v{mv.version}",
            name=mv.name,
            version=mv.version,
            status=mv.status,
            source=mv.source,
            flavor=mv.flavor,
            package_digest=mv.package_digest,
            trusted_pickle=mv.trusted_pickle,
            aliases=mv.aliases,
            metrics=mv.metrics,
        )
        if mv.source.startswith("models:/"):
            with contextlib.suppress(NotFound, InvalidInput):
                origin = self.resolve(mv.source)
                oid = node(
                    f"model_version:{origin.name}/{origin.version}",
                    "model_version",
                    f"{origin.name} v{origin.version}",
                    name=origin.name,
                    version=origin.version,
                    status=origin.status,
                )
                edge(root, oid, "copied_from")
        if mv.replacement_version is not None:
            rid = node(
                f"model_version:{mv.name}/{mv.replacement_version}",
                "model_version",
                f"{mv.name} v{mv.replacement_version}",
                name=mv.name,
                version=mv.replacement_version,
            )
            edge(root, rid, "replaced_by")
        run_path = ""
        if mv.source.startswith("runs:/"):
            run_path = mv.source[len("runs:/") :].partition("/")[2]
        for path, f in sorted(mv.files.items()):
            where = f"{run_path}/{path}" if run_path else path
            aid = node(
                f"artifact:{mv.run_id or 'package'}:{where}",
                "artifact",
                where,
                path=where,
                run_id=mv.run_id,
                sha256=f["sha256"],
                size=f["size"],
            )
            edge(root, aid, "packages")
        if mv.run_id is not None:

            def read(u: Unit) -> Any:
                r = u.get_run(mv.run_id)  # type: ignore[arg-type]
                e = None if r is None else u.get_experiment(r.experiment_id)
                return r, e

            run, exp = self.store.read(read)
            if run is None:
                rid = node(f"run:{mv.run_id}", "run", mv.run_id, run_id=mv.run_id, missing=True)
                edge(root, rid, "produced_by")
            else:
                rid = node(
                    f"run:{run.run_id}",
                    "run",
                    run.name,
                    run_id=run.run_id,
                    name=run.name,
                    status=str(run.status),
                    user=run.user,
                    start_time=run.start_time,
                    end_time=run.end_time,
                    lifecycle_stage=run.lifecycle_stage,
                    metrics=_finite(run.metrics),
                )
                edge(root, rid, "produced_by")
                if exp is not None:
                    eid = node(
                        f"experiment:{exp.experiment_id}",
                        "experiment",
                        exp.name,
                        experiment_id=exp.experiment_id,
                        name=exp.name,
                    )
                    edge(rid, eid, "in_experiment")
                if run.params:
                    pid = node(f"params:{run.run_id}", "params", "params", params=run.params)
                    edge(rid, pid, "used_params")
                if run.parent_run_id:
                    prid = node(
                        f"run:{run.parent_run_id}",
                        "run",
                        run.parent_run_id,
                        run_id=run.parent_run_id,
                    )
                    edge(rid, prid, "child_of")
        builder = f"run:{mv.run_id}" if mv.run_id else root
        for d in mv.datasets:
            did = node(
                f"dataset:{d['digest']}",
                "dataset",
                d["name"],
                name=d["name"],
                digest=d["digest"],
            )
            edge(builder, did, d.get("context") or "trained_on")
        if mv.code.get("git_commit"):
            cid = node(
                f"code:{mv.code['git_commit']}",
                "code",
                str(mv.code["git_commit"])[:12],
                git_commit=mv.code["git_commit"],
                git_dirty=mv.code.get("git_dirty"),
            )
            edge(builder, cid, "at_code")
        return {"root": root, "nodes": list(nodes.values()), "edges": edges, "deployments": []}

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _clean_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
        if tags is None:
            return {}
        if not isinstance(tags, Mapping):
            raise InvalidInput(f"tags must be a mapping of key -> value, got {tags!r}")
        return {_v().check_key("tag", k): _v().tag_value(k, val) for k, val in tags.items()}

    @staticmethod
    def _check_status(status: Any) -> str:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        return str(status)

    @staticmethod
    def _no_model(name: str) -> NotFound:
        return NotFound(f"registered model {name!r} does not exist", name=name)

    @staticmethod
    def _no_version(name: str, version: int) -> NotFound:
        return NotFound(f"model {name!r} has no version {version}", name=name, version=version)

    def _lock(self, u: Unit, name: str) -> None:
        if not u.lock_registered_model(name):
            raise self._no_model(name)

    def _version_status(self, u: Unit, name: str, ver: int) -> str:
        status = u.model_version_status(name, ver)
        if status is None:
            if u.get_registered_model(name) is None:
                raise self._no_model(name)
            raise self._no_version(name, ver)
        return status

    @staticmethod
    def _parse_source(source: Any) -> tuple[str, ModelRef | tuple[str, str]]:
        if not isinstance(source, str) or not source:
            raise InvalidInput(f"source must be a non-empty string; accepted: {SOURCE_FORMS}")
        shown = repr(source) if len(source) <= 200 else repr(source[:200]) + "..."
        if source.startswith("runs:/"):
            run_id, _, path = source[len("runs:/") :].partition("/")
            try:
                _v().check_run_id(run_id)
            except InvalidInput:
                raise InvalidInput(
                    f"source {shown} names no valid run id (32 lowercase hex characters); "
                    f"accepted: {SOURCE_FORMS}"
                ) from None
            return "runs", (run_id, safe_prefix(path))
        if source.startswith("models:/"):
            return "models", parse_model_uri(source)
        raise InvalidInput(
            f"source {shown} is not accepted: a model version can only be created from "
            f"{SOURCE_FORMS}",
            source=source[:200],
        )

    def _package_from_run(self, run_id: str, prefix: str) -> tuple[_Package, dict[str, Any]]:
        def fn(u: Unit) -> tuple[Any, list[tuple[str, str, int]]]:
            return u.get_run(run_id), u.list_artifacts(run_id, prefix)

        run, rows = self.store.read(fn)
        if run is None:
            raise NotFound(f"run {run_id} does not exist", run_id=run_id)
        self.authz.require(EXPERIMENT_READ, run.experiment_id)
        if run.lifecycle_stage != "active":
            raise Conflict(f"run {run_id} is deleted; restore it before registering its model")
        base = f"{prefix}/" if prefix else ""
        available = {p[len(base) :]: (d, s) for p, d, s in rows if p.startswith(base)}
        where = f"runs:/{run_id}/{prefix}"
        if MANIFEST not in available:
            raise InvalidInput(
                f"{where} holds no {MANIFEST}: it is not a model package; log one with "
                "dy.log_model(model, 'model') and register runs:/<run_id>/model"
            )
        package = self._inspect_package(available, where)
        for path, (digest, _size) in package.files.items():
            if not self.artifacts.exists(digest):
                raise IntegrityError(
                    f"file {path!r} of {where} (sha256 {digest}) is missing from the artifact store"
                )
        code: dict[str, Any] = {}
        commit = run.tags.get("dockyard.source.git_commit")
        if commit:
            code["git_commit"] = commit
            dirty = run.tags.get("dockyard.source.git_dirty")
            if dirty is not None:
                code["git_dirty"] = str(dirty).lower() in ("1", "true", "yes")
        lineage = {
            "source": f"runs:/{run_id}/{prefix}" if prefix else f"runs:/{run_id}",
            "run_id": run_id,
            "datasets": [
                {"name": d.name, "digest": d.digest, "context": d.context} for d in run.inputs
            ],
            "code": code,
            "metrics": {k: x for k, x in _finite(run.metrics).items() if x is not None},
        }
        return package, lineage

    def _inspect_package(self, available: Mapping[str, tuple[str, int]], where: str) -> _Package:
        """Read the manifest blob and check every listed file against ``available``."""
        if MANIFEST not in available:
            raise InvalidInput(f"{where} has no {MANIFEST}")
        m_digest, m_size = available[MANIFEST]
        if m_size > MAX_MANIFEST_BYTES:
            raise InvalidInput(f"{where}: {MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            raw = b"".join(self.artifacts.open_blob(m_digest))
        except NotFound:
            raise IntegrityError(
                f"{where}: the blob of {MANIFEST} (sha256 {m_digest}) is missing from the "
                "artifact store"
            ) from None
        from dockyard.registry.packaging.manifest import Manifest

        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidInput(f"{where}: {MANIFEST} is not valid JSON ({exc})") from None
        manifest = Manifest.from_dict(data)
        files: dict[str, tuple[str, int]] = {MANIFEST: (m_digest, m_size)}
        for path, entry in manifest.files.items():
            want = (entry["sha256"], int(entry["size"]))
            got = available.get(path)
            if got is None:
                raise InvalidInput(
                    f"{where}: file {path!r} listed in the manifest is not in the package",
                    path=path,
                )
            if got != want:
                raise InvalidInput(
                    f"{where}: file {path!r} does not match the manifest (stored sha256 "
                    f"{got[0]}, {got[1]} bytes; manifest sha256 {want[0]}, {want[1]} bytes): "
                    "the package was altered after it was saved",
                    path=path,
                )
            files[path] = got
        return _Package(
            files=files,
            digest=manifest.digest,
            flavor=manifest.flavor,
            task=manifest.task,
            signature=dict(manifest.signature),
            trusted_pickle=bool(manifest.trusted_pickle),
        )

    def _insert_version(
        self,
        name: str,
        package: _Package,
        lineage: Mapping[str, Any],
        description: str,
        tags: Mapping[str, str],
    ) -> ModelVersion:
        def fn(u: Unit) -> ModelVersion:
            now = now_ms()
            if u.insert_registered_model(name, "", self.actor.name, {}, now):
                record_event(
                    u, self.actor, "registered_model.create", "registered_model", name, tags=[]
                )
            self._lock(u, name)
            ver = u.next_model_version(name)
            u.insert_model_version(
                {
                    "name": name,
                    "version": ver,
                    "status": CANDIDATE,
                    "source": lineage["source"],
                    "run_id": lineage["run_id"],
                    "package_digest": package.digest,
                    "flavor": package.flavor,
                    "task": package.task,
                    "signature": package.signature,
                    "trusted_pickle": package.trusted_pickle,
                    "datasets": lineage["datasets"],
                    "code": lineage["code"],
                    "metrics": lineage["metrics"],
                    "description": description,
                    "created_by": self.actor.name,
                    "creation_time": now,
                    "last_update_time": now,
                    "status_reason": None,
                    "replacement_version": None,
                },
                package.files,
                tags,
            )
            u.update_registered_model(name, now)
            u.insert_status_event(name, ver, None, CANDIDATE, self.actor.name, now, None)
            record_event(
                u,
                self.actor,
                "model_version.create",
                "model_version",
                _mv_id(name, ver),
                source=lineage["source"],
                package_digest=package.digest,
                flavor=package.flavor,
                trusted_pickle=package.trusted_pickle,
            )
            mv = u.get_model_version(name, ver)
            assert mv is not None
            return mv

        return self.store.write(fn)


def _clean_comment(comment: Any) -> str:
    if comment is None:
        return ""
    return _clean_text("comment", comment, MAX_REASON).strip()


def _latest_request(steps: Sequence[Approval], digest: str) -> Approval | None:
    """The newest request made for ``digest`` (the version's current package)."""
    for step in reversed(steps):
        if step.action == APPROVAL_REQUEST and step.package_digest == digest:
            return step
    return None


def _allowed_text(current: str) -> str:
    allowed = TRANSITIONS[current]
    if not allowed:
        return f"{current} is a final status: no transition is allowed"
    return f"allowed from {current}: {', '.join(allowed)}"


def _as_frame(data: Any) -> Any:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    try:
        return pd.DataFrame(data)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"validation data must be a DataFrame, a dict of columns or a list of records ({exc})"
        ) from None


def _frame_digest(frame: Any) -> str:
    """sha256 over the column names and the row hashes of the data (order matters)."""
    import pandas as pd

    h = hashlib.sha256(usedforsecurity=False)
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


__all__ = ["SOURCE_FORMS", "RegistryService"]


def production_approval(u: Unit, name: str, ver: int) -> Approval | None:
    """Inside a transaction: None when the model's approval policy is off, the approval that
    lets the version serve production (and live traffic) when it is on, else a Conflict saying
    exactly what is missing. Used by the registry's move to production and by serving."""
    required = u.model_requires_approval(name)
    if required is None:
        raise RegistryService._no_model(name)
    mv = u.get_model_version(name, ver)
    if mv is None:
        raise RegistryService._no_version(name, ver)
    if not required:
        return None
    steps = u.list_approvals(name, ver)
    digest = mv.package_digest
    decisions = [s for s in steps if s.action in (APPROVAL_APPROVE, APPROVAL_REJECT)]
    decision = decisions[-1] if decisions else None
    if (
        decision is not None
        and decision.action == APPROVAL_APPROVE
        and decision.package_digest == digest
        and decision.actor not in (mv.created_by, decision.requester)
    ):
        return decision
    request = _latest_request(steps, digest)
    requester = request.actor if request is not None else None
    if decision is not None and decision.action == APPROVAL_APPROVE:
        if decision.package_digest != digest:
            why = (
                f"the approval by {decision.actor} was given for package "
                f"{decision.package_digest[:12]}, but the version's package is "
                f"{digest[:12]}: a different package cannot ride on an approval"
            )
        else:
            why = f"the approval by {decision.actor} breaks the four-eyes rule"
    elif request is not None and (decision is None or request.id > decision.id):
        why = f"the request by {requester} is waiting for an approver"
    elif decision is not None and decision.package_digest == digest:
        why = f"it was rejected by {decision.actor}: {decision.comment}"
    elif request is not None:
        why = f"the request by {requester} is waiting for an approver"
    else:
        why = f"no approval was requested (dockyard models approval request {name}/{ver})"
    raise Conflict(
        f"version {ver} of model {name!r} needs an approval from a user with the approver "
        f"role who is neither the author ({mv.created_by}) nor the requester "
        f"({requester or 'none yet'}) before it can go to production: {why}",
        name=name,
        version=ver,
        missing="approval",
        author=mv.created_by,
        requester=requester,
        package_digest=digest,
    )


def record_serving_status(
    u: Unit, actor: Actor, name: str, ver: int, to_status: str, reason: str
) -> str | None:
    """Inside a transaction: move a version to ``to_status`` because serving put it there (100 %
    of an endpoint's traffic -> production; replaced -> deprecated), with the status history
    and a ``model_version.transition`` audit event like any move. The caller checked the
    permission (``endpoint:deploy``) and, for production, the approval. Returns the previous
    status, or None when nothing changed (already there, or not a legal move: a version that is
    not production is never deprecated by a rollout)."""
    current = u.model_version_status(name, ver)
    if current is None or current == to_status or to_status not in TRANSITIONS[current]:
        return None
    now = now_ms()
    u.update_model_version(name, ver, now, status=to_status, status_reason=reason)
    u.insert_status_event(name, ver, current, to_status, actor.name, now, reason)
    record_event(
        u,
        actor,
        "model_version.transition",
        "model_version",
        _mv_id(name, ver),
        from_status=current,
        to_status=to_status,
        reason=reason,
    )
    return current
