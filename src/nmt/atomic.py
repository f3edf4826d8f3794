"""Atomic file writes: readers see the old file or the whole new one, never a truncated file."""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from nmt.errors import UserError

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFullError(UserError):
    """No space (or quota) left to write a file; the previous version of the file is intact."""


def hidden_beside(path, kind: str) -> Path:
    """A fresh hidden name next to `path`, for a file or directory on its way in or out: on the same file system,
    so renaming it to `path` is atomic, and unique to this process and call."""
    path = Path(path)
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def write_atomic(path, content: bytes | Callable[[BinaryIO], None]) -> None:
    """Write `content` (bytes, or a function that writes to a binary file) to a temporary file beside `path`,
    fsync it, and rename it over `path`. A crash at any moment leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); a plain open() would honour the umask
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(e):
            raise DiskFullError(
                f"{path}: the disk is full (or over quota); the previous {path.name} is intact — free some space"
            ) from None
        raise
    _fsync_directory(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _disk_full(error: BaseException | None) -> bool:
    """Whether a disk-full OSError caused `error`: torch.save reports a failed write as a RuntimeError."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself survive a power loss (POSIX). Best effort: the new file is in place either way, and
    some platforms (Windows) or file systems cannot open or fsync a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
