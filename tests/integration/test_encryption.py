"""Encryption at rest through the services and the CLI, on SQLite and PostgreSQL: a store that
turns encryption on, rotates its key and rekeys, with every blob still readable and the act
audited; a non-admin cannot rekey."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from dockyard.artifacts import ArtifactStore
from dockyard.artifacts.crypto import BlobCipher, EnvKeyProvider, key_id, new_key
from dockyard.backend import Backend
from dockyard.cli.main import main
from dockyard.core.config import Settings
from dockyard.core.errors import PermissionDenied
from dockyard.governance.audit import Actor
from dockyard.governance.encryption import REKEY_ACTION, rekey_artifacts


def _kid(key: str) -> str:
    return key_id(base64.b64decode(key))


def test_turn_on_rotate_and_rekey(backend: Backend, settings: Settings) -> None:
    service = backend.tracking(Actor("tester"))
    exp = service.create_experiment("enc")
    run = service.start_run(exp.experiment_id)
    contents = [b"plain before encryption %d" % i for i in range(3)]
    for i, data in enumerate(contents):
        service.upload_artifact(run.run_id, f"f{i}.txt", iter([data]))
    root = backend.artifacts.root_uri
    old, new = new_key(), new_key()

    on = ArtifactStore(root, BlobCipher(EnvKeyProvider(old)))
    digests = sorted(on.iter_digests())
    assert {on.stored_key_id(d) for d in digests} == {None}
    seen: list[tuple[str, bool]] = []
    report = rekey_artifacts(
        backend.store, on, Actor("tester"), on_blob=lambda d, c: seen.append((d, c))
    )
    assert (report.blobs, report.rewritten, report.key_id) == (3, 3, _kid(old))
    assert sorted(d for d, _ in seen) == digests
    assert {on.stored_key_id(d) for d in digests} == {_kid(old)}
    assert rekey_artifacts(backend.store, on, Actor("tester")).rewritten == 0  # idempotent

    rotated = ArtifactStore(root, BlobCipher(EnvKeyProvider(f"{new},{old}")))
    assert rekey_artifacts(backend.store, rotated, Actor("tester")).rewritten == 3
    only_new = ArtifactStore(root, BlobCipher(EnvKeyProvider(new)))
    assert sorted(b"".join(only_new.open_blob(d)) for d in digests) == sorted(contents)

    # The run's artifacts read the same through the service (no key: a clear refusal).
    keyed = Backend(settings, backend.store, only_new)
    listed = keyed.tracking(Actor("tester")).list_artifacts(run.run_id)
    assert sorted(f.path for f in listed) == ["f0.txt", "f1.txt", "f2.txt"]
    _, chunks = keyed.tracking(Actor("tester")).open_artifact(run.run_id, "f1.txt")
    assert b"".join(chunks) == contents[1]

    events = service.list_audit_events(action=REKEY_ACTION)
    assert [e.details["rewritten"] for e in events] == [3, 0, 3]
    assert events[-1].details["key_id"] == _kid(new)
    assert all(new not in str(e.details) and old not in str(e.details) for e in events)


def test_only_an_admin_may_rekey(backend: Backend) -> None:
    identity = backend.identity(Actor("boss"))
    identity.create_user("boss", roles=["admin"])
    identity.create_user("vic", roles=["editor"])
    store = ArtifactStore(backend.artifacts.root_uri, BlobCipher(EnvKeyProvider(new_key())))
    with pytest.raises(PermissionDenied, match="admin"):
        rekey_artifacts(backend.store, store, Actor("vic"))
    assert rekey_artifacts(backend.store, store, Actor("boss")).blobs == 0


def test_cli_rekey(sdk_store: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from dockyard.client import client as client_module
    from dockyard.client.client import Client

    client = Client()
    run = client.start_run(client.create_experiment("cli-enc").experiment_id)
    client.upload_artifact(run.run_id, "notes.txt", iter([b"patient notes"]))
    key = new_key()
    monkeypatch.setenv("DOCKYARD_ENCRYPTION_KEY", key)
    assert main(["artifacts", "rekey"]) == 0
    out = capsys.readouterr().out
    assert "1 blobs: 1 rewritten" in out and _kid(key) in out
    blob = next(p for p in (sdk_store / "artifacts" / "blobs").rglob("*") if p.is_file())
    assert blob.read_bytes().startswith(b"\x89DYENC")
    # The SDK, configured with the key, still reads the artifact.
    client_module._backends.clear()
    _, chunks = Client().open_artifact(run.run_id, "notes.txt")
    assert b"".join(chunks) == b"patient notes"
