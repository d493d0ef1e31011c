"""Bring every stored blob to the current encryption setting, as an audited admin act.

Turning encryption on does not touch what is stored: old blobs stay readable as plaintext and
new ones are encrypted. :func:`rekey_artifacts` rewrites the rest -- encrypts plaintext blobs,
moves blobs encrypted with an older key to the current one after a rotation (so the old key can
then be retired), or decrypts them all when encryption was turned off. It needs the ``admin``
permission and records one ``artifacts.rekey`` audit event with the counts and the key id
(never a key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.governance.audit import Actor, record_event

if TYPE_CHECKING:
    from dockyard.artifacts import ArtifactStore
    from dockyard.store.base import Store

__all__ = ["RekeyReport", "rekey_artifacts"]

REKEY_ACTION = "artifacts.rekey"


@dataclass(frozen=True)
class RekeyReport:
    """What a rekey did: blobs looked at, rewritten, already current; the target key id."""

    blobs: int
    rewritten: int
    current: int
    key_id: str | None


def rekey_artifacts(
    store: Store,
    artifacts: ArtifactStore,
    actor: Actor,
    *,
    on_blob: Callable[[str, bool], Any] | None = None,
) -> RekeyReport:
    """Rewrite every blob not yet stored the way ``artifacts`` writes now (see module notes).

    ``on_blob(digest, rewritten)`` is called after each blob (for a progress bar). Safe to run
    while the server runs (each rewrite is atomic) and to run again after an interruption.
    """
    from dockyard.governance.permissions import Authorizer

    (actor.authorizer or Authorizer.local(store, actor.name)).require("admin")
    target = artifacts.current_key_id
    blobs = rewritten = 0
    try:
        for digest in artifacts.iter_digests():
            changed = artifacts.rewrite(digest)
            blobs += 1
            rewritten += changed
            if on_blob is not None:
                on_blob(digest, changed)
    finally:
        # Recorded even when interrupted: what was rewritten was rewritten.
        store.write(
            lambda u: record_event(
                u,
                actor,
                REKEY_ACTION,
                "artifact_store",
                artifacts.root_uri,
                key_id=target,
                encrypted=target is not None,
                blobs=blobs,
                rewritten=rewritten,
            )
        )
    return RekeyReport(blobs, rewritten, blobs - rewritten, target)
