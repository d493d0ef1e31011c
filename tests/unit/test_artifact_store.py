"""The content-addressed artifact store: local folder and fsspec (memory://) roots."""

from __future__ import annotations

import ast
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import dockyard.artifacts.store as store_module
from dockyard.artifacts import CHUNK_SIZE, ArtifactStore, BlobInfo, is_digest
from dockyard.core.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)

SRC = Path(store_module.__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "artifacts"))
        return
    import fsspec

    # The memory filesystem is process-global: a unique root per test, removed afterwards.
    name = f"dockyard-test-{uuid.uuid4().hex}"
    yield ArtifactStore(f"memory://{name}/artifacts")
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


def read_all(store: ArtifactStore, digest: str) -> bytes:
    return b"".join(store.open_blob(digest))


def temp_files(store: ArtifactStore) -> list[str]:
    if store.local_root is not None:
        tmp = store.local_root / "tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
    fs = store._filesystem()
    tmp = store._remote_path("tmp")
    return sorted(fs.ls(tmp)) if fs.exists(tmp) else []


def tamper(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Overwrite a stored blob behind the store's back (disk corruption, an attacker)."""
    if store.is_local:
        path = store.blob_path(digest)
        path.chmod(0o600)
        path.write_bytes(data)
    else:
        store._filesystem().pipe_file(store._remote_blob(digest), data)


# ---------------------------------------------------------------- basics


def test_round_trip_put_stream(store: ArtifactStore) -> None:
    data = b"hello dockyard\n" * 1000
    info = store.put_stream([data[:100], data[100:5000], data[5000:]])
    assert info == BlobInfo(digest=sha(data), size=len(data))
    assert store.exists(info.digest)
    assert store.size(info.digest) == len(data)
    assert read_all(store, info.digest) == data
    assert list(store.iter_digests()) == [info.digest]


def test_round_trip_put_file_and_download(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 17)  # several chunks and a ragged end
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    info = store.put_file(src)
    assert info == BlobInfo(sha(data), len(data))
    dest = tmp_path / "out" / "nested" / "model.bin"  # parents created as needed
    assert store.download_blob(info.digest, dest) == info
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["model.bin"]  # no temp left


def test_put_stream_accepts_file_objects_and_bytes_like_chunks(store: ArtifactStore) -> None:
    data = os.urandom(CHUNK_SIZE + 5)
    assert store.put_stream(io.BytesIO(data)).digest == sha(data)
    info = store.put_stream([bytearray(b"ab"), memoryview(b"cd"), b"", b"e"])
    assert info == BlobInfo(sha(b"abcde"), 5)
    assert read_all(store, info.digest) == b"abcde"


def test_empty_blob(store: ArtifactStore) -> None:
    info = store.put_stream([], max_bytes=0)
    assert info == BlobInfo(sha(b""), 0)
    assert read_all(store, info.digest) == b""


def test_str_chunks_are_refused(store: ArtifactStore) -> None:
    with pytest.raises(InvalidInput):
        store.put_stream(["text"])  # type: ignore[list-item]
    assert temp_files(store) == []


def test_dedup_of_identical_content(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"same bytes" * 100
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    first = store.put_file(src)
    second = store.put_stream([data])
    third = store.put_file(src)
    assert first == second == third
    assert list(store.iter_digests()) == [first.digest]
    assert temp_files(store) == []


def test_local_layout_and_private_modes(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = ArtifactStore(str(root))
    seen: dict[str, int] = {}

    def chunks() -> Iterator[bytes]:
        yield b"first"
        # Mid-write: the temporary file exists, private to the owner.
        (tmp,) = list((root / "tmp").iterdir())
        seen["tmp_file"] = stat.S_IMODE(tmp.stat().st_mode)
        seen["tmp_dir"] = stat.S_IMODE((root / "tmp").stat().st_mode)
        yield b"second"

    info = store.put_stream(chunks())
    d = info.digest
    expected = root / "blobs" / "sha256" / d[:2] / d[2:4] / d
    assert store.blob_path(d) == expected
    assert expected.read_bytes() == b"firstsecond"
    if sys.platform != "win32":
        assert seen == {"tmp_file": 0o600, "tmp_dir": 0o700}
        for folder in [root, root / "blobs", root / "blobs" / "sha256", expected.parent]:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert store.blob_uri(d) == str(expected)


def test_construction_does_no_io(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    store = ArtifactStore(str(root))
    assert not store.exists("0" * 64)
    assert list(store.iter_digests()) == []
    assert store.clean_temp(0) == 0
    assert not root.exists()
    store.put_stream([b"x"])
    assert root.is_dir()


def test_file_uri_and_relative_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "with space"
    store = ArtifactStore(root.as_uri())
    assert store.is_local and store.local_root == root
    info = store.put_stream([b"x"])
    assert store.blob_path(info.digest).is_relative_to(root)
    monkeypatch.chdir(tmp_path)
    rel = ArtifactStore("rel-root")
    assert rel.blob_path(info.digest).is_relative_to(tmp_path / "rel-root")


@pytest.mark.parametrize("uri", ["", "   ", "file://otherhost/x"])
def test_bad_roots(uri: str) -> None:
    with pytest.raises(InvalidInput):
        ArtifactStore(uri)


def test_memory_root_is_remote() -> None:
    store = ArtifactStore(f"memory://dockyard-test-{uuid.uuid4().hex}/a")
    assert not store.is_local and store.local_root is None
    with pytest.raises(InvalidInput, match="local"):
        store.blob_path("0" * 64)
    assert store.blob_uri("0" * 64).startswith("memory://")


# ---------------------------------------------------------------- digests


BAD_DIGESTS: list[object] = [
    "../../etc/passwd",
    "..",
    "",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "a" * 64 + "\n",
    "a" * 32 + "/" + "a" * 31,
    "a" * 62 + "..",
    "sha256:" + "a" * 64,
    "\uff10" * 64,  # fullwidth digits are not hex here
    None,
    b"a" * 64,
    64,
]


@pytest.mark.parametrize("digest", BAD_DIGESTS, ids=[repr(d)[:30] for d in BAD_DIGESTS])
def test_invalid_digests_are_refused_everywhere(
    store: ArtifactStore, tmp_path: Path, digest: object
) -> None:
    calls = [
        lambda: store.exists(digest),  # type: ignore[arg-type]
        lambda: store.open_blob(digest),  # type: ignore[arg-type]
        lambda: store.download_blob(digest, tmp_path / "d"),  # type: ignore[arg-type]
        lambda: store.delete_blob(digest),  # type: ignore[arg-type]
        lambda: store.size(digest),  # type: ignore[arg-type]
        lambda: store.blob_uri(digest),  # type: ignore[arg-type]
        lambda: store.blob_path(digest),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    assert not (tmp_path / "d").exists()
    assert not is_digest(digest)


def test_missing_blob(store: ArtifactStore, tmp_path: Path) -> None:
    digest = sha(b"never stored")
    assert not store.exists(digest)
    with pytest.raises(NotFound, match=digest):
        store.open_blob(digest)  # raised at the call, not on first iteration
    with pytest.raises(NotFound):
        store.size(digest)
    with pytest.raises(NotFound):
        store.download_blob(digest, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert store.delete_blob(digest) is False


def test_delete_blob(store: ArtifactStore) -> None:
    info = store.put_stream([b"bye"])
    assert store.delete_blob(info.digest) is True
    assert not store.exists(info.digest)
    assert list(store.iter_digests()) == []
    assert store.put_stream([b"bye"]) == info  # and it can come back


# ---------------------------------------------------------------- integrity


def test_tampered_blob_is_caught_on_read(store: ArtifactStore) -> None:
    data = os.urandom(2 * CHUNK_SIZE)
    info = store.put_stream([data])
    tamper(store, info.digest, data[:-1] + bytes([data[-1] ^ 1]))  # one bit, same size
    chunks = store.open_blob(info.digest)
    with pytest.raises(IntegrityError) as exc:
        for _ in chunks:
            pass
    assert info.digest in exc.value.message
    assert exc.value.details["digest"] == info.digest
    assert exc.value.code == "integrity_error"


def test_tampered_blob_is_never_downloaded(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_stream([b"genuine model"])
    tamper(store, info.digest, b"evil model!!!")
    dest = tmp_path / "dl" / "model.bin"
    with pytest.raises(IntegrityError):
        store.download_blob(info.digest, dest)
    assert list((tmp_path / "dl").iterdir()) == []  # neither dest nor a temp file
    # An existing file at dest is left untouched by a failed download.
    dest.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        store.download_blob(info.digest, dest)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["model.bin"]


def test_truncated_blob_is_healed_by_the_next_put(store: ArtifactStore) -> None:
    data = b"0123456789" * 1000
    info = store.put_stream([data])
    tamper(store, info.digest, data[:10])  # wrong size: clearly damaged
    with pytest.raises(IntegrityError):
        read_all(store, info.digest)
    assert store.put_stream([data]) == info
    assert read_all(store, info.digest) == data


def test_unconsumed_reader_holds_nothing_open(store: ArtifactStore) -> None:
    info = store.put_stream([b"x" * 10])
    it = store.open_blob(info.digest)
    del it  # never started: no file was opened, so no ResourceWarning (which -W error raises)
    it = store.open_blob(info.digest)
    assert next(iter(it)) == b"x" * 10
    it.close()  # type: ignore[attr-defined]  # abandoned half-way: the file is closed


# ---------------------------------------------------------------- limits and failures


def test_payload_too_large_leaves_nothing(store: ArtifactStore) -> None:
    with pytest.raises(PayloadTooLarge) as exc:
        store.put_stream([b"12345", b"678901"], max_bytes=10)
    assert exc.value.http_status == 413
    assert temp_files(store) == []
    assert list(store.iter_digests()) == []
    assert store.put_stream([b"12345", b"67890"], max_bytes=10).size == 10  # exactly at limit


def test_payload_limit_stops_reading_early(store: ArtifactStore) -> None:
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(PayloadTooLarge):
        store.put_stream(endless(), max_bytes=10_000)
    assert pulled == 11
    assert temp_files(store) == []


def test_negative_max_bytes(store: ArtifactStore) -> None:
    with pytest.raises(InvalidInput):
        store.put_stream([b"x"], max_bytes=-1)


def test_failing_source_leaves_no_blob(store: ArtifactStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 1000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(broken())
    assert temp_files(store) == []
    assert list(store.iter_digests()) == []


def test_failure_just_before_the_rename_leaves_no_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(str(tmp_path / "a"))

    def crash(src: str, dst: str) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr(store_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        store.put_stream([b"data"])
    monkeypatch.undo()
    assert temp_files(store) == []
    assert list(store.iter_digests()) == []


def test_put_file_errors(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        store.put_file(tmp_path / "missing.bin")
    if sys.platform != "win32":
        with pytest.raises(InvalidInput):
            store.put_file(tmp_path)
    assert temp_files(store) == []


def test_remote_put_file_skips_upload_of_known_content(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://dockyard-test-{uuid.uuid4().hex}/a")
    src = tmp_path / "f.bin"
    src.write_bytes(b"known")
    info = store.put_file(src)

    def no_upload(*args: object, **kwargs: object) -> BlobInfo:
        raise AssertionError("uploaded again")

    store._put_remote = no_upload  # type: ignore[method-assign]
    assert store.put_file(src) == info


def test_remote_put_file_detects_a_file_changing_mid_upload(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://dockyard-test-{uuid.uuid4().hex}/a")
    src = tmp_path / "f.bin"
    src.write_bytes(b"version 1")
    real_exists = store.exists

    def exists_then_modify(digest: str) -> bool:
        # Runs between the pre-hash and the upload: the file is rewritten in that gap.
        src.write_bytes(b"version 2, longer")
        return real_exists(digest)

    store.exists = exists_then_modify  # type: ignore[method-assign]
    with pytest.raises(Conflict):
        store.put_file(src)
    assert temp_files(store) == []
    assert list(store.iter_digests()) == []


# ---------------------------------------------------------------- clean_temp


def test_clean_temp_removes_only_old_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "a"
    store = ArtifactStore(str(root))
    store.put_stream([b"x"])  # creates tmp/
    old = root / "tmp" / "old.part"
    fresh = root / "tmp" / "fresh.part"
    old.write_bytes(b"stale")
    fresh.write_bytes(b"in progress")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.clean_temp(older_than_seconds=600) == 1
    assert sorted(p.name for p in (root / "tmp").iterdir()) == ["fresh.part"]
    assert store.clean_temp(0) == 1
    assert temp_files(store) == []
    assert len(list(store.iter_digests())) == 1  # blobs are never touched


def test_clean_temp_remote() -> None:
    store = ArtifactStore(f"memory://dockyard-test-{uuid.uuid4().hex}/a")
    assert store.clean_temp(0) == 0
    fs = store._filesystem()
    fs.pipe_file(store._remote_path("tmp", "left.part"), b"partial")
    assert store.clean_temp(3600) == 0  # too fresh
    assert store.clean_temp(0) == 1
    assert temp_files(store) == []


# ---------------------------------------------------------------- streaming


def test_streaming_keeps_memory_flat(tmp_path: Path) -> None:
    size = 50 * 1024 * 1024
    src = tmp_path / "big.bin"
    block = os.urandom(CHUNK_SIZE)
    h = hashlib.sha256()
    with src.open("wb") as f:
        for i in range(size // CHUNK_SIZE):
            piece = i.to_bytes(8, "big") + block[8:]  # every chunk different
            f.write(piece)
            h.update(piece)
    del block, piece
    store = ArtifactStore(str(tmp_path / "a"))
    limit = 8 * 1024 * 1024  # a handful of chunks, far below the 50 MB file

    tracemalloc.start()
    try:
        info = store.put_file(src)
        _, peak_put = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        for chunk in store.open_blob(info.digest):
            total += len(chunk)
        _, peak_read = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.download_blob(info.digest, tmp_path / "copy.bin")
        _, peak_download = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with src.open("rb") as f:
            assert store.put_stream(f, max_bytes=size) == info
        _, peak_stream = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert info == BlobInfo(h.hexdigest(), size)
    assert total == size
    assert (tmp_path / "copy.bin").stat().st_size == size
    for peak in (peak_put, peak_read, peak_download, peak_stream):
        assert peak < limit, f"peak {peak} bytes while streaming a {size} byte blob"


# ---------------------------------------------------------------- crash safety

CHILD = textwrap.dedent(
    """
    import sys, time
    from dockyard.artifacts import ArtifactStore

    store = ArtifactStore(sys.argv[1])
    print(store.put_stream([b"a complete blob"]).digest, flush=True)

    def slow():
        for i in range(100_000):
            yield bytes([i % 251]) * 65536
            if i == 20:
                print("streaming", flush=True)
            time.sleep(0.005)

    store.put_stream(slow())
    print("finished", flush=True)
    """
)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def assert_every_blob_verifies(root: Path) -> list[str]:
    found = []
    for path in (root / "blobs").rglob("*"):
        if path.is_file():
            assert sha(path.read_bytes()) == path.name, f"{path} holds wrong content"
            assert path.parent.name == path.name[2:4] and path.parent.parent.name == path.name[:2]
            found.append(path.name)
    return found


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_kill_9_mid_write_leaves_no_bad_blob(tmp_path: Path) -> None:
    root = tmp_path / "a"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert proc.stdout is not None
        complete = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "streaming", proc.stderr.read()  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == -signal.SIGKILL

    assert assert_every_blob_verifies(root) == [complete]
    leftovers = list((root / "tmp").iterdir())
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the interrupted write
    store = ArtifactStore(str(root))
    assert store.exists(complete)
    assert store.clean_temp(older_than_seconds=0) == 1
    assert list((root / "tmp").iterdir()) == []
    assert read_all(store, complete) == b"a complete blob"


# ---------------------------------------------------------------- boundaries


def test_imports_only_core_errors_from_dockyard() -> None:
    package = Path(store_module.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module.name}: relative import"
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"fastapi", "typer", "starlette"}, f"{module.name}: {name}"
                if top == "dockyard":
                    assert name == "dockyard.core.errors" or name.startswith(
                        "dockyard.artifacts"
                    ), f"{module.name} imports {name}"


def test_local_store_never_imports_fsspec(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from dockyard.artifacts import ArtifactStore
        s = ArtifactStore(sys.argv[1])
        d = s.put_stream([b"x"]).digest
        assert b"".join(s.open_blob(d)) == b"x"
        s.clean_temp(0)
        bad = [m for m in ("fsspec", "fastapi", "typer") if m in sys.modules]
        assert not bad, bad
        """
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a")],
        check=True,
        env=child_env(),
        timeout=60,
    )
