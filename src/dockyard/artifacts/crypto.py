"""Encryption at rest: AES-256-GCM over a stream, in chunks, with keys from a key provider.

Purpose: let the artifact store (and the prediction log) keep only ciphertext on disk or in the
object store, while every reader still gets a stream of plaintext chunks and memory stays flat.

Format of an encrypted file (one blob)::

    header  = MAGIC (6 bytes) | key id (8 bytes) | salt (16 bytes) | chunk size (4 bytes, BE)
    chunk i = AES-256-GCM(file key, nonce = i (11 bytes, BE) | final flag (1 byte),
                          plaintext piece i, associated data = header)

* The file key is derived from the master key with HKDF-SHA256 and the file's random salt, so
  no two files share a key and the per-file chunk counter is a safe nonce (no random-nonce
  collision bound to worry about, whatever the number of files).
* Every piece but the last holds exactly ``chunk size`` plaintext bytes; the last holds fewer
  (possibly none) and carries the final flag. This is the STREAM construction (Hoang,
  Reyhanitabar, Rogaway, Vizár 2015): reordered, dropped, duplicated or truncated chunks and
  appended data all fail authentication, as does any edited byte or header field.
* The key id is a fingerprint of the master key (not secret), so a reader picks the right key
  after a rotation and says which one is missing when it is absent.

Keys come from a :class:`KeyProvider`. The built-in :class:`EnvKeyProvider` reads
``DOCKYARD_ENCRYPTION_KEY``: one or more comma-separated base64 32-byte keys, the first
encrypts, all decrypt (rotation: put the new key first, keep the old ones until every blob was
rewritten). ``DOCKYARD_KEY_PROVIDER=package.module:factory`` plugs in a KMS or vault client:
the factory is called with no argument and returns a :class:`KeyProvider`.

Boundaries: a foundation, next to the artifact store; imports only :mod:`dockyard.core`. The
``cryptography`` package (the ``encryption`` extra) is imported only when a key is configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, Protocol, runtime_checkable

from dockyard.core.errors import ConfigError, IntegrityError, InvalidInput

__all__ = [
    "MAGIC",
    "BlobCipher",
    "EnvKeyProvider",
    "KeyProvider",
    "cipher_from_settings",
    "is_encrypted_header",
    "key_id",
    "new_key",
]

#: First bytes of every encrypted file (the 0x89 makes it binary to any sniffing tool).
MAGIC = b"\x89DYENC"
_VERSION_HEADER = struct.Struct(">6s8s16sI")
HEADER_SIZE = _VERSION_HEADER.size  # 34 bytes
TAG_SIZE = 16
KEY_SIZE = 32
#: Plaintext bytes per chunk: the artifact store's own chunk size, 1 MiB.
DEFAULT_CHUNK = 1024 * 1024


def new_key() -> str:
    """A fresh random 256-bit key, base64 encoded, for ``DOCKYARD_ENCRYPTION_KEY``."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")


def key_id(key: bytes) -> str:
    """The public fingerprint of a master key: 16 hex characters (8 bytes)."""
    return hashlib.sha256(b"dockyard-key-id\x00" + key).hexdigest()[:16]


@runtime_checkable
class KeyProvider(Protocol):
    """Where master keys come from (environment, a KMS, a vault...).

    ``encryption_key`` names the key new data is encrypted with; ``decryption_key`` returns the
    key of a given id or raises :class:`~dockyard.core.errors.ConfigError` naming it.
    """

    def encryption_key(self) -> tuple[str, bytes]: ...

    def decryption_key(self, key_id: str) -> bytes: ...


