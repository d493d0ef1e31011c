"""Encryption at rest: the chunked AES-GCM format, the key providers, and the artifact store on
top of it (local folder and fsspec)."""

from __future__ import annotations

import base64
import io
import os
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.artifacts import ArtifactStore
from dockyard.artifacts.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    BlobCipher,
    EnvKeyProvider,
    cipher_from_settings,
    key_id,
    new_key,
)
from dockyard.core.config import load_settings
from dockyard.core.errors import ConfigError, IntegrityError

CHUNK = 64  # a small chunk size, so multi-chunk files stay tiny


def _cipher(*keys: str, chunk: int = CHUNK) -> BlobCipher:
    return BlobCipher(EnvKeyProvider(",".join(keys)), chunk_size=chunk)


def _encrypt(cipher: BlobCipher, data: bytes, pieces: int = 7) -> bytes:
    step = max(1, len(data) // pieces)
    return b"".join(cipher.encrypt(data[i : i + step] for i in range(0, len(data), step)))


def _decrypt(cipher: BlobCipher, blob: bytes) -> bytes:
    return b"".join(cipher.decrypt(io.BytesIO(blob)))


KEY = new_key()
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 5]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_sizes(size: int) -> None:
    cipher = _cipher(KEY)
    data = os.urandom(size)
    blob = _encrypt(cipher, data)
    assert _decrypt(cipher, blob) == data
    assert len(blob) == cipher.ciphertext_size(size)
    assert BlobCipher.plaintext_size(blob[:HEADER_SIZE], len(blob)) == size
    if size >= 16:
        assert data not in blob


def test_the_same_data_encrypts_differently_each_time() -> None:
    cipher = _cipher(KEY)
    data = b"x" * 200
    assert _encrypt(cipher, data) != _encrypt(cipher, data)  # a fresh salt, so a fresh file key


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER_SIZE:]
    step = CHUNK + TAG_SIZE
    return blob[:HEADER_SIZE], [body[i : i + step] for i in range(0, len(body), step)]


def test_every_kind_of_tampering_fails_authentication() -> None:
    cipher = _cipher(KEY)
    data = os.urandom(3 * CHUNK + 10)
    blob = _encrypt(cipher, data)
    header, chunks = _chunks(blob)
    assert len(chunks) == 4
    flipped_body = bytearray(blob)
    flipped_body[HEADER_SIZE + 5] ^= 1
    flipped_tag = bytearray(blob)
    flipped_tag[-1] ^= 1
    flipped_salt = bytearray(blob)
    flipped_salt[20] ^= 1
    cases = {
        "a flipped body byte": bytes(flipped_body),
        "a flipped tag byte": bytes(flipped_tag),
        "a flipped salt byte": bytes(flipped_salt),
        "a missing middle chunk": header + chunks[0] + chunks[2] + chunks[3],
        "swapped chunks": header + chunks[1] + chunks[0] + chunks[2] + chunks[3],
        "a missing last chunk": header + b"".join(chunks[:3]),
        "a cut last chunk": blob[:-3],
        "appended bytes": blob + b"more",
        "a duplicated chunk": header + chunks[0] + chunks[0] + b"".join(chunks[1:]),
    }
    for bad in cases.values():
        with pytest.raises(IntegrityError):
            _decrypt(cipher, bad)


def test_a_chunk_from_another_file_is_refused() -> None:
    cipher = _cipher(KEY)
    a = _encrypt(cipher, os.urandom(2 * CHUNK + 1))
    b = _encrypt(cipher, os.urandom(2 * CHUNK + 1))
    header_a, chunks_a = _chunks(a)
    _, chunks_b = _chunks(b)
    with pytest.raises(IntegrityError, match="failed authentication at chunk 1"):
        _decrypt(cipher, header_a + chunks_a[0] + chunks_b[1] + chunks_a[2])


