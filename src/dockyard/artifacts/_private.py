"""Private temporary files and folders on the local disk.

Partial downloads and cache folders hold a user's models and data before they are verified and
put in place; nobody else on the machine should be able to read them, or to slip a file into
them, meanwhile. :func:`create_private` opens a new file with mode 0600 (``O_EXCL``: never an
existing file or a planted link); :func:`publish_mode` gives it the mode an ordinary file of the
user would have (0666 less the umask) just before it is renamed into place, so the finished
download is the user's usual file. :func:`private_dir` makes a folder (every missing level 0700)
and refuses one that someone else owns or can write to.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from dockyard.core.errors import PermissionDenied

__all__ = ["create_private", "private_dir", "publish_mode"]


def create_private(path: str | os.PathLike[str]) -> BinaryIO:
    """Create ``path`` (it must not exist) with mode 0600 and open it for binary writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(os.fspath(path), flags, 0o600), "wb")


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    return 0o022


def publish_mode(path: str | os.PathLike[str]) -> None:
    """Give a finished private file the mode of an ordinary user file (0666 less the umask)."""
    if os.name == "posix":
        os.chmod(os.fspath(path), 0o666 & ~_umask())


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` with mode 0700 for every level created; refuse an unsafe existing folder.

    On POSIX, a folder that another user owns, or that group or others may write to, is refused
    with :class:`~dockyard.core.errors.PermissionDenied`: in a shared temporary folder another
    user could have created it first to read or swap what Dockyard puts there.
    """
    folder = Path(path)
    missing: list[Path] = []
    level = folder
    while not level.exists() and level != level.parent:
        missing.append(level)
        level = level.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
    if os.name == "posix":
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise PermissionDenied(
                f"refusing to use {str(folder)!r}: it is not a folder owned by this user and "
                "closed to group and others (chmod 700 it, or remove it so Dockyard makes it)",
                path=str(folder),
            )
    return folder