class EnvKeyProvider:
    """Keys given as text: comma-separated base64 32-byte keys; the first one encrypts."""

    def __init__(self, value: str, source: str = "DOCKYARD_ENCRYPTION_KEY") -> None:
        self._source = source
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for n, part in enumerate(p.strip() for p in value.split(",")):
            if not part:
                continue
            key = _decode_key(part, f"{source} (key {n + 1})")
            kid = key_id(key)
            if kid not in keys:
                keys[kid] = key
                order.append(kid)
        if not order:
            raise ConfigError(f"{source} is set but holds no key; generate one with `{_HINT}`")
        self._keys = keys
        self._current = order[0]

    def __repr__(self) -> str:  # never the keys themselves
        return f"EnvKeyProvider(key_ids={list(self._keys)})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encryption_key(self) -> tuple[str, bytes]:
        return self._current, self._keys[self._current]

    def decryption_key(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise ConfigError(
                f"data was encrypted with key {key_id}, which {self._source} does not hold "
                f"(it holds {', '.join(self._keys)}); add that key after the current one",
                key_id=key_id,
            ) from None


_HINT = 'python -c "import base64,os; print(base64.b64encode(os.urandom(32)).decode())"'


def _decode_key(text: str, where: str) -> bytes:
    try:
        padded = text + "=" * (-len(text) % 4)
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where} is not base64; generate a key with `{_HINT}`") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(
            f"{where} is {len(key)} bytes once decoded; AES-256 needs exactly {KEY_SIZE}. "
            f"Generate one with `{_HINT}`"
        )
    return key


def _load_provider(spec: str) -> KeyProvider:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"DOCKYARD_KEY_PROVIDER must be 'package.module:factory', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"DOCKYARD_KEY_PROVIDER {spec!r} cannot be loaded: {exc}") from None
    provider = factory()
    if not isinstance(provider, KeyProvider):
        raise ConfigError(
            f"DOCKYARD_KEY_PROVIDER {spec!r} returned {type(provider).__name__}, which has no "
            "encryption_key() and decryption_key(key_id) methods"
        )
    return provider


def cipher_from_settings(settings: Any) -> BlobCipher | None:
    """The cipher the settings ask for, or ``None`` when encryption at rest is off."""
    spec = getattr(settings, "key_provider", None)
    value = getattr(settings, "encryption_key", None)
    if spec and value:
        raise ConfigError("set either DOCKYARD_ENCRYPTION_KEY or DOCKYARD_KEY_PROVIDER, not both")
    if spec:
        return BlobCipher(_load_provider(str(spec)))
    if value:
        return BlobCipher(EnvKeyProvider(str(value)))
    return None


def is_encrypted_header(head: bytes) -> bool:
    """True if ``head`` (a file's first bytes) starts like an encrypted file."""
    return head.startswith(MAGIC)


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # pragma: no cover - the extra is part of dev
        raise ConfigError(
            "encryption at rest needs the 'cryptography' package: "
            "pip install 'dockyard[encryption]'"
        ) from None
    return AESGCM(key)


def _file_key(master: bytes, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=b"dockyard-blob-v1"
    ).derive(master)


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


