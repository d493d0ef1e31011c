"""Temporary files and folders Dockyard creates are private: files 0600, folders 0700.

Checked while they exist (from inside the stream that fills them, or from the call that uses
them), not only after the fact: the artifact store's upload temporaries, the partial files of
downloads (store, SDK over HTTP, registry package files), the registry's package cache, and the
folder ``log_model`` saves a package into. Finished downloads get the user's usual mode
(0666 less the umask); the package cache refuses a folder that others can write to.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.artifacts import ArtifactStore
from dockyard.artifacts._private import private_dir
from dockyard.core.errors import PermissionDenied

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_store_upload_temporaries_are_private_while_written(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "root"))
    seen: dict[str, int] = {}

    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        tmp = tmp_path / "root" / "tmp"
        (part,) = list(tmp.iterdir())
        seen.update(tmp=mode(tmp), part=mode(part), root=mode(tmp_path / "root"))
        yield b"b" * 1000

    info = store.put_stream(chunks())
    assert seen == {"tmp": 0o700, "part": 0o600, "root": 0o700}
    blob = store.blob_path(info.digest)
    for level in (blob.parent, blob.parent.parent, blob.parent.parent.parent):
        assert mode(level) == 0o700


def test_store_download_is_private_until_complete(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "root"))
    info = store.put_stream([b"x" * (3 * 1024 * 1024)])  # three chunks
    dest = tmp_path / "out" / "file.bin"
    seen: list[int] = []
    real = store.open_blob

    def watching(digest: str) -> Iterator[bytes]:
        for chunk in real(digest):
            seen.extend(mode(p) for p in _parts(dest.parent))
            yield chunk

    store.open_blob = watching  # type: ignore[method-assign]
    store.download_blob(info.digest, dest)
    assert seen and set(seen) == {0o600}
    assert mode(dest) == 0o666 & ~_umask()
    assert _parts(dest.parent) == []


def test_remote_downloads_are_private_until_complete(
    tmp_path: Path, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote SDK's partial files (artifact downloads and registry package files): 0600
    while bytes arrive, the user's usual mode once verified and renamed."""
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    from dockyard.client import rest
    from dockyard.client.rest import RestTrackingService
    from dockyard.client.rest_registry import RestRegistryService
    from dockyard.core.config import load_settings
    from dockyard.server.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    out = tmp_path / "dl"
    out.mkdir()
    seen: list[int] = []
    real_next = rest._VerifiedDownload.__next__

    def watching(self: Any) -> bytes:
        seen.extend(mode(p) for p in out.rglob("*.part"))
        return real_next(self)

    monkeypatch.setattr(rest._VerifiedDownload, "__next__", watching)
    settings = load_settings(overrides={"home": str(tmp_path / "home")}, environ={})
    with TestClient(create_app(settings)) as http:
        remote = RestTrackingService("http://testserver")
        registry = RestRegistryService("http://testserver")
        for service in (remote, registry):
            service._http.close()
            service._http = http  # the in-process app instead of a socket
        run = remote.start_run()
        for f in sorted(package.rglob("*")):
            if f.is_file():
                rel = f.relative_to(package).as_posix()
                remote.upload_artifact(run.run_id, f"model/{rel}", [f.read_bytes()])
        registry.create_model_version("m", f"runs:/{run.run_id}/model")
        remote.download_artifacts(run.run_id, "model", out / "a")
        registry.download_package("m", 1, out / "b")
    assert seen and set(seen) == {0o600}, seen
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 2 * len([p for p in package.rglob("*") if p.is_file()])
    assert {mode(p) for p in files} == {0o666 & ~_umask()}
    assert list(out.rglob("*.part")) == []


def test_partial_download_files_are_created_private(tmp_path: Path) -> None:
    from dockyard.artifacts._private import create_private, publish_mode

    part = tmp_path / "x.part"
    with create_private(part) as f:
        f.write(b"partial")
        assert mode(part) == 0o600
    publish_mode(part)
    assert mode(part) == 0o666 & ~_umask()
    with pytest.raises(FileExistsError):
        create_private(part)  # O_EXCL: never an existing file (or a planted link)
    link = tmp_path / "link.part"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        create_private(link)
    assert not (tmp_path / "elsewhere").exists()


def test_registry_cache_is_private(
    tmp_path: Path, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dockyard.backend import Backend
    from dockyard.core.config import load_settings
    from dockyard.governance.audit import Actor

    settings = load_settings(overrides={"home": str(tmp_path / "home")}, environ={})
    backend = Backend.open(settings)
    try:
        tracking = backend.tracking(Actor("t"))
        run = tracking.start_run()
        for f in sorted(package.rglob("*")):
            if f.is_file():
                rel = f.relative_to(package).as_posix()
                tracking.upload_artifact(run.run_id, f"model/{rel}", [f.read_bytes()])
        registry = backend.registry(Actor("t"))
        registry.cache_dir = tmp_path / "cache" / "deep" / "packages"
        registry.create_model_version("m", f"runs:/{run.run_id}/model")
        seen: dict[str, int] = {}
        import dockyard.registry.cache as cache

        real_materialize = cache.materialize

        def spy(cache_dir: Path, mv: Any, fill: Any) -> Path:
            def watched_fill(dest: Path, mv: Any) -> None:
                seen["building"] = mode(dest)  # the temporary folder being filled
                fill(dest, mv)

            return real_materialize(cache_dir, mv, watched_fill)

        monkeypatch.setattr(cache, "materialize", spy)
        folder = registry.materialize("m", 1)
        assert seen == {"building": 0o700}
        assert mode(folder) == 0o700
        for level in ("cache", "cache/deep", "cache/deep/packages"):
            assert mode(tmp_path / level) == 0o700, level
        for d in (tmp_path / "cache" / "deep" / "packages").iterdir():
            assert mode(d) == 0o700
    finally:
        backend.close()


def test_registry_cache_refuses_a_folder_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionDenied):
        private_dir(shared / "packages")  # parent is ours; the new level is made 0700
        private_dir(shared)
    target = tmp_path / "planted"
    target.mkdir()
    target.chmod(0o757)
    with pytest.raises(PermissionDenied):
        private_dir(target)
    link = tmp_path / "linked"
    link.symlink_to(tmp_path / "shared", target_is_directory=True)
    with pytest.raises(PermissionDenied):
        private_dir(link)
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert made == tmp_path / "a" / "b" / "c"


def test_log_model_saves_into_a_private_folder(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import dockyard as dy
    import dockyard.registry.packaging as packaging

    seen: dict[str, int] = {}
    real_save = packaging.save_model

    def spy(model: Any, folder: Any, **kwargs: Any) -> Any:
        seen["tmp"] = mode(Path(folder).parent)
        result = real_save(model, folder, **kwargs)
        seen["package"] = mode(folder)
        return result

    monkeypatch.setattr(packaging, "save_model", spy)
    x = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0)})
    y = (x["a"] > 4).astype(int)
    with dy.start_run():
        dy.log_model(LogisticRegression().fit(x, y), "model")
    assert seen == {"tmp": 0o700, "package": 0o700}
