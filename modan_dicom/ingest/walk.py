"""Walk a source tree: every regular file once, in a deterministic order, with bounded memory.

The order is the lexicographic (code point) order of the relative POSIX paths: siblings are
sorted with a trailing "/" appended to folder names, which makes a depth-first walk emit paths
in exactly the order `sorted()` would give. The index keeps this order, so a later run can merge
a fresh walk with the previous index in one streaming pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISLNK, S_ISREG


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


def _listing(abs_dir: str) -> list[str]:
    """The sorted names in `abs_dir`, folders with a trailing "/" (so that sorting gives global
    path order). Only names are kept (a flat folder of 10^6 files costs ~80 MB, not the DirEntry
    objects). Raises OSError when the folder cannot be listed."""
    keys: list[str] = []
    with os.scandir(abs_dir) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir()  # d_type, or one stat for a symlink
            except OSError:
                is_dir = False
            keys.append(entry.name + "/" if is_dir else entry.name)
    keys.sort()
    return keys


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
    for path, size, mtime_ns, error in walk_items(source, exclude=exclude):
        yield FileEntry(path, size, mtime_ns, error)


def walk_items(
    source: str | os.PathLike[str],
    *,
    exclude: Callable[[str], bool] | None = None,
) -> Iterator[tuple[str, int, int, str | None]]:
    """`walk` with each file as a plain tuple (path, size, mtime_ns, error): what the index uses
    (a frozen dataclass costs ~1 µs a file to build, and more to send to a worker process)."""
    root = Path(source)
    st = root.stat()
    seen: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
    try:
        keys = _listing(str(root))
    except OSError:
        return  # the root itself was checked by the caller
    root_prefix = os.path.join(str(root), "")
    # A depth-first walk without recursion: one (absolute prefix, relative prefix, names) per
    # open folder level; an inner folder is pushed and walked before its later siblings.
    stack = [(root_prefix, "", iter(keys))]
    stat, is_regular = os.stat, S_ISREG
    while stack:
        abs_prefix, rel_dir, names = stack[-1]
        for key in names:
            if key[-1] == "/":
                name = key[:-1]
                abs_path = abs_prefix + name
                try:
                    st = stat(abs_path)
                except OSError:
                    continue  # vanished since the listing
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue  # a link back to a folder already walked
                seen.add(ident)
                try:
                    sub = _listing(abs_path)
                except OSError as exc:
                    safe, _ = _safe_name(rel_dir + name)
                    yield safe, 0, 0, f"cannot list folder: {exc.strerror or exc}"
                    continue
                stack.append((abs_path + "/", rel_dir + key, iter(sub)))
                break
            rel = rel_dir + key
            if exclude is not None and exclude(rel):
                continue
            safe, name_error = (rel, None) if rel.isascii() else _safe_name(rel)
            abs_path = abs_prefix + key
            try:
                st = stat(abs_path)
            except OSError as exc:
                try:
                    lst = os.lstat(abs_path)
                except OSError:
                    continue  # vanished since the listing
                reason = "dangling symbolic link" if S_ISLNK(lst.st_mode) else f"cannot stat: {exc.strerror}"
                yield safe, 0, lst.st_mtime_ns, name_error or reason
                continue
            if not is_regular(st.st_mode):
                continue  # FIFOs, sockets, devices: opening a FIFO would block
            yield safe, st.st_size, st.st_mtime_ns, name_error
        else:
            stack.pop()  # this folder is done


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
