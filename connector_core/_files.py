"""Private files and folders: created 0700/0600 whatever the umask, written atomically, and
refused when someone else could have planted or changed them.

Folders this module creates are made 0700; folders that exist keep their modes (they may be
the user's own, shared on purpose). A folder or file that holds secrets is refused when it is
owned by another user or writable by others, and a file is refused when it is a symbolic link.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["UnsafePath", "ensure_private_dir", "read_private_file", "unsafe_dir", "unsafe_file", "write_private_file"]


class UnsafePath(Exception):  # internal: every caller turns it into its own ConnectorError
    """A file or folder that someone else could have planted or changed; the message says why."""


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each one created 0700 (whatever the umask);
    folders that exist already keep their modes."""
    missing: list[Path] = []
    folder = path
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process made it meanwhile: not ours to change
        os.chmod(folder, 0o700)  # mkdir's mode is filtered through the umask


def _owner_and_mode(st: os.stat_result) -> str | None:
    if st.st_uid != os.geteuid():
        return f"it is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"other users can write to it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def unsafe_dir(path: Path) -> str | None:
    """Why the folder ``path`` is no place for secrets (another user's, or writable by others), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder"
    return _owner_and_mode(st)


def unsafe_file(path: Path) -> str | None:
    """Why the file ``path`` is not to be trusted (a symbolic link, not a regular file, another
    user's, or writable by others), or None; a missing file is None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    return _owner_and_mode(st)


def read_private_file(path: Path) -> bytes:
    """The bytes of ``path``, opened without following a symbolic link; :class:`UnsafePath` when it
    is one, is another user's, or other users can read or write it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePath("it is a symbolic link") from None
        raise exc from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        problem = None if stat.S_ISREG(st.st_mode) else "it is not a regular file"
        problem = problem or _owner_and_mode(st)
        if problem is None and st.st_mode & 0o044:
            problem = f"other users can read it (mode {stat.S_IMODE(st.st_mode):04o}; it must be 0600)"
        if problem is not None:
            raise UnsafePath(problem)
        return handle.read()


def write_private_file(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Replace ``path`` atomically with ``data``, mode 0600: readers see the old file or the new one.
    A symbolic link at ``path`` is replaced, never followed.

    With ``exclusive=True`` the file is written only if it does not exist yet
    (atomically, even against other processes); returns whether it was written.
    """
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
