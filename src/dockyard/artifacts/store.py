"""Content-addressed blob store: the bytes behind every artifact, model file and dataset.

Purpose: store immutable blobs under their sha256, ``<root>/blobs/sha256/<aa>/<bb>/<hex>``,
where the root is a local folder (the default; plain ``os`` calls) or any fsspec URI
(``s3://``, ``gs://``, ``memory://``...; fsspec is imported only when such a root is used).

Guarantees:

* **Atomic writes.** Bytes are streamed into a temporary file under ``<root>/tmp/`` while being
  hashed, flushed and fsync'ed, and only then renamed to the address their hash names. A crash
  (even ``kill -9``) at any point leaves at most a stray temporary file, which
  :meth:`ArtifactStore.clean_temp` removes; a final address never holds wrong or partial
  content. A metadata row should point at a digest only after ``put_*`` returned it.
* **Streaming.** Nothing is ever loaded whole: reads and writes go in :data:`CHUNK_SIZE`
  chunks, so multi-GB files use a few MiB of memory.
* **Verified reads.** :meth:`ArtifactStore.open_blob` re-hashes what it yields and raises
  :class:`~dockyard.core.errors.IntegrityError` at the end if the bytes on disk no longer match
  their name (bit rot, tampering).
* **No traversal.** A digest must be exactly 64 lowercase hex characters before it is joined to
  any path.
* **Encryption at rest (optional).** Given a :class:`~dockyard.artifacts.crypto.BlobCipher`,
  every blob written is AES-256-GCM ciphertext (:mod:`dockyard.artifacts.crypto`); the address
  stays the sha256 of the *plaintext*, so digests, dedup and verification are unchanged, and
  reads decrypt and authenticate every chunk before it is yielded. Blobs written before
  encryption was turned on are still read as they are (and rewritten encrypted when stored
  again); an encrypted blob read without its key is a
  :class:`~dockyard.core.errors.ConfigError` naming the key id.

Boundaries: a foundation. It knows nothing of runs, artifact paths (see
:mod:`dockyard.artifacts.paths`) or the metadata store, and imports nothing from Dockyard but
:mod:`dockyard.core.errors`. Deduplication is free (same bytes, same address); deciding when a
blob is unreferenced and may be deleted is the caller's job.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dockyard.artifacts._private import create_private, publish_mode
from dockyard.artifacts.crypto import HEADER_SIZE, MAGIC, BlobCipher, is_encrypted_header
from dockyard.core.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; fsspec is imported lazily at run time
    from fsspec import AbstractFileSystem

__all__ = ["CHUNK_SIZE", "ArtifactStore", "BlobInfo", "Chunks", "is_digest"]

#: Size of the pieces every read and write moves (1 MiB): large enough for syscall overhead to
#: vanish, small enough that memory stays flat whatever the blob size.
CHUNK_SIZE = 1024 * 1024

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
# Scheme of at least two letters, so a Windows drive ("C:\\x") is never taken for a URI.
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")
_TMP_SUFFIX = ".part"

#: What put_stream accepts: an iterable of bytes-like chunks, or a binary file object.
Chunks = Iterable[bytes] | IO[bytes]


@dataclass(frozen=True)
class BlobInfo:
    """What a write stored: the sha256 hex digest (the blob's address) and its size in bytes."""

    digest: str
    size: int


def is_digest(value: object) -> bool:
    """True if ``value`` is a 64-character lowercase hex sha256 digest."""
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def _check_digest(digest: object) -> str:
    if not is_digest(digest):
        shown = repr(digest) if len(repr(digest)) <= 80 else repr(digest)[:77] + "..."
        raise InvalidInput(
            f"invalid blob digest {shown}: expected 64 lowercase hex characters (a sha256)",
            digest=str(digest)[:100],
        )
    assert isinstance(digest, str)
    return digest


def _iter_chunks(source: Chunks) -> Iterator[bytes]:
    """Normalise a binary file object or an iterable of bytes-like chunks into bytes chunks."""
    read = getattr(source, "read", None)
    if callable(read):
        while True:
            chunk = read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk
    else:
        for chunk in source:
            if isinstance(chunk, str):
                raise InvalidInput("a blob stream must yield bytes, not str")
            if chunk:
                yield chunk


def _copy_hashed(chunks: Iterable[bytes], out: IO[bytes], max_bytes: int | None) -> tuple[str, int]:
    """Copy chunks to ``out`` while hashing them; (sha256 hex, size). Stops past max_bytes."""
    h, size = _sha256(), 0
    for chunk in chunks:
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise PayloadTooLarge(
                f"upload is larger than the limit of {max_bytes} bytes", max_bytes=max_bytes
            )
        h.update(chunk)
        out.write(chunk)
    return h.hexdigest(), size


def _sha256() -> Any:
    # usedforsecurity=False keeps FIPS-mode Pythons from refusing: we hash for addressing and
    # integrity against accidents and tampering of stored bytes, not to derive secrets.
    return hashlib.sha256(usedforsecurity=False)


def _fsync_dir(path: str) -> None:
    """Make a rename inside ``path`` durable. Directories cannot be opened on Windows: skip."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_private(path: str) -> None:
    """``mkdir -p`` giving every level we create mode 0700.

    ``os.makedirs(mode=...)`` only applies the mode to the last level, and the store's folders
    (temporary files of uploads included) should not be listable by other local users.
    """
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _makedirs_private(parent)
    with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
        os.mkdir(path, 0o700)


def _timestamp(info: dict[str, Any]) -> float | None:
    """Best-effort modification time from an fsspec ``info`` dict (keys differ per backend)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


class ArtifactStore:
    """A content-addressed blob store under one root URI.

    ``root_uri`` is a local folder path, a ``file://`` URI, or any fsspec URI. Construction does
    no I/O (folders appear on the first write), so building a store for a misconfigured root
    is cheap and errors surface where the data is. With a ``cipher``, blobs are stored
    encrypted (see the module's notes).
    """

    def __init__(self, root_uri: str, cipher: BlobCipher | None = None) -> None:
        if not isinstance(root_uri, str) or not root_uri.strip():
            raise InvalidInput("the artifact root must be a non-empty path or URI")
        self._root_uri = root_uri
        self._cipher = cipher
        self._fs: AbstractFileSystem | None = None
        self._local_root: str | None = None
        self._remote_root = ""
        if _URI_RE.match(root_uri):
            parts = urlsplit(root_uri)
            if parts.scheme.lower() == "file":
                if parts.netloc not in ("", "localhost"):
                    raise InvalidInput(
                        f"file URI {root_uri!r} names a remote host; only local files work",
                        root=root_uri,
                    )
                from urllib.request import url2pathname  # urllib.request is a heavy import

                self._local_root = os.path.abspath(url2pathname(parts.path))
        else:
            self._local_root = os.path.abspath(os.path.expanduser(root_uri))

    # ------------------------------------------------------------------ layout

    @property
    def root_uri(self) -> str:
        """The root exactly as given."""
        return self._root_uri

    @property
    def is_local(self) -> bool:
        """True if the root is a local folder handled with plain ``os`` calls."""
        return self._local_root is not None

    @property
    def local_root(self) -> Path | None:
        """The absolute local folder of a local root; ``None`` for a remote one."""
        return Path(self._local_root) if self._local_root is not None else None

    @property
    def encrypted(self) -> bool:
        """True if new blobs are written encrypted."""
        return self._cipher is not None

    @property
    def cipher(self) -> BlobCipher | None:
        """The cipher new blobs are encrypted with (also what reads other encrypted files
        under this root, such as the prediction log); None when encryption is off."""
        return self._cipher

    @property
    def current_key_id(self) -> str | None:
        """Id of the key new blobs are encrypted with; ``None`` when they are stored plain."""
        return self._cipher.provider.encryption_key()[0] if self._cipher is not None else None

    def __repr__(self) -> str:
        suffix = ", encrypted" if self._cipher is not None else ""
        return f"ArtifactStore({self._root_uri!r}{suffix})"

    def _stored_size(self, size: int) -> int:
        """Bytes a blob of ``size`` plaintext bytes takes when this store writes it."""
        return self._cipher.ciphertext_size(size) if self._cipher is not None else size

    def _copy_in(
        self, chunks: Iterable[bytes], out: IO[bytes], max_bytes: int | None
    ) -> tuple[str, int]:
        """Copy plaintext ``chunks`` to ``out`` (encrypting if configured); hash the plaintext."""
        if self._cipher is None:
            return _copy_hashed(chunks, out, max_bytes)
        writer = self._cipher.writer(out)
        result = _copy_hashed(chunks, writer, max_bytes)  # type: ignore[arg-type]
        writer.close()
        return result

    def _filesystem(self) -> AbstractFileSystem:
        # Imported and connected on first use: a local store never pays for fsspec, and a remote
        # store's credentials are only looked up when the store is actually used.
        if self._fs is None:
            import fsspec

            fs, path = fsspec.core.url_to_fs(self._root_uri)
            self._remote_root = str(path).rstrip("/")
            self._fs = fs
        return self._fs

    def _local_blob(self, digest: str) -> str:
        assert self._local_root is not None
        return os.path.join(self._local_root, "blobs", "sha256", digest[:2], digest[2:4], digest)

    def _remote_path(self, *parts: str) -> str:
        self._filesystem()
        return "/".join([self._remote_root, *parts])

    def _remote_blob(self, digest: str) -> str:
        return self._remote_path("blobs", "sha256", digest[:2], digest[2:4], digest)

    def blob_path(self, digest: str) -> Path:
        """Local file path of a blob (which may not exist). Only for a local root."""
        digest = _check_digest(digest)
        if self._local_root is None:
            raise InvalidInput(
                f"blob_path needs a local artifact root, not {self._root_uri!r}; "
                "use open_blob or download_blob",
                root=self._root_uri,
            )
        return Path(self._local_blob(digest))

    def blob_uri(self, digest: str) -> str:
        """Where a blob lives, as a path (local root) or an fsspec URI (remote root)."""
        digest = _check_digest(digest)
        if self._local_root is not None:
            return self._local_blob(digest)
        fs = self._filesystem()
        return fs.unstrip_protocol(self._remote_blob(digest))

    # ------------------------------------------------------------------ writes

    def put_file(self, local_path: str | os.PathLike[str]) -> BlobInfo:
        """Store a local file, streaming it; return its digest and size.

        Local root: one pass -- copy into a temporary file while hashing, then rename.
        Remote root: hash the file first (streaming) so an already-stored blob is not uploaded
        again (dedup saves the bandwidth), then upload through a temporary key exactly like
        :meth:`put_stream`, re-hashing what is sent; if the two hashes differ the file changed
        during the upload and :class:`~dockyard.core.errors.Conflict` is raised, nothing kept.
        """
        path = os.fspath(local_path)
        try:
            f = open(path, "rb")  # closed by the "with f:" below
        except FileNotFoundError:
            raise NotFound(f"file not found: {path!r}", path=path) from None
        except IsADirectoryError:
            raise InvalidInput(f"not a file: {path!r} is a folder", path=path) from None
        with f:
            if self._local_root is not None:
                return self._put_local(_iter_chunks(f), None)
            h, size = _sha256(), 0
            for chunk in _iter_chunks(f):
                h.update(chunk)
                size += len(chunk)
            digest = h.hexdigest()
            if self.exists(digest):
                return BlobInfo(digest, size)
            f.seek(0)
            info = self._put_remote(_iter_chunks(f), None, expected=digest)
        return info

    def put_stream(self, chunks: Chunks, max_bytes: int | None = None) -> BlobInfo:
        """Store the bytes of ``chunks`` (an iterable of bytes or a binary file object).

        If more than ``max_bytes`` arrive, :class:`~dockyard.core.errors.PayloadTooLarge` is
        raised as soon as the limit is crossed and nothing is left behind. Any exception raised
        by the source also removes the temporary file and leaves the store unchanged.
        """
        if max_bytes is not None and max_bytes < 0:
            raise InvalidInput("max_bytes must be >= 0", max_bytes=max_bytes)
        source = _iter_chunks(chunks)
        if self._local_root is not None:
            return self._put_local(source, max_bytes)
        return self._put_remote(source, max_bytes, expected=None)

    def _put_local(
        self, chunks: Iterator[bytes], max_bytes: int | None, replace: bool = False
    ) -> BlobInfo:
        assert self._local_root is not None
        tmp_dir = os.path.join(self._local_root, "tmp")
        _makedirs_private(tmp_dir)
        # mkstemp: O_EXCL with a random name and mode 0600 -- unguessable and private.
        fd, tmp_path = tempfile.mkstemp(dir=tmp_dir, suffix=_TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                digest, size = self._copy_in(chunks, out, max_bytes)
                out.flush()
                # Durable before visible: after the rename the address must hold these bytes
                # even if the machine loses power.
                os.fsync(out.fileno())
            final = self._local_blob(digest)
            final_dir = os.path.dirname(final)
            blobs = os.path.realpath(os.path.join(self._local_root, "blobs", "sha256"))
            if not os.path.realpath(final_dir).startswith(blobs + os.sep):
                # A folder link planted inside the root would carry the write elsewhere
                # (checked before any folder is made: realpath resolves the existing part).
                raise IntegrityError(
                    f"blob folder {final_dir!r} is a link leading out of the artifact root; "
                    "the root was tampered with -- remove the link",
                    digest=digest,
                )
            _makedirs_private(final_dir)
            try:
                existing = os.stat(final).st_size
            except FileNotFoundError:
                existing = None
            if existing == self._stored_size(size) and not replace:
                # Same address, same size: the identical blob is already there (dedup).
                os.unlink(tmp_path)
            else:
                # Absent -- or present with the wrong size, i.e. damaged: our verified copy
                # replaces it. os.replace is atomic, so readers see old or new, never a mix.
                try:
                    os.replace(tmp_path, final)
                except FileNotFoundError:
                    raise Conflict(
                        "the temporary upload file vanished before it could be stored "
                        "(was clean_temp run with a very short age?); retry the upload"
                    ) from None
                _fsync_dir(final_dir)
            return BlobInfo(digest, size)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise

    def _put_remote(
        self,
        chunks: Iterator[bytes],
        max_bytes: int | None,
        expected: str | None,
        replace: bool = False,
    ) -> BlobInfo:
        # Always through a temporary key, then a move (a server-side copy on object stores):
        # a final key is only ever written from bytes whose hash was checked first. A direct
        # put to the final key would be atomic on S3/GCS, but the hash is only known once every
        # byte is sent -- too late to stop a changed file or a bad stream from landing there,
        # and backends like SFTP would expose partial files.
        fs = self._filesystem()
        tmp_dir = self._remote_path("tmp")
        tmp_key = f"{tmp_dir}/{uuid.uuid4().hex}{_TMP_SUFFIX}"
        with contextlib.suppress(Exception):  # object stores have no folders to make
            fs.makedirs(tmp_dir, exist_ok=True)
        try:
            with fs.open(tmp_key, "wb") as out:
                digest, size = self._copy_in(chunks, out, max_bytes)
            if expected is not None and digest != expected:
                raise Conflict(
                    "the file changed while it was being uploaded; retry when it is stable",
                    expected=expected,
                    actual=digest,
                )
            final = self._remote_blob(digest)
            if not replace and fs.exists(final) and fs.size(final) == self._stored_size(size):
                fs.rm(tmp_key)
            else:
                with contextlib.suppress(Exception):
                    fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
                fs.mv(tmp_key, final)
            return BlobInfo(digest, size)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(tmp_key)
            raise

    # ------------------------------------------------------------------ reads

    def exists(self, digest: str) -> bool:
        """True if a blob with this digest is stored (its content is not checked here)."""
        digest = _check_digest(digest)
        if self._local_root is not None:
            return os.path.isfile(self._local_blob(digest))
        return bool(self._filesystem().exists(self._remote_blob(digest)))

    def size(self, digest: str) -> int:
        """Size in bytes of a stored blob's content (its plaintext, if stored encrypted);
        :class:`~dockyard.core.errors.NotFound` if absent."""
        digest = _check_digest(digest)
        try:
            with self._open_raw(digest) as f:
                head = f.read(HEADER_SIZE)
                if is_encrypted_header(head) and len(head) == HEADER_SIZE:
                    stored = f.seek(0, os.SEEK_END)
                    return BlobCipher.plaintext_size(head, stored)
                if self._local_root is not None:
                    return os.fstat(f.fileno()).st_size
                return int(self._filesystem().size(self._remote_blob(digest)))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def _open_raw(self, digest: str) -> IO[bytes]:
        """The stored file of a blob, as it is on disk (ciphertext when encrypted)."""
        if self._local_root is not None:
            # O_NOFOLLOW: a link planted in the root (to /etc/passwd, a key...) is never read.
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
            try:
                return os.fdopen(os.open(self._local_blob(digest), flags), "rb")
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise IntegrityError(
                    f"blob {digest} is a symbolic link, not a file the store wrote; the "
                    "artifact root was tampered with -- remove the link and log the artifact "
                    "again",
                    digest=digest,
                ) from None
        return self._filesystem().open(self._remote_blob(digest), "rb")  # type: ignore[no-any-return]

    def _not_found(self, digest: str) -> NotFound:
        return NotFound(f"blob {digest} not found in the artifact store", digest=digest)

    def open_blob(self, digest: str) -> Iterator[bytes]:
        """Stream a blob in chunks, verifying its sha256 as the last step.

        A missing blob raises :class:`~dockyard.core.errors.NotFound` right here, at the call.
        If the bytes read do not hash to ``digest``, :class:`~dockyard.core.errors.IntegrityError`
        is raised after the last chunk: a consumer that forwards chunks as they come (an HTTP
        response) must treat the whole transfer as failed then -- abort the connection rather
        than finish it. Use :meth:`download_blob` to get a file only if it verifies.
        """
        digest = _check_digest(digest)
        if not self.exists(digest):
            raise self._not_found(digest)
        if self._local_root is not None and os.path.islink(self._local_blob(digest)):
            # Blobs are regular files the store wrote itself; a link (to /etc/passwd, a key...)
            # was planted by someone with write access to the root. Refused before a byte is
            # read, so a download answers an error instead of starting a doomed transfer.
            raise IntegrityError(
                f"blob {digest} is a symbolic link, not a file the store wrote; the artifact "
                "root was tampered with -- remove the link and log the artifact again",
                digest=digest,
            )
        # The file is opened inside the generator, so an iterator that is never consumed holds
        # no file handle.
        return self._iter_verified(digest)

    def _iter_verified(self, digest: str) -> Iterator[bytes]:
        h = _sha256()
        try:
            # O_NOFOLLOW: a link swapped in after the check above is not followed either.
            f = self._open_raw(digest)
        except FileNotFoundError:
            raise self._not_found(digest) from None  # deleted between exists() and here
        with f:
            for chunk in self._plaintext(f, digest):
                h.update(chunk)
                yield chunk
        actual = h.hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"blob {digest} is corrupted or was tampered with: its content hashes to "
                f"{actual}; restore it from a backup or log the artifact again",
                digest=digest,
                actual=actual,
            )

    def _plaintext(self, f: IO[bytes], digest: str) -> Iterator[bytes]:
        head = f.read(CHUNK_SIZE)
        if is_encrypted_header(head):
            if self._cipher is None:
                raise ConfigError(
                    f"blob {digest} is stored encrypted and no key is configured; set "
                    "DOCKYARD_ENCRYPTION_KEY (or DOCKYARD_KEY_PROVIDER) to the key it was "
                    "written with",
                    digest=digest,
                )
            f.seek(0)
            yield from self._cipher.decrypt(f, name=f"blob {digest}")
            return
        if head:
            yield head
        while True:
            chunk = f.read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk

    def download_blob(self, digest: str, dest_path: str | os.PathLike[str]) -> BlobInfo:
        """Copy a blob to ``dest_path`` only if it verifies; return its digest and size.

        Streams into a temporary file next to ``dest_path`` (same folder, so the final rename
        is atomic), checks the hash, then renames it into place, replacing any existing file.
        On any failure -- missing blob, failed verification, full disk -- no file is left at
        ``dest_path`` (an existing one is left untouched) and no temporary file remains.
        """
        digest = _check_digest(digest)
        chunks = self.open_blob(digest)
        dest = os.path.abspath(os.fspath(dest_path))
        dest_dir = os.path.dirname(dest)
        os.makedirs(dest_dir, exist_ok=True)
        tmp_path = os.path.join(dest_dir, f".{os.path.basename(dest)}.{uuid.uuid4().hex}.part")
        # Private (0600) while partial and unverified; once whole, 0666 filtered by the umask,
        # like any file the user creates: a download is the user's file.
        out = create_private(tmp_path)
        size = 0
        try:
            with out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            publish_mode(tmp_path)
            os.replace(tmp_path, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise
        return BlobInfo(digest, size)

    def iter_digests(self) -> Iterator[str]:
        """Every digest stored (for garbage collection and integrity sweeps); order unspecified."""
        if self._local_root is not None:
            base = os.path.join(self._local_root, "blobs", "sha256")
            for _dirpath, _dirs, files in os.walk(base):
                yield from (name for name in files if is_digest(name))
            return
        fs = self._filesystem()
        base = self._remote_path("blobs", "sha256")
        try:
            found = fs.find(base)
        except FileNotFoundError:
            return
        for key in found:
            name = key.rsplit("/", 1)[-1]
            if is_digest(name):
                yield name

    # ------------------------------------------------------------------ maintenance

    def stored_key_id(self, digest: str) -> str | None:
        """The id of the key a blob is encrypted with, or ``None`` for a plaintext blob."""
        digest = _check_digest(digest)
        try:
            with self._open_raw(digest) as f:
                head = f.read(HEADER_SIZE)
        except FileNotFoundError:
            raise self._not_found(digest) from None
        if len(head) == HEADER_SIZE and is_encrypted_header(head):
            return head[len(MAGIC) : len(MAGIC) + 8].hex()
        return None

    def rewrite(self, digest: str) -> bool:
        """Store a blob again the way this store writes now: encrypt a plaintext blob, move an
        encrypted one to the current key (after a rotation), or decrypt it when encryption is
        off. Returns False if it was already stored that way.

        The plaintext is verified against the digest while it is spooled to a private
        temporary file (the store's own ``tmp/`` for a local root), then written through the
        usual atomic path; readers see the old or the new file, never a mix.
        """
        if self.stored_key_id(digest) == self.current_key_id:
            return False
        tmp_dir = None
        if self._local_root is not None:
            tmp_dir = os.path.join(self._local_root, "tmp")
            _makedirs_private(tmp_dir)
        with tempfile.TemporaryFile(dir=tmp_dir) as spool:
            for chunk in self.open_blob(digest):
                spool.write(chunk)
            spool.seek(0)
            if self._local_root is not None:
                info = self._put_local(_iter_chunks(spool), None, replace=True)
            else:
                info = self._put_remote(_iter_chunks(spool), None, expected=digest, replace=True)
        if info.digest != digest:  # pragma: no cover - open_blob verified the bytes
            raise IntegrityError(f"blob {digest} changed while it was rewritten")
        return True

    def delete_blob(self, digest: str) -> bool:
        """Remove a blob; True if it existed. Callers must know it is unreferenced.

        The emptied ``aa/bb`` folders are kept: removing them could race with a concurrent
        write that is about to rename a blob into them.
        """
        digest = _check_digest(digest)
        try:
            if self._local_root is not None:
                os.unlink(self._local_blob(digest))
            else:
                self._filesystem().rm(self._remote_blob(digest))
        except FileNotFoundError:
            return False
        return True

    def clean_temp(self, older_than_seconds: float = 24 * 3600) -> int:
        """Delete temporary files left by interrupted writes; return how many were removed.

        Only files not modified for ``older_than_seconds`` go: a write in progress touches its
        file with every chunk, so a generous age never hurts it. Pass 0 only when no write can
        be running. On a remote backend that reports no modification time, only age 0 removes.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        if self._local_root is not None:
            tmp_dir = os.path.join(self._local_root, "tmp")
            try:
                entries = list(os.scandir(tmp_dir))
            except FileNotFoundError:
                return 0
            for entry in entries:
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if older_than_seconds > 0 and entry.stat().st_mtime > cutoff:
                        continue
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    continue  # another cleaner, or the writer finishing, got there first
            return removed
        fs = self._filesystem()
        tmp_dir = self._remote_path("tmp")
        try:
            infos = fs.ls(tmp_dir, detail=True)
        except FileNotFoundError:
            return 0
        for info in infos:
            if info.get("type") != "file":
                continue
            if older_than_seconds > 0:
                mtime = _timestamp(info)
                if mtime is None or mtime > cutoff:
                    continue
            with contextlib.suppress(FileNotFoundError):
                fs.rm(info["name"])
                removed += 1
        return removed
