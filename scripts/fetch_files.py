"""Files for the corpus fetchers: one-line FetchError, sha256 checks, downloads with progress, and temp files that
are renamed into place only once verified."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Optional

TIMEOUT_S = 60
CHUNK = 1 << 20
PROGRESS_EVERY = 256 << 20  # bytes between download progress lines when stderr is not a terminal


class FetchError(Exception):
    """A problem the user can fix; the message is one line naming the file, the problem and the fix."""


class DownloadError(FetchError):
    """A download that failed: the URL and why (so a recipe with mirrors can name them all)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot download {url}: {reason} — check the network, or download it by hand"
            " and rerun with --from-local DIR"
        )
        self.url, self.reason = url, reason


# --- files ------------------------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def temp_beside(target: Path) -> Iterator[Path]:
    """An empty hidden temp file in target's directory, removed when the block ends."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A temp file that is renamed onto target only if the block (fill + verify) succeeds."""
    with temp_beside(target) as tmp:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it an ordinary file's mode
        os.replace(tmp, target)


def keep_existing(target: Path, verify: Callable[[Path], object]) -> bool:
    """True (and say so) if target is already there and verifies; an unverified one is to be replaced."""
    if not target.exists():
        return False
    try:
        verify(target)
    except FetchError as e:
        print(f"replacing {target}: {e}")
        return False
    print(f"kept {target} (already there and verified; --force to replace it)")
    return True


# --- sources ----------------------------------------------------------------------------------------------------


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    return str(getattr(e, "reason", "") or e or type(e).__name__)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MiB"


def copy_with_progress(src: BinaryIO, dest: BinaryIO, url: str, total: Optional[int]) -> None:
    """Copy src to dest, showing progress: a live line on a terminal, else a line every PROGRESS_EVERY bytes."""
    live, done, shown, next_line = sys.stderr.isatty(), 0, 0.0, PROGRESS_EVERY

    def status() -> str:
        of = f" of {_mib(total)} ({100 * done // total}%)" if total else ""
        return f"downloading {url}: {_mib(done)}{of}"

    for block in iter(lambda: src.read(CHUNK), b""):
        dest.write(block)
        done += len(block)
        if live and time.monotonic() - shown >= 0.5:
            print(f"\r{status()}", end="", file=sys.stderr, flush=True)
            shown = time.monotonic()
        elif not live and done >= next_line:
            print(status(), flush=True)
            next_line += PROGRESS_EVERY
    if live and shown:
        print(f"\r{status()}", file=sys.stderr, flush=True)


def download(url: str, dest: Path) -> None:
    """Stream url into dest with progress; DownloadError naming the URL (and suggesting --from-local) on failure."""
    with open(dest, "wb") as f:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                length = response.headers.get("Content-Length") if response.headers else None
                copy_with_progress(response, f, url, int(length) if length and length.isdigit() else None)
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise DownloadError(url, _reason(e)) from None


def copy_local(src: Path, dest: Path) -> None:
    if not src.is_file():
        raise FetchError(f"{src}: file not found — put the downloaded file there, or drop --from-local to download it")
    shutil.copyfile(src, dest)


def sha256_mismatch(label: str, expected: str, actual: str, url: str) -> FetchError:
    return FetchError(
        f"{label}: sha256 mismatch (expected {expected}, got {actual}) — the file is damaged or not the"
        f" official release: download it again from {url}"
    )


def check_sha256(path: Path, expected: str, label: str, url: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise sha256_mismatch(label, expected, actual, url)
