"""Atomic writes: a temporary file in the destination folder, fsync, then `os.replace`.

A process killed at any point leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import OutputError


def prepare_parent(path: str | os.PathLike[str]) -> Path:
    """Create the parent folder of `path`; raise `OutputError` when it cannot be written."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {target.parent}: {exc.strerror or exc}") from exc
    if not os.access(target.parent, os.W_OK):
        raise OutputError(f"output folder {target.parent} is not writable")
    return target


def _published_mode(target: Path) -> int:
    """The mode a new file would get from `open()` (umask applied), or the mode `target` already has.

    `mkstemp` creates files readable by the owner only; outputs should look like any other file.
    """
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on clean exit it replaces `path` in one rename.

    Use it for writers that want a file name (pyarrow, torch.save, PIL). On an exception the
    temporary file is removed and `path` is untouched.
    """
    target = prepare_parent(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _published_mode(target))
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """`open()` for writing that publishes the file only when the block ends without error."""
    if not any(flag in mode for flag in "wx"):
        raise ValueError("atomic_open is for writing ('w' or 'wb')")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically and return the path."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def claim_folder(folder: str | os.PathLike[str], is_ours: Callable[[Path], bool], what: str) -> bool:
    """Make `folder` ready to receive an output: create it, or accept it empty or holding a previous `what`.

    Returns True when it holds a previous output (the caller removes what that output wrote), False
    when it is empty. Raises `OutputError` for anything else, so nothing a user owns is overwritten.
    """
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        empty = not any(root.iterdir())
    except OSError as exc:
        raise OutputError(f"cannot create output folder {root}: {exc.strerror or exc}") from exc
    if empty:
        return False
    if not is_ours(root):
        raise OutputError(f"{root} is not empty and is not a {what}; refusing to overwrite it")
    return True
