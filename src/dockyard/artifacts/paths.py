"""Validation of user-supplied artifact paths, and safe walks/joins on the local disk.

Purpose: an artifact path names a file inside one run's artifact tree (``model/weights.bin``).
It comes from users (SDK arguments, CLI options, URL segments of the REST API), so every entry
point funnels it through :func:`safe_relpath` (or :func:`safe_prefix` for listings) before it
is stored or joined to anything. The rules are deliberately strict: one canonical spelling per
file, nothing that any layer (URL decoding, a Windows file system, a shell, an object-store
key) could turn into a different or escaping path.

Boundaries: pure functions plus two helpers that touch the local disk --
:func:`iter_local_folder` (log a whole folder) and :func:`safe_local_destination` (download
into a folder). No knowledge of runs, stores or HTTP; the only Dockyard import is
:mod:`dockyard.core.errors`.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from dockyard.core.errors import DockyardWarning, InvalidInput, NotFound, UnsafePath

__all__ = [
    "MAX_PATH_LENGTH",
    "iter_local_folder",
    "safe_local_destination",
    "safe_prefix",
    "safe_relpath",
]

#: Longest accepted artifact path; matches the width of the ``artifacts.path`` column.
MAX_PATH_LENGTH = 1024

# How many layers of percent-encoding we peel off looking for a hidden dangerous form. A proxy,
# a framework and our own router may each decode once, so three covers every realistic chain; a
# path still changing after that is refused outright as deliberate obfuscation.
_MAX_DECODE_ROUNDS = 3

# A Windows drive ("C:", "c:\\", "C:/") -- absolute on Windows even without a separator.
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_RESERVED_CHARS = frozenset(";?#")


def _shown(path: str) -> str:
    """Repr of a path for an error message, cut short so a 1 MB path cannot flood a log."""
    return repr(path) if len(path) <= 120 else repr(path[:100]) + f"... ({len(path)} chars)"


def _refuse(path: str, rule: str, why: str) -> UnsafePath:
    return UnsafePath(f"unsafe artifact path {_shown(path)}: {why}", path=path[:200], rule=rule)


def _form_problem(form: str) -> tuple[str, str] | None:
    """Return ``(rule, explanation)`` for the first rule ``form`` breaks, or ``None``.

    Applied to the path as given and to every decoded / Unicode-normalised form of it.
    """
    for ch in form:
        if unicodedata.category(ch) == "Cc":
            return "control_char", "contains a NUL byte or another control character"
    if "\\" in form:
        return "backslash", "contains a backslash; separate folders with '/'"
    if form.startswith("/") or _DRIVE_RE.match(form):
        return "absolute", "is absolute; give a path relative to the artifact root"
    first = form.split("/", 1)[0]
    if ":" in first:
        # "s3:", "file:", "http:" ... or anything a URI parser could read as a scheme.
        return "scheme", "looks like a URI (':' in its first segment); give a plain relative path"
    if any(ch in _RESERVED_CHARS for ch in form):
        return "reserved_char", "contains ';', '?' or '#', which URLs treat as delimiters"
    if form.startswith("~"):
        return "home", "starts with '~', which shells expand to a home folder"
    if "//" in form:
        return "double_slash", "contains '//' (an empty folder name)"
    segments = form.split("/")
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash is tolerated and stripped by the caller
    for seg in segments:
        if seg == "..":
            return "parent_segment", "contains a '..' segment, which would leave the root"
        if "." in seg and seg.strip(". ") == "":
            # "." and also "...", ". ." -- Windows strips trailing dots and spaces, so such a
            # segment can collapse into "." or ".." there.
            return "dot_segment", "contains a segment made only of dots; remove it"
    return None


def _check(path: object, *, allow_root: bool) -> str:
    if not isinstance(path, str):
        raise InvalidInput(
            f"an artifact path must be a string, not {type(path).__name__}", path=repr(path)
        )
    if len(path) > MAX_PATH_LENGTH:
        raise _refuse(path, "too_long", f"is longer than {MAX_PATH_LENGTH} characters")
    if path == "" and allow_root:
        return ""
    if path.strip("/") == "":
        raise _refuse(path, "empty", "is empty; name a file inside the artifact tree")

    problem = _form_problem(path)
    if problem:
        raise _refuse(path, *problem)

    # Decode repeatedly: "%252e%252e" -> "%2e%2e" -> "..". Any layer that is dangerous, or that
    # produces a separator the raw text did not have ("a%2fb"), is refused: some later layer
    # (proxy, framework, object store console) might perform exactly that decoding.
    forms: list[tuple[str, str]] = []
    current = path
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(current, errors="replace")
        if decoded == current:
            break
        forms.append(("percent-decoded", decoded))
        current = decoded
    else:
        if unquote(current, errors="replace") != current:
            raise _refuse(
                path,
                "encoded",
                f"is percent-encoded more than {_MAX_DECODE_ROUNDS} times over",
            )
    # Compatibility forms: fullwidth dots and solidus (U+FF0E, U+FF0F) become "../" under NFKC,
    # which some file systems and tools apply; refuse look-alikes rather than trust that nobody
    # normalises.
    for form in [path, *(f for _, f in forms)]:
        nfkc = unicodedata.normalize("NFKC", form)
        if nfkc != form:
            forms.append(("Unicode-normalised", nfkc))

    raw_slashes = path.count("/")
    for kind, form in forms:
        if form.count("/") != raw_slashes:
            raise _refuse(
                path, "encoded_separator", f"its {kind} form {_shown(form)} has a hidden '/'"
            )
        problem = _form_problem(form)
        if problem:
            rule, why = problem
            raise _refuse(path, "encoded_" + rule, f"its {kind} form {_shown(form)} {why}")

    # The only normalisation: strip the single tolerated trailing slash ("dir/" -> "dir").
    return path[:-1] if path.endswith("/") else path


def safe_relpath(path: str) -> str:
    """Validate a user-supplied artifact file path and return its normalised form.

    The result is a POSIX relative path with no leading or trailing slash. Anything that could
    escape the artifact root, or mean different things to different layers, raises
    :class:`~dockyard.core.errors.UnsafePath` naming the path and the rule it broke (``rule`` in
    the error details): empty, absolute (``/x``, ``C:\\x``), ``..`` or ``.`` segments (no
    ``./`` stripping: one canonical spelling per file), backslashes, control characters,
    percent-encoded or Unicode look-alike forms of any of these, URI schemes, ``;``/``?``/``#``,
    ``//``, a leading ``~``, or more than :data:`MAX_PATH_LENGTH` characters.
    """
    return _check(path, allow_root=False)


def safe_prefix(path: str) -> str:
    """Like :func:`safe_relpath` but also accepts ``""``, meaning the root (for listings).

    A lone ``"/"`` is refused like any absolute path: the root is spelled ``""``.
    """
    return _check(path, allow_root=True)


def _is_inside(real: str, root: str) -> bool:
    """True if real path ``real`` is ``root`` or below it (both already resolved)."""
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def iter_local_folder(folder: str | os.PathLike[str]) -> Iterator[tuple[str, Path]]:
    """Walk ``folder`` recursively, yielding ``(artifact relpath, absolute real file path)``.

    Used to log a whole folder as artifacts. Entries come in sorted order (deterministic
    uploads). Each relpath passes :func:`safe_relpath`, so a file whose name the store would
    refuse (a backslash or ``?`` in a POSIX file name...) raises
    :class:`~dockyard.core.errors.UnsafePath` here rather than half-way through an upload; call
    ``list()`` on the result first to validate everything before uploading anything.

    Symlinks: one whose target resolves outside ``folder`` raises ``UnsafePath`` (logging
    would otherwise copy e.g. ``~/.ssh`` into the store). Links inside are followed, a folder
    link that points back to one of its own ancestors is skipped (no infinite loop), and the
    yielded path is the link's resolved target. Dangling links and special files (FIFOs,
    sockets, devices -- reading a FIFO would block forever) are skipped with a
    :class:`~dockyard.core.errors.DockyardWarning`.
    """
    root = os.path.realpath(os.fspath(folder))
    if not os.path.exists(root):
        raise NotFound(f"folder not found: {os.fspath(folder)!r}", path=os.fspath(folder))
    if not os.path.isdir(root):
        raise InvalidInput(f"not a folder: {os.fspath(folder)!r}", path=os.fspath(folder))
    yield from _walk(root, root, "", (root,))


def _walk(
    root: str, real_dir: str, rel_dir: str, ancestors: tuple[str, ...]
) -> Iterator[tuple[str, Path]]:
    with os.scandir(real_dir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        if entry.is_symlink():
            # Judge the link by where it finally lands, following every hop.
            target = os.path.realpath(entry.path)
            if not _is_inside(target, root):
                raise UnsafePath(
                    f"symlink {rel!r} points outside the folder being logged "
                    f"(to {target!r}); copy the file in instead",
                    path=rel,
                    rule="symlink_escape",
                )
            try:
                st = os.stat(entry.path)  # follows the link; ELOOP/ENOENT if broken
            except OSError:
                warnings.warn(
                    f"skipping broken or looping symlink {rel!r}", DockyardWarning, stacklevel=3
                )
                continue
        else:
            st = entry.stat(follow_symlinks=False)
            target = os.path.join(real_dir, entry.name)

        if stat.S_ISDIR(st.st_mode):
            if target in ancestors:
                warnings.warn(
                    f"skipping symlink {rel!r}: it points back to its own parent folder",
                    DockyardWarning,
                    stacklevel=3,
                )
                continue
            yield from _walk(root, target, rel, (*ancestors, target))
        elif stat.S_ISREG(st.st_mode):
            yield safe_relpath(rel), Path(target)
        else:
            warnings.warn(
                f"skipping {rel!r}: not a regular file or folder", DockyardWarning, stacklevel=3
            )


def safe_local_destination(dest_root: str | os.PathLike[str], relpath: str) -> Path:
    """Join a validated artifact path to a local download folder, refusing any escape.

    ``relpath`` goes through :func:`safe_relpath`; the joined path is then resolved through any
    symlinks that already exist on disk (``dest_root/link -> /etc``) and must land strictly
    inside the resolved ``dest_root``, else :class:`~dockyard.core.errors.UnsafePath`. Returns
    the resolved path. The folder need not exist yet. (A symlink planted *after* this check is
    outside what a path check can prevent; download into folders you control.)
    """
    rel = safe_relpath(relpath)
    if os.name == "nt" and ":" in rel:
        # On NTFS "a/b:c" writes the alternate data stream "c" of file "b": refuse it there.
        raise _refuse(relpath, "windows_stream", "contains ':', which Windows cannot store")
    root = os.path.realpath(os.fspath(dest_root))
    joined = os.path.join(root, *rel.split("/"))
    resolved = os.path.realpath(joined)
    if resolved == root or not _is_inside(resolved, root):
        raise UnsafePath(
            f"artifact path {_shown(relpath)} would be written outside {os.fspath(dest_root)!r} "
            f"(it resolves to {resolved!r}, through a symlink)",
            path=relpath[:200],
            rule="symlink_escape",
        )
    return Path(resolved)
