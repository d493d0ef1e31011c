"""Artifact storage: the content-addressed blob store and artifact path safety.

:class:`ArtifactStore` keeps immutable blobs under their sha256 in a local folder or any
fsspec URI; :mod:`dockyard.artifacts.paths` validates the user-supplied paths that name
artifacts inside a run. A foundation: it imports nothing from Dockyard but
:mod:`dockyard.core.errors`, and nothing from the services above it.
"""

from dockyard.artifacts.paths import (
    MAX_PATH_LENGTH,
    iter_local_folder,
    safe_local_destination,
    safe_prefix,
    safe_relpath,
)
from dockyard.artifacts.store import CHUNK_SIZE, ArtifactStore, BlobInfo, Chunks, is_digest

__all__ = [
    "CHUNK_SIZE",
    "MAX_PATH_LENGTH",
    "ArtifactStore",
    "BlobInfo",
    "Chunks",
    "is_digest",
    "iter_local_folder",
    "safe_local_destination",
    "safe_prefix",
    "safe_relpath",
]