class BlobCipher:
    """Encrypts and decrypts whole streams with the keys of one :class:`KeyProvider`."""

    def __init__(self, provider: KeyProvider, chunk_size: int = DEFAULT_CHUNK) -> None:
        if chunk_size <= 0:
            raise InvalidInput("chunk_size must be > 0")
        self.provider = provider
        self.chunk_size = chunk_size
        _aesgcm(b"\x00" * KEY_SIZE)  # fail at configuration time if the package is missing

    def __repr__(self) -> str:
        return f"BlobCipher({self.provider!r})"

    def ciphertext_size(self, plaintext_size: int) -> int:
        """Bytes an encrypted file of ``plaintext_size`` bytes takes."""
        chunks = plaintext_size // self.chunk_size + 1
        return HEADER_SIZE + plaintext_size + TAG_SIZE * chunks

    @staticmethod
    def plaintext_size(header: bytes, ciphertext_size: int) -> int:
        """Plaintext bytes of an encrypted file, from its header and its size on disk."""
        _magic, _kid, _salt, chunk = _VERSION_HEADER.unpack(header[:HEADER_SIZE])
        body = ciphertext_size - HEADER_SIZE
        chunks = body // (chunk + TAG_SIZE) + 1
        return max(0, body - TAG_SIZE * chunks)

    def writer(self, out: IO[bytes]) -> EncryptingWriter:
        """A file-like object: what is written to it reaches ``out`` encrypted.

        Call :meth:`EncryptingWriter.close` (or use it as a context manager) to write the final
        chunk; without it the file does not decrypt (a truncated file is detected, not served).
        """
        kid, master = self.provider.encryption_key()
        return EncryptingWriter(out, kid, master, self.chunk_size)

    def encrypt(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Encrypt a stream of plaintext chunks into a stream of ciphertext chunks."""
        sink = _ListSink()
        w = self.writer(sink)  # type: ignore[arg-type]
        for chunk in chunks:
            w.write(chunk)
            yield from sink.drain()
        w.close()
        yield from sink.drain()

    def decrypt(self, f: IO[bytes], *, name: str = "the file") -> Iterator[bytes]:
        """Read an encrypted file object and yield its plaintext, chunk by chunk, each one
        authenticated before it is yielded.

        Raises :class:`~dockyard.core.errors.IntegrityError` naming ``name`` if a chunk fails
        authentication (wrong key, edited, reordered or truncated file), and
        :class:`~dockyard.core.errors.ConfigError` if its key is not available.
        """
        header = _read_exact(f, HEADER_SIZE)
        if len(header) < HEADER_SIZE or not is_encrypted_header(header):
            raise IntegrityError(f"{name} is not an encrypted Dockyard file (bad header)")
        _magic, kid_raw, salt, chunk = _VERSION_HEADER.unpack(header)
        if not 0 < chunk <= 64 * 1024 * 1024:
            raise IntegrityError(f"{name} has an impossible chunk size {chunk} in its header")
        master = self.provider.decryption_key(kid_raw.hex())
        aead = _aesgcm(_file_key(master, salt))
        index = 0
        piece = _read_exact(f, chunk + TAG_SIZE)
        while True:
            final = len(piece) < chunk + TAG_SIZE
            if final and len(piece) < TAG_SIZE:
                raise IntegrityError(f"{name} is truncated (its last chunk is cut short)")
            try:
                plain = aead.decrypt(_nonce(index, final), piece, header)
            except Exception:  # cryptography's InvalidTag; kept generic for its import
                raise IntegrityError(
                    f"{name} failed authentication at chunk {index}: it was altered, truncated "
                    "or encrypted with another key of the same id",
                    chunk=index,
                ) from None
            if plain:
                yield plain
            if final:
                return
            index += 1
            piece = _read_exact(f, chunk + TAG_SIZE)


class EncryptingWriter:
    """Buffers up to one chunk of plaintext and writes authenticated chunks to ``out``."""

    def __init__(self, out: IO[bytes], kid: str, master: bytes, chunk_size: int) -> None:
        salt = os.urandom(16)
        self._header = _VERSION_HEADER.pack(MAGIC, bytes.fromhex(kid), salt, chunk_size)
        self._aead = _aesgcm(_file_key(master, salt))
        self._out = out
        self._chunk = chunk_size
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        out.write(self._header)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed encrypting writer")
        self._buf += data
        while len(self._buf) > self._chunk:
            # Strictly more than a chunk buffered: this chunk is not the last one.
            self._emit(bytes(self._buf[: self._chunk]), final=False)
            del self._buf[: self._chunk]
        return len(data)

    def _emit(self, plain: bytes, final: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._index, final), plain, self._header))
        self._index += 1

    def close(self) -> None:
        """Write the last chunk (always present, possibly empty). Does not close ``out``."""
        if self._closed:
            return
        if len(self._buf) == self._chunk:
            # A full chunk is never final: the final chunk must be shorter than a chunk.
            self._emit(bytes(self._buf), final=False)
            self._buf.clear()
        self._emit(bytes(self._buf), final=True)
        self._buf.clear()
        self._closed = True

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


class _ListSink:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> Sequence[bytes]:
        parts, self._parts = self._parts, []
        return parts


def _read_exact(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the file (file objects may return short
    reads, fsspec's among them)."""
    parts: list[bytes] = []
    remaining = n
    while remaining:
        data = f.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)
