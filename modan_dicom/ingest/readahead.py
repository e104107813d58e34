"""Read an export ahead of the index when it lies on a cold disk.

On a cold disk the index waits for the disk at every folder listing and every first read of a
file. `ReadAhead.start(root, ...)` checks whether the tree's first folders open slowly (they
come from the disk) and, if so, starts a helper process that walks the same tree in the same
order (`walk_items`, whose folders it reads ahead in parallel bursts) and asks the kernel for
the first kilobytes of every file (POSIX_FADV_WILLNEED: the reads are queued, nothing is
returned), at most `lead` files ahead of the files the index has taken (`advance`). The index's
own walk and header reads then find folders and headers in the page cache. The helper keeps
nothing and writes nothing; it is mostly waiting for the disk, and stops with the index.
Linux (and any platform with posix_fadvise and fork) only; elsewhere it is never started.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from . import pagecache
from .header import HEADER_WINDOW
from .walk import _listing, listing_wait, waits_say_cold, walk_items


def disk_is_cold(root: str, folders: int = 16) -> bool:
    """Whether listing the first `folders` folders of `root` (depth first) waits for the disk
    (`waits_say_cold`): they are read from the disk, not the kernel's cache."""
    times: list[float] = []
    stack = [root]
    while stack and len(times) < folders:
        folder = stack.pop()
        try:
            keys = _listing(folder, lambda seconds, names: times.append(listing_wait(seconds, names)))
        except OSError:
            continue
        stack.extend(os.path.join(folder, k[:-1]) for k in reversed(keys) if k[-1] == "/")
    return waits_say_cold(times)


def _run(root: str, exclude: Callable[[str], bool] | None, done: Any, stop: Any, lead: int, nbytes: int,
         follow_links: bool = False) -> None:
    """The helper process: walk, and ask for the first `nbytes` of each file, `lead` files ahead at most."""
    prefix = os.path.join(root, "")
    parent = os.getppid()
    seen = 0
    try:
        for path, _, _, error in walk_items(root, exclude=exclude, stat_files=False, follow_links=follow_links):
            seen += 1
            while seen - done.value > lead:
                if stop.value or os.getppid() != parent:
                    return
                time.sleep(0.002)
            if stop.value:
                return
            if error is None:
                pagecache.advise_file(prefix + path, nbytes)
    except (OSError, KeyboardInterrupt):
        pass  # a folder vanished, the run was stopped: the index reports what matters


class ReadAhead:
    """The helper process (see the module docstring); `None` from `start` when not needed."""

    def __init__(self, process: Any, done: Any, stop: Any) -> None:
        self._process, self._done, self._stop = process, done, stop

    @classmethod
    def start(
        cls, root: str, exclude: Callable[[str], bool] | None = None, *, lead: int = 16_384,
        nbytes: int = HEADER_WINDOW, force: bool = False, follow_links: bool = False,
    ) -> ReadAhead | None:
        """Start the helper when `root` is on a cold disk (or `force`); None otherwise. Its walk
        is the index's (`walk_items` with the same `exclude` and `follow_links`)."""
        if not pagecache.CAN_ADVISE or not sys.platform.startswith("linux"):
            return None
        if not force and not disk_is_cold(root):
            return None
        ctx = multiprocessing.get_context("fork")
        done, stop = ctx.Value("q", 0, lock=False), ctx.Value("b", 0, lock=False)
        process = ctx.Process(target=_run, args=(root, exclude, done, stop, lead, nbytes, follow_links),
                              name="modan-read-ahead", daemon=True)
        process.start()
        return cls(process, done, stop)

    def advance(self, files: int) -> None:
        """The index has taken `files` files of the walk so far."""
        self._done.value = files

    def close(self) -> None:
        self._stop.value = 1
        self._process.join(timeout=2)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
