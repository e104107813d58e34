"""Walk a source tree: every regular file once, in a deterministic order, with bounded memory.

The order is the lexicographic (code point) order of the relative POSIX paths: siblings are
sorted with a trailing "/" appended to folder names, which makes a depth-first walk emit paths
in exactly the order `sorted()` would give. The index keeps this order, so a later run can merge
a fresh walk with the previous index in one streaming pass.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file seen by the walk.

    path: relative POSIX path under the source root; size: bytes; mtime_ns: modification time
    (ns since the epoch); error: why it could not be looked at (a folder that cannot be listed,
    a name that is not valid UTF-8, a dangling link), else None.
    """

    path: str
    size: int
    mtime_ns: int
    error: str | None = None


def _safe_name(rel: str) -> tuple[str, str | None]:
    """Return a UTF-8-safe version of `rel` and an error when the original name is not UTF-8."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        escaped = os.fsencode(rel).decode("utf-8", "backslashreplace")
        return escaped, "file name is not valid UTF-8"
    return rel, None


def walk(
    source: str | os.PathLike[str],
    *,
    exclude: Callable[[str], bool] | None = None,
) -> Iterator[FileEntry]:
    """Yield every regular file under `source` (a folder) as a `FileEntry`, sorted by path.

    Directory symlinks are followed, each real directory (st_dev, st_ino) at most once, so link
    loops end. File symlinks are followed; dangling ones are reported with an error. FIFOs,
    sockets and devices are skipped (opening a FIFO would block). Nothing is selected by
    extension. `exclude(rel_path)` drops files (the index's own outputs when it lives inside
    the source). Memory: one listing per open folder level.
    """
    root = Path(source)
    seen: set[tuple[int, int]] = set()
    st = root.stat()
    seen.add((st.st_dev, st.st_ino))
    yield from _walk_dir(str(root), "", seen, exclude)


def _walk_dir(
    abs_dir: str, rel_dir: str, seen: set[tuple[int, int]], exclude: Callable[[str], bool] | None
) -> Iterator[FileEntry]:
    # Only names are kept per folder level (a flat folder of 10^6 files costs ~80 MB, not the
    # DirEntry objects); folders get a trailing "/" so that sorting gives global path order.
    keys: list[str] = []
    try:
        with os.scandir(abs_dir) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()  # d_type, or one stat for a symlink
                except OSError:
                    is_dir = False
                keys.append(entry.name + "/" if is_dir else entry.name)
    except OSError as exc:
        if rel_dir:  # the root itself was checked by the caller
            name, _ = _safe_name(rel_dir.rstrip("/"))
            yield FileEntry(name, 0, 0, f"cannot list folder: {exc.strerror or exc}")
        return
    keys.sort()
    for key in keys:
        if key.endswith("/"):
            name = key[:-1]
            abs_path = os.path.join(abs_dir, name)
            try:
                st = os.stat(abs_path)
            except OSError:
                continue  # vanished since the listing
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue  # a link back to a folder already walked
            seen.add(ident)
            yield from _walk_dir(abs_path, rel_dir + key, seen, exclude)
            continue
        rel = rel_dir + key
        if exclude is not None and exclude(rel):
            continue
        safe, name_error = _safe_name(rel)
        abs_path = os.path.join(abs_dir, key)
        try:
            st = os.stat(abs_path)
        except OSError as exc:
            try:
                lst = os.lstat(abs_path)
            except OSError:
                continue  # vanished since the listing
            reason = "dangling symbolic link" if stat.S_ISLNK(lst.st_mode) else f"cannot stat: {exc.strerror}"
            yield FileEntry(safe, 0, lst.st_mtime_ns, name_error or reason)
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # FIFOs, sockets, devices: opening a FIFO would block
        yield FileEntry(safe, st.st_size, st.st_mtime_ns, name_error)


def count_files(source: str | os.PathLike[str], *, exclude: Callable[[str], bool] | None = None) -> int:
    """About the number of entries `walk(source)` yields (a cheap first pass for progress totals:
    file types come from the directory listing, no file is stat'ed; dangling links are not counted)."""
    root = Path(source)
    st = root.stat()
    seen = {(st.st_dev, st.st_ino)}
    count = 0
    stack = [(str(root), "")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                for entry in it:
                    try:
                        if entry.is_dir():
                            st = entry.stat()
                            if (st.st_dev, st.st_ino) not in seen:
                                seen.add((st.st_dev, st.st_ino))
                                stack.append((entry.path, rel_dir + entry.name + "/"))
                        elif entry.is_file() and not (exclude is not None and exclude(rel_dir + entry.name)):
                            count += 1
                    except OSError:
                        continue
        except OSError:
            count += 1 if rel_dir else 0  # walk reports an unlistable folder as one error entry
    return count
