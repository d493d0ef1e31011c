"""Verified package folders on this machine: the registry's package cache, and downloads.

One mechanism for both registries: :class:`~dockyard.registry.service.RegistryService` fills
folders from the artifact store's blobs, :class:`~dockyard.client.rest_registry.RestRegistryService`
from HTTP downloads; each passes its ``fill(dest, mv)``, which writes every file of ``mv`` below
``dest`` and verifies it (sha256 and size) against the registry's record.

* :func:`materialize` keeps a version's package in ``<cache_dir>/<package_digest>/``: built in a
  temporary sibling folder and renamed into place, re-verified (exact file set, sizes, sha256)
  on every reuse; a damaged or altered folder is moved aside and rebuilt.
* :func:`download_package` copies a package into a missing or empty folder, built beside it and
  renamed into place, so a failed download leaves nothing behind.

Import-light: no SQLAlchemy, no pandas (the REST client imports it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from dockyard.artifacts import is_digest
from dockyard.artifacts._private import private_dir
from dockyard.core.errors import Conflict, DockyardError, IntegrityError
from dockyard.core.registry_entities import ModelVersion
from dockyard.registry.packaging.manifest import MANIFEST_NAME as MANIFEST
from dockyard.registry.packaging.manifest import Manifest

__all__ = ["MANIFEST", "Fill", "cache_ok", "download_package", "materialize", "sha256_file"]

#: Writes every file of a version's package below a folder, each verified.
Fill = Callable[[Path, ModelVersion], None]


def materialize(cache_dir: Path, mv: ModelVersion, fill: Fill) -> Path:
    """``<cache_dir>/<package_digest>/`` holding ``mv``'s package, verified; filled on first
    use (or when the folder there no longer verifies)."""
    if not is_digest(mv.package_digest):
        raise IntegrityError(f"version {mv.version} of {mv.name!r} has a bad package digest")
    final = cache_dir / mv.package_digest
    if final.is_dir():
        if cache_ok(final, mv):
            return final
        # Damaged or altered: move it aside (atomic) and rebuild from verified files.
        junk = final.with_name(f".stale-{mv.package_digest[:16]}-{uuid.uuid4().hex}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(final, junk)
        shutil.rmtree(junk, ignore_errors=True)
    # Every level 0700, and never a folder another user owns or can write to (the default
    # cache of a remote artifact root is in the shared temporary folder).
    private_dir(cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{mv.package_digest[:16]}-", dir=cache_dir))
    try:
        fill(tmp, mv)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished first: use its folder if it verifies.
            if final.is_dir() and cache_ok(final, mv):
                return final
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def download_package(dest_dir: str | os.PathLike[str], mv: ModelVersion, fill: Fill) -> Path:
    """Copy ``mv``'s package into ``dest_dir`` (missing or an empty folder); returns it."""
    dest = Path(dest_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} exists and is not an empty folder; pick a new destination")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the destination and renamed into place: a failed download (a damaged
    # blob...) leaves nothing behind.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        fill(tmp, mv)
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def cache_ok(folder: Path, mv: ModelVersion) -> bool:
    """True when ``folder`` holds exactly the version's files, each with the right size and
    sha256. manifest.json may differ (another version with the same package digest) as long
    as it describes the same package digest."""
    try:
        found: set[str] = set()
        for root, _dirs, names in os.walk(folder):
            for n in names:
                found.add(Path(root, n).relative_to(folder).as_posix())
        if found != set(mv.files):
            return False
        for path, f in mv.files.items():
            p = folder / path
            if p.is_symlink():
                return False
            if path == MANIFEST:
                continue
            if p.stat().st_size != int(f["size"]) or sha256_file(p) != f["sha256"]:
                return False
        raw = (folder / MANIFEST).read_bytes()
        if hashlib.sha256(raw, usedforsecurity=False).hexdigest() == mv.files[MANIFEST]["sha256"]:
            return True
        return digest_of_manifest(raw) == mv.package_digest
    except (OSError, ValueError, DockyardError):
        return False


def sha256_file(path: Path) -> str:
    h = hashlib.sha256(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def digest_of_manifest(raw: bytes) -> str:
    """The package digest a manifest describes (the packaging layer's definition)."""
    return Manifest.from_dict(json.loads(raw)).digest
