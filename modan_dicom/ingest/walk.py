"""Walk a source tree: every regular file once, in a deterministic order, with bounded memory.

The order is the lexicographic (code point) order of the relative POSIX paths: siblings are
sorted with a trailing "/" appended to folder names, which makes a depth-first walk emit paths
in exactly the order `sorted()` would give. The index keeps this order, so a later run can merge
a fresh walk with the previous index in one streaming pass.
"""

from __future__ import annotations

import errno
import heapq
import os
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG

# The longest path the system opens (bytes, its final NUL included) and the longest file name
try:
    PATH_MAX = os.pathconf("/", "PC_PATH_MAX")
    NAME_MAX = os.pathconf("/", "PC_NAME_MAX")
except (OSError, ValueError, AttributeError):
    PATH_MAX, NAME_MAX = 4096, 255
TOO_LONG = "path longer than the system allows"
LEAVES = "link leaves the source folder"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file seen by the walk.

    path: relative POSIX path under the source root; size: bytes; mtime_ns: modification time
    (ns since the epoch); error: why it could not be looked at (a folder that cannot be listed,
    a name that is not valid UTF-8, a dangling link, a link out of the source, a path longer
    than the system allows), else None.
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


def _reason(exc: OSError) -> str:
    """Why a name could not be looked at, for its row."""
    if exc.errno == errno.ENAMETOOLONG:
        return TOO_LONG
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return f"cannot stat: {exc.strerror or exc}"


def _listing(
    abs_dir: str | int, timed: Callable[[float, int], None] | None = None, special: set[str] | None = None,
    links: set[str] | None = None,
) -> list[str]:
    """The sorted names in `abs_dir`, folders with a trailing "/" (so that sorting gives global
    path order). Only names are kept (a flat folder of 10^6 files costs ~80 MB, not the DirEntry
    objects). Raises OSError when the folder cannot be listed. `timed(seconds, names)`: told how
    long the listing took and how many names it gave. `special`: gets the names that are neither
    folders nor plain regular files (links, FIFOs, devices, unknown types), which only a stat can
    tell about. `links`: gets the names of symbolic links. `abs_dir` may be an open folder's
    descriptor."""
    keys: list[str] = []
    start = time.perf_counter()
    with os.scandir(abs_dir) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir()  # d_type, or one stat for a symlink
            except OSError:
                is_dir = False
            if is_dir:
                keys.append(entry.name + "/")
                if links is not None and _is_link(entry):
                    links.add(entry.name)
                continue
            keys.append(entry.name)
            try:
                plain = entry.is_file(follow_symlinks=False)  # d_type: no system call
            except OSError:
                plain = False  # stat'ed by the walk, which reports what is wrong with it
            if not plain:
                if special is not None:
                    special.add(entry.name)
                if links is not None and _is_link(entry):
                    links.add(entry.name)
    if timed is not None:
        timed(time.perf_counter() - start, len(keys))
    keys.sort()
    return keys


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()  # d_type, or one lstat when the file system does not tell
    except OSError:
        return False  # then the walk's stat reports what is wrong with it


def listing_wait(seconds: float, names: int) -> float:
    """How much of a folder listing's `seconds` went beyond listing `names` names from the cache
    (~0.6 µs a name on the project's machine; 1 µs allowed): the time spent waiting for the disk."""
    return seconds - names * 1e-6


# On the project's machine a cached folder lists with 2-3 µs of `listing_wait`, a folder read from
# its cold disk with 55-80 µs (big folders are lost in their names' time: they are read cold as
# before, one disk read for many files). A median above this says the disk is cold.
COLD_WAIT_S = 30e-6