def test_a_missing_key_is_named_and_rotation_keeps_old_data_readable() -> None:
    old, new = new_key(), new_key()
    blob = _encrypt(_cipher(old), b"secret model weights" * 10)
    with pytest.raises(ConfigError, match=key_id(base64.b64decode(old))):
        _decrypt(_cipher(new), blob)
    rotated = _cipher(new, old)  # the new key encrypts, both decrypt
    assert _decrypt(rotated, blob) == b"secret model weights" * 10
    assert rotated.provider.encryption_key()[0] == key_id(base64.b64decode(new))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64 at all!", "not base64"),
        (base64.b64encode(b"short").decode(), "exactly 32"),
        (" , ", "holds no key"),
    ],
)
def test_bad_keys_are_refused_with_a_reason(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EnvKeyProvider(value)


def test_the_provider_never_shows_its_keys() -> None:
    provider = EnvKeyProvider(KEY)
    assert KEY not in repr(provider)
    assert KEY not in repr(BlobCipher(provider))


def test_url_safe_base64_keys_work() -> None:
    raw = os.urandom(32)
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert EnvKeyProvider(urlsafe).encryption_key()[1] == raw


def test_settings_choose_the_cipher(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cipher_from_settings(load_settings(environ={})) is None
    cipher = cipher_from_settings(load_settings(environ={"DOCKYARD_ENCRYPTION_KEY": KEY}))
    assert cipher is not None
    # A key provider plug-in: a factory in an importable module.
    module = types.ModuleType("dy_test_kms")
    module.factory = lambda: EnvKeyProvider(KEY, source="the test KMS")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dy_test_kms", module)
    env = {"DOCKYARD_KEY_PROVIDER": "dy_test_kms:factory"}
    plugged = cipher_from_settings(load_settings(environ=env))
    assert plugged is not None and plugged.provider.encryption_key()[1] == base64.b64decode(KEY)
    with pytest.raises(ConfigError, match="not both"):
        cipher_from_settings(load_settings(environ={**env, "DOCKYARD_ENCRYPTION_KEY": KEY}))
    with pytest.raises(ConfigError, match=r"package\.module:factory"):
        cipher_from_settings(load_settings(environ={"DOCKYARD_KEY_PROVIDER": "nocolon"}))
    with pytest.raises(ConfigError, match="cannot be loaded"):
        cipher_from_settings(load_settings(environ={"DOCKYARD_KEY_PROVIDER": "dy_nope_x:f"}))
    module.bad = lambda: object()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="encryption_key"):
        cipher_from_settings(load_settings(environ={"DOCKYARD_KEY_PROVIDER": "dy_test_kms:bad"}))


# ---------------------------------------------------------------------- the artifact store


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "artifacts")
    else:
        yield f"memory://dockyard-test-{uuid.uuid4().hex}/artifacts"


def _stored_bytes(store: ArtifactStore, digest: str) -> bytes:
    with store._open_raw(digest) as f:
        return f.read()


@pytest.mark.parametrize("size", [0, 5, 3 * 1024 * 1024 + 7])
def test_an_encrypted_store_keeps_only_ciphertext(root: str, size: int) -> None:
    store = ArtifactStore(root, BlobCipher(EnvKeyProvider(KEY)))
    data = os.urandom(size) if size > 100 else b"hello"[:size]
    info = store.put_stream(iter([data[: size // 2], data[size // 2 :]]))
    assert store.exists(info.digest)
    assert store.size(info.digest) == size == info.size
    raw = _stored_bytes(store, info.digest)
    assert raw.startswith(b"\x89DYENC")
    if size > 100:
        assert data[1000:1100] not in raw
    assert b"".join(store.open_blob(info.digest)) == data
    # Storing the same bytes again is deduplicated (same digest, nothing rewritten).
    assert store.put_stream(iter([data])).digest == info.digest
    assert _stored_bytes(store, info.digest) == raw


def test_put_file_and_download_decrypt(tmp_path: Path, root: str) -> None:
    store = ArtifactStore(root, BlobCipher(EnvKeyProvider(KEY)))
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights" * 1000)
    info = store.put_file(src)
    dest = tmp_path / "out" / "model.bin"
    store.download_blob(info.digest, dest)
    assert dest.read_bytes() == src.read_bytes()


def test_plaintext_blobs_written_before_stay_readable_and_get_encrypted_on_rewrite(
    root: str,
) -> None:
    plain = ArtifactStore(root)
    info = plain.put_stream(iter([b"written before encryption was on"]))
    encrypted = ArtifactStore(root, BlobCipher(EnvKeyProvider(KEY)))
    assert b"".join(encrypted.open_blob(info.digest)) == b"written before encryption was on"
    assert encrypted.size(info.digest) == info.size
    encrypted.put_stream(iter([b"written before encryption was on"]))
    assert _stored_bytes(encrypted, info.digest).startswith(b"\x89DYENC")
    assert b"".join(encrypted.open_blob(info.digest)) == b"written before encryption was on"


def test_an_encrypted_blob_without_the_key_is_a_clear_error(root: str) -> None:
    encrypted = ArtifactStore(root, BlobCipher(EnvKeyProvider(KEY)))
    info = encrypted.put_stream(iter([b"secret"]))
    with pytest.raises(ConfigError, match="DOCKYARD_ENCRYPTION_KEY"):
        b"".join(ArtifactStore(root).open_blob(info.digest))
    with pytest.raises(ConfigError, match="does not hold"):
        b"".join(ArtifactStore(root, BlobCipher(EnvKeyProvider(new_key()))).open_blob(info.digest))
    assert ArtifactStore(root).size(info.digest) == 6  # sizes need no key


def test_a_tampered_encrypted_blob_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"), BlobCipher(EnvKeyProvider(KEY)))
    info = store.put_stream(iter([b"a" * 5000]))
    path = store.blob_path(info.digest)
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE + 10] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="failed authentication"):
        b"".join(store.open_blob(info.digest))
    dest = tmp_path / "out.bin"
    with pytest.raises(IntegrityError):
        store.download_blob(info.digest, dest)
    assert not dest.exists()
