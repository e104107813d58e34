"""Ask the kernel's page cache what it holds, and for what it should fetch, without waiting.

The index reads a few kilobytes of many files. On a cold disk each read waits for the disk, one
after another; these calls let the index find out whether a read would wait (`RWF_NOWAIT`) and
queue reads ahead (`POSIX_FADV_WILLNEED`), so that many are in flight at once. Where the platform
lacks them (macOS, Windows) every function degrades to "cannot tell" / "nothing to do".
"""

from __future__ import annotations

import os
from collections.abc import Sequence

_ADVISE = getattr(os, "posix_fadvise", None)
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)  # Linux: a read that fails rather than wait
CAN_ADVISE = _ADVISE is not None


def advise(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start reading these bytes of the open file `fd` (asynchronous; never raises)."""
    if _ADVISE is not None:
        try:
            _ADVISE(fd, offset, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass


def advise_file(path: str, nbytes: int) -> None:
    """`advise` the first `nbytes` of the file at `path` (opened without blocking on a FIFO;
    never raises)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        advise(fd, 0, nbytes)
    finally:
        os.close(fd)


def read_cached(fd: int, offset: int, n: int) -> bytes | None:
    """The `n` bytes at `offset` of the open file `fd` if the page cache holds them (where that
    cannot be asked: read them); None when reading them would wait for the disk."""
    if _NOWAIT is None:
        return os.pread(fd, n, offset)
    buf = bytearray(n)
    try:
        got = os.preadv(fd, [buf], offset, _NOWAIT)
    except BlockingIOError:
        return None
    except OSError:  # RWF_NOWAIT not supported by this file system
        return os.pread(fd, n, offset)
    return bytes(buf[:got])


def is_cached(path: str) -> bool | None:
    """Whether the first bytes of `path` are in the page cache (None: cannot tell, or no file)."""
    if _NOWAIT is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        os.preadv(fd, [bytearray(1)], 0, _NOWAIT)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None
    finally:
        os.close(fd)


def prefetch(paths: Sequence[str], nbytes: int) -> bool:
    """Ask for the first `nbytes` of every file in `paths` at once when they are not in the page
    cache (the first and last probed): a chunk read from a cold disk then keeps many requests in
    flight instead of one at a time. Does nothing when the cache is warm or the platform cannot
    tell; never raises. Returns whether it asked."""
    if _ADVISE is None or not paths:
        return False
    if is_cached(paths[0]) is not False and is_cached(paths[-1]) is not False:
        return False  # in the page cache (or cannot tell): the extra calls would only cost time
    for path in paths:
        advise_file(path, nbytes)
    return True
