"""Atomic writes: a temporary file in the destination folder, fsync, then `os.replace`.

A process killed at any point leaves either the old file or the new one, never half of one.
Temporary files are named `.NAME.PID-XXXXXXXX[SUFFIX].tmp` (PID: the writing process), so that
`remove_stale_temps` can tell those of a killed writer from those of a live one. `output_lock`
makes one run at a time write an output; `create_once` makes a file that two creators agree on.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from .errors import OutputError

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

MARKER_PREFIX = ".modan-"  # modan-dicom's own files in a folder it writes (never indexed)
# what follows ".NAME." in a temporary file's name: "PID-" (absent in the files of earlier
# versions), mkstemp's 8 characters, the suffix, ".tmp"
_TEMP_REST = r"(?:(?P<pid>\d+)-)?[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?\.tmp"
_ANY_TEMP = re.compile(r"\.(?P<name>.+)\." + _TEMP_REST)
F = TypeVar("F", bound=Callable[..., Any])


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


def _make_temp(target: Path, suffix: str = "") -> tuple[int, str]:
    """`mkstemp` beside `target`, named `.NAME.PID-XXXXXXXX[SUFFIX].tmp` (mode 0600)."""
    return tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=suffix + ".tmp", dir=target.parent)


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
    fd, tmp_name = _make_temp(target, suffix)
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


def check_folder(folder: str | os.PathLike[str], is_ours: Callable[[Path], bool], what: str) -> bool:
    """Whether `folder` may receive an output, creating nothing: True when it holds a previous `what`,
    False when it is missing or empty (or holds only temporaries of a killed writer); `OutputError` when it
    is a file or holds anything else."""
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} exists and is not a folder")
    try:
        empty = not root.exists() or not any(root.iterdir()) or holds_only_temporaries(root)
    except OSError as exc:
        raise OutputError(f"cannot read output folder {root}: {exc.strerror or exc}") from exc
    if empty:
        return False
    if not is_ours(root):
        raise OutputError(f"{root} is not empty and is not a {what}; refusing to write into it "
                          "(choose a new folder)")
    return True


def claim_folder(folder: str | os.PathLike[str], is_ours: Callable[[Path], bool], what: str) -> bool:
    """Make `folder` ready to receive an output: `check_folder`, then create it. Returns True when it
    holds a previous `what` (the caller removes what that output wrote), False when it is empty."""
    previous = check_folder(folder, is_ours, what)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror or exc}") from exc
    return previous


# ---- temporary files of killed runs ----------------------------------------------------------------


def _process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), 0.0 when it runs but its start is
    unknown (no /proc), None when no such process runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith(b"btime"))
    except FileNotFoundError:
        return None
    except (OSError, StopIteration, IndexError, ValueError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass  # it runs, as another user
        return 0.0
    if fields[0] in (b"Z", b"X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _temp_is_stale(path: Path, pid: int | None) -> bool:
    """Whether the temporary file `path`, written by process `pid` (None: not in its name), was left
    by a writer that is gone: no process `pid` runs, or the one that does started after the file
    was last written (its pid was reused). A file without a pid is stale when last written before
    this process started. Processes of this machine only: a writer on another host sharing the
    folder is not seen (the output lock covers index and census writers there too)."""
    try:
        written = path.lstat().st_mtime
    except OSError:
        return False
    if pid is None:
        started = _process_started(os.getpid())
        return bool(started) and written < started - 2  # btime has a 1 s resolution
    if pid == os.getpid():
        return False  # this process's own, in flight
    started = _process_started(pid)
    return started is None or started > written + 2


def holds_only_temporaries(folder: str | os.PathLike[str]) -> bool:
    """True when every file under `folder` is an atomic writer's temporary (folders may be empty): what
    a run killed before it published anything leaves behind."""
    for _, _, names in os.walk(folder):
        if not all(_ANY_TEMP.fullmatch(name) for name in names):
            return False
    return True


def remove_stale_temps(folder: str | os.PathLike[str], name: str | None = None) -> int:
    """Delete the temporary files that killed writers left in `folder` (`_temp_is_stale`): those of
    target `name` only, or of any target when None. Never a temporary file of a live writer.
    Returns how many were removed."""
    pattern = re.compile(re.escape(f".{name}.") + _TEMP_REST) if name is not None else _ANY_TEMP
    removed = 0
    try:
        with os.scandir(folder) as it:
            names = [entry.name for entry in it if entry.name[:1] == "." and entry.name[-4:] == ".tmp"]
    except OSError:
        return 0
    for entry_name in names:
        found = pattern.fullmatch(entry_name)
        if found is None:
            continue
        path = Path(folder) / entry_name
        pid = int(found["pid"]) if found["pid"] else None
        if _temp_is_stale(path, pid):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


# ---- one writer per output, one creator per file --------------------------------------------------


_HELD_LOCKS: set[int] = set()  # descriptors of the output locks this process holds


def _close_inherited_locks() -> None:
    """In a forked child (a reading worker): close the copies of the parent's lock descriptors, so
    that the lock ends with the parent even if a child outlives it (an flock lasts while any
    descriptor of it is open)."""
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of output `path`: `.modan-lock.NAME` beside it (only while a run writes it)."""
    target = Path(path)
    return target.parent / f"{MARKER_PREFIX}lock.{target.name}"