def waits_say_cold(waits: Sequence[float], cold_s: float = COLD_WAIT_S) -> bool:
    """Whether the median of these `listing_wait`s is above `cold_s` (the disk is cold): a median,
    so that a process merely preempted now and then does not look like a cold disk."""
    return bool(waits) and sorted(waits)[len(waits) // 2] > cold_s


class _ReadAhead:
    """Lists folders for a walk; on a cold disk, reads the folders ahead of it in parallel.

    On a cold disk each folder listing waits for one or two disk reads, one after another. Once
    listing folders waits longer than `cold_s` (median of the last 16), reaching a folder that
    was not read ahead starts a burst: `threads` threads list the next `burst` folders in walk
    order (the nearest first, their subfolders in turn) while the walk waits, so that many reads
    are in flight at once; the walk's own listings of those folders then come from the kernel's cache.
    The threads run only during a burst (the walk holds the interpreter the rest of the time)
    and keep nothing but the set of folders read.
    """

    def __init__(self, threads: int = 6, burst: int = 2048, cold_s: float = COLD_WAIT_S) -> None:
        self._threads, self._burst, self._cold_s = threads, burst, cold_s
        self._opened = 0
        self._recent: deque[float] = deque(maxlen=16)
        self.cold = False
        self._read: set[str] = set()  # folders (absolute path + "/") read in the last burst

    def listing(
        self, abs_dir: str, upcoming: Callable[[], list[str]], special: set[str] | None = None,
        links: set[str] | None = None,
    ) -> list[str]:
        """`_listing(abs_dir, special=special, links=links)`. `upcoming()`: the folders the walk
        reaches after this one's subtree (absolute paths + "/"), for a burst to start from."""
        if not self.cold:
            return _listing(abs_dir, self._listed, special, links)
        key = abs_dir + "/"
        if key not in self._read:
            self._read_ahead([key, *upcoming()])
        return _listing(abs_dir, None, special, links)

    def _listed(self, seconds: float, names: int = 0) -> None:
        """How long listing a folder of `names` names took; every 8 folders, the last 16 decide."""
        self._recent.append(listing_wait(seconds, names))
        self._opened += 1
        if self._opened % 8 == 0 and waits_say_cold(self._recent, self._cold_s):
            self.cold = True

    def _read_ahead(self, start: list[str]) -> None:
        todo = list(start)
        heapq.heapify(todo)
        read: set[str] = set()
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    if not todo or len(read) >= self._burst:
                        return
                    key = heapq.heappop(todo)
                    read.add(key)
                try:
                    names = _listing(key[:-1])
                except OSError:
                    continue
                with lock:
                    for name in names:
                        if name[-1] == "/":
                            heapq.heappush(todo, key + name)

        threads = [threading.Thread(target=work, name="modan-read-ahead", daemon=True)
                   for _ in range(self._threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._read = read


def walk(
    source: str | os.PathLike[str],
    *,
    exclude: Callable[[str], bool] | None = None,
    follow_links: bool = False,
) -> Iterator[FileEntry]:
    """Yield every regular file under `source` (a folder) as a `FileEntry`, sorted by path.

    Symbolic links that stay inside `source` are followed (folders and files); directory links
    are followed to each real directory (st_dev, st_ino) at most once, so link loops end. A link
    that leads out of `source` is not followed: it is an entry with the error "link leaves the
    source folder" (`follow_links=True` follows it). Dangling links are entries with an error.
    FIFOs, sockets and devices are skipped (opening a FIFO would block). Nothing is selected by
    extension, and no name is dropped: a name that cannot be looked at (a path longer than the
    system allows, a folder that cannot be listed or searched) is an entry with the reason.
    `exclude(rel_path)` drops files (the index's own outputs when it lives inside the source).
    Memory: one listing per open folder level.
    """
    for path, size, mtime_ns, error in walk_items(source, exclude=exclude, follow_links=follow_links):
        yield FileEntry(path, size, mtime_ns, error)


def walk_items(
    source: str | os.PathLike[str],
    *,
    exclude: Callable[[str], bool] | None = None,
    stat_files: bool = True,
    read_ahead: bool = True,
    follow_links: bool = False,
) -> Iterator[tuple[str, int | None, int | None, str | None]]:
    """`walk` with each file as a plain tuple (path, size, mtime_ns, error): what the index uses
    (a frozen dataclass costs ~1 µs a file to build, and more to send to a worker process).

    stat_files=False: plain regular files (as the folder listing tells) are not stat'ed and come
    with size and mtime_ns None, for a reader that opens them anyway (`read_header(with_stat=True)`
    takes both from the open file): one system call less per file. Links and other special
    entries are still stat'ed (a FIFO must not be opened, a dangling link is reported).
    read_ahead=False: never read folders ahead (another process does).
    """
    lister = _ReadAhead() if read_ahead else _ReadAhead(cold_s=float("inf"))
    yield from _walk_items(Path(source), exclude, lister, stat_files, follow_links)


def _walk_items(
    root: Path, exclude: Callable[[str], bool] | None, lister: _ReadAhead, stat_files: bool = True,
    follow_links: bool = False,
) -> Iterator[tuple[str, int | None, int | None, str | None]]:
    st = root.stat()
    seen: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
    special: set[str] | None = None if stat_files else set()  # names that need a stat
    links: set[str] = set()  # symbolic links: followed only when they stay in the source
    try:
        keys = lister.listing(str(root), list, special, links)
    except OSError:
        return  # the root itself was checked by the caller
    root_prefix = os.path.join(str(root), "")
    inside = os.path.join(os.path.realpath(root), "")

    def leaves(abs_path: str) -> bool:
        """Whether the link `abs_path` leads out of the source (and is not to be followed)."""
        return not follow_links and not os.path.join(os.path.realpath(abs_path), "").startswith(inside)

    # A depth-first walk without recursion: one (absolute prefix, relative prefix, names left,
    # all names, names to stat or None for all, links) per open folder level; an inner folder is
    # pushed and walked before its later siblings.
    stack = [(root_prefix, "", iter(keys), keys, special, links)]
    stat, is_regular = os.stat, S_ISREG

    def upcoming(key: str) -> list[str]:
        """The folders after `key` (a folder in the top level) in walk order, level by level."""
        found: list[str] = []
        for level in range(len(stack) - 1, -1, -1):
            prefix, _, _, names, _, _ = stack[level]
            found.extend(prefix + k for k in islice(names, bisect_right(names, key), None) if k[-1] == "/")
            if level:
                key = prefix[len(stack[level - 1][0]):]  # this level's folder, in its parent
        return found

    while stack:
        abs_prefix, rel_dir, names, _, special, links = stack[-1]
        for key in names:
            if key[-1] == "/":
                name = key[:-1]
                abs_path = abs_prefix + name
                if name in links and leaves(abs_path):
                    yield _safe_name(rel_dir + name)[0], 0, 0, LEAVES
                    continue
                if len(os.fsencode(abs_path)) + 1 + NAME_MAX >= PATH_MAX:
                    # its files' paths may be too long to open: walked through folder descriptors
                    yield from _walk_deep(abs_prefix, name, rel_dir, seen, exclude, follow_links)
                    continue
                try:
                    st = stat(abs_path)
                except FileNotFoundError:
                    continue  # vanished since the listing
                except OSError as exc:
                    yield _safe_name(rel_dir + name)[0], 0, 0, _reason(exc)
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue  # a link back to a folder already walked
                seen.add(ident)
                sub_special: set[str] | None = None if stat_files else set()
                sub_links: set[str] = set()
                try:
                    sub = lister.listing(abs_path, lambda: upcoming(key), sub_special, sub_links)
                except OSError as exc:
                    safe, _ = _safe_name(rel_dir + name)
                    yield safe, 0, 0, f"cannot list folder: {exc.strerror or exc}"
                    continue
                stack.append((abs_path + "/", rel_dir + key, iter(sub), sub, sub_special, sub_links))
                break
            rel = rel_dir + key
            if exclude is not None and exclude(rel):
                continue
            safe, name_error = (rel, None) if rel.isascii() else _safe_name(rel)
            if special is not None and name_error is None and key not in special:
                yield safe, None, None, name_error  # a plain regular file: its reader stats it
                continue
            abs_path = abs_prefix + key
            if key in links and leaves(abs_path):
                yield safe, 0, 0, name_error or LEAVES
                continue
            try:
                st = stat(abs_path)
            except OSError as exc:
                try:
                    lst = os.lstat(abs_path)
                except FileNotFoundError:
                    continue  # vanished since the listing
                except OSError:
                    yield safe, 0, 0, name_error or _reason(exc)
                    continue
                reason = "dangling symbolic link" if S_ISLNK(lst.st_mode) else _reason(exc)
                yield safe, 0, lst.st_mtime_ns, name_error or reason
                continue
            if not is_regular(st.st_mode):
                continue  # FIFOs, sockets, devices: opening a FIFO would block
            yield safe, st.st_size, st.st_mtime_ns, name_error
        else:
            stack.pop()  # this folder is done


def _walk_deep(
    parent: str, name: str, rel_dir: str, seen: set[tuple[int, int]],
    exclude: Callable[[str], bool] | None, follow_links: bool,
) -> Iterator[tuple[str, int | None, int | None, str | None]]:
    """The entries of folder `name` in `parent` (a folder whose path the system still opens) and
    below, in walk order, for folders whose paths come near or beyond PATH_MAX: each folder is
    opened relative to its parent's descriptor (openat), so the walk goes on however long the
    paths get. A file whose path is longer than the system allows is an entry with that error
    (no reader could open it); one still short enough is an ordinary entry. Links here are
    followed only with `follow_links` (where they lead cannot be resolved by path), else each is
    an entry with an error."""
    try:
        top = os.open(parent, _DIR_FLAGS)
    except OSError as exc:
        yield _safe_name(rel_dir + name)[0], 0, 0, _reason(exc)
        return
    # (folder descriptor, bytes of its path + "/", relative prefix, names left)
    stack = [(top, len(os.fsencode(parent)), rel_dir, iter([name + "/"]))]
    try:
        while stack:
            fd, prefix_bytes, rel_dir, keys = stack[-1]
            for key in keys:
                entry = key[:-1] if key[-1] == "/" else key
                rel = rel_dir + entry
                safe, name_error = _safe_name(rel)
                path_bytes = prefix_bytes + len(os.fsencode(entry))
                try:
                    st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                    if S_ISLNK(st.st_mode):
                        if not follow_links and fd != top:  # (the caller decided about `name`)
                            yield safe, 0, st.st_mtime_ns, "link not followed: its path is too long to resolve"
                            continue
                        st = os.stat(entry, dir_fd=fd)
                except FileNotFoundError:
                    continue  # vanished, or a dangling link followed on request
                except OSError as exc:
                    yield safe, 0, 0, name_error or _reason(exc)
                    continue
                if S_ISDIR(st.st_mode):
                    ident = (st.st_dev, st.st_ino)
                    if ident in seen:
                        continue
                    seen.add(ident)
                    try:
                        sub = os.open(entry, _DIR_FLAGS, dir_fd=fd)
                    except OSError as exc:
                        yield safe, 0, 0, f"cannot list folder: {exc.strerror or exc}"
                        continue
                    try:
                        names = _listing(sub)
                    except OSError as exc:
                        os.close(sub)
                        yield safe, 0, 0, f"cannot list folder: {exc.strerror or exc}"
                        continue
                    stack.append((sub, path_bytes + 1, rel + "/", iter(names)))
                    break
                if not S_ISREG(st.st_mode) or (exclude is not None and exclude(rel)):
                    continue
                yield safe, st.st_size, st.st_mtime_ns, name_error or (TOO_LONG if path_bytes >= PATH_MAX else None)
            else:
                os.close(fd)
                stack.pop()
    finally:
        for fd, *_ in stack:
            os.close(fd)


def count_files(
    source: str | os.PathLike[str], *, exclude: Callable[[str], bool] | None = None, follow_links: bool = False
) -> int:
    """The number of entries `walk_items(source)` yields (a first pass for progress totals: no
    file is stat'ed; on a cold disk its folders are read ahead in bursts, and the walk that
    follows finds them in the kernel's cache)."""
    return sum(1 for _ in walk_items(source, exclude=exclude, stat_files=False, follow_links=follow_links))