def _lock_holder(fd: int, wait_s: float = 0.5) -> str:
    """The pid written in a held lock file; its holder writes it just after taking the lock, so an
    empty file is read again for up to `wait_s` seconds ("" if still empty)."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if holder or time.monotonic() > deadline:
            return holder
        time.sleep(0.005)


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive right to write `path` (its folder created) for the block, then remove
    the stale temporary files of `path` (`remove_stale_temps`). Raises `OutputError` (one line,
    with the holder's pid) when another process holds it. The lock is an `flock` on
    `lock_path(path)`: the system releases it when its holder exits or is killed; the file is
    removed at the end of the block (a run that sees it vanish under its lock tries again)."""
    target = prepare_parent(path)
    where = lock_path(target)
    fd = -1
    while fcntl is not None:
        try:
            fd = os.open(where, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot lock {target.name} in {target.parent}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _lock_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                fd = -1
                break  # a file system without locks: unlocked, as before
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise OutputError(f"another modan-dicom run is writing {target.name}{pid}; wait for it "
                              "or write elsewhere") from None
        try:
            same = os.stat(where).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder finished and removed it meanwhile: lock the new one
    if fd >= 0:
        _HELD_LOCKS.add(fd)
    try:
        if fd >= 0:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        remove_stale_temps(target.parent, target.name)
        yield target
    finally:
        if fd >= 0:
            _HELD_LOCKS.discard(fd)
            with contextlib.suppress(OSError):
                os.unlink(where)  # before the unlock: a run that opened it meanwhile sees it gone
            os.close(fd)


def exclusive_output(func: F) -> F:
    """Decorate `func(source, output=None, ...)`: it runs holding `output_lock(output)` when
    `output` is a path (not None, not a folder: `func` reports that)."""

    @functools.wraps(func)
    def locked(source: Any, output: Any = None, *args: Any, **kwargs: Any) -> Any:
        if output is None or Path(output).is_dir():
            return func(source, output, *args, **kwargs)
        with output_lock(output):
            return func(source, output, *args, **kwargs)

    return locked  # type: ignore[return-value]


def create_once(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> bool:
    """Create `path` holding `data` (with `mode`) unless it exists; True when this call created it.

    The file appears whole, in one step (a hard link to a written temporary file), and of several
    processes creating it at once exactly one succeeds; the others get False and read its
    content. On a file system without hard links it is created with O_EXCL (still one winner).
    """
    target = prepare_parent(path)
    remove_stale_temps(target.parent, target.name)
    fd, tmp = _make_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # before the data: never readable by others
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            try:
                out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileExistsError:
                return False
            with os.fdopen(out, "wb") as handle:
                handle.write(data)
                os.fsync(handle.fileno())
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
