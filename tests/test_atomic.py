"""Atomic writes: all or nothing, no temporary files left (nor those of killed writers), ordinary
permissions; one writer per output; one creator per file."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from modan_dicom import atomic
from modan_dicom.errors import OutputError


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "index.parquet"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.atomic_open(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.parquet"]


def test_new_files_follow_the_umask_and_existing_modes_are_kept(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        fresh = atomic.write_bytes(tmp_path / "a.bin", b"x")
        assert fresh.stat().st_mode & 0o777 == 0o644
        private = tmp_path / "b.txt"
        private.write_text("secret")
        private.chmod(0o600)
        atomic.write_text(private, "still secret")
        assert private.stat().st_mode & 0o777 == 0o600 and private.read_text() == "still secret"
    finally:
        os.umask(umask)


def test_unwritable_destination_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot create output folder"):
        atomic.write_text(blocker / "sub" / "x.txt", "y")


def _write_and_hang(target: str, flag: str) -> None:
    """A writer that dies (or is killed) in the middle of an atomic write."""
    import time

    with atomic.atomic_open(target, "wb") as handle:
        handle.write(b"half of a file" * 1000)
        handle.flush()
        Path(flag).write_text("writing")
        time.sleep(60)


def _start_writer(target: Path, flag: Path) -> multiprocessing.process.BaseProcess:
    child = multiprocessing.get_context("fork").Process(target=_write_and_hang, args=(str(target), str(flag)))
    child.start()
    deadline = time.monotonic() + 20
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag.exists()
    return child


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_temporaries_of_killed_writers_are_removed_those_of_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "index.parquet"
    killed = _start_writer(target, tmp_path / "flag-killed")
    os.kill(killed.pid, signal.SIGKILL)
    killed.join()
    live = _start_writer(target, tmp_path / "flag-live")
    other = _start_writer(tmp_path / "other.bin", tmp_path / "flag-other")
    try:
        old = tmp_path / ".index.parquet.a1b2c3d4.parquet.tmp"  # an earlier version's name: no pid
        old.write_bytes(b"x")
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        fresh = tmp_path / ".index.parquet.e5f6g7h8.tmp"  # without a pid, written after this process started
        fresh.write_bytes(b"x")
        user = tmp_path / ".index.parquet.notes.tmp"  # not a name of ours
        user.write_bytes(b"mine")
        assert len(_temps(tmp_path)) == 6
        assert atomic.remove_stale_temps(tmp_path, "index.parquet") == 2  # the killed writer's, the old one
        left = _temps(tmp_path)
        assert any(name.startswith(f".index.parquet.{live.pid}-") for name in left)
        assert any(name.startswith(f".other.bin.{other.pid}-") for name in left)
        assert not any(name.startswith(f".index.parquet.{killed.pid}-") for name in left)
        assert fresh.name in left and user.name in left and old.name not in left
    finally:
        for child in (live, other):
            os.kill(child.pid, signal.SIGKILL)
            child.join()
    assert atomic.remove_stale_temps(tmp_path) == 2  # any target: the two writers are gone now
    assert _temps(tmp_path) == sorted([fresh.name, user.name])


def test_a_temporary_whose_pid_was_reused_is_stale(tmp_path: Path) -> None:
    # this process runs under the pid, but started after the file was last written
    name = f".last.pt.{os.getppid()}-abcdefgh.tmp"
    (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / name, (1_000_000, 1_000_000))  # 1970: before any running process
    assert atomic.remove_stale_temps(tmp_path) == 1


def _hold_lock(target: str, flag: str) -> None:
    import time

    with atomic.output_lock(target):
        Path(flag).write_text("held")
        time.sleep(60)


def test_one_process_at_a_time_holds_an_output(tmp_path: Path) -> None:
    target = tmp_path / "out" / "index.parquet"
    flag = tmp_path / "flag"
    holder = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(str(target), str(flag)))
    holder.start()
    try:
        deadline = time.monotonic() + 20
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(OutputError, match=rf"^another modan-dicom run is writing index.parquet \(pid {holder.pid}\)"):
            with atomic.output_lock(target):
                pass
        with atomic.output_lock(tmp_path / "out" / "other.parquet"):  # another output is free
            pass
        from modan_dicom.pacs.census import run_census

        with pytest.raises(OutputError, match="another modan-dicom run is writing index.parquet"):
            run_census("http://127.0.0.1:9/dicom-web", target)  # a census takes the same lock, first
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the system releases its lock
        holder.join()
    with atomic.output_lock(target):
        assert atomic.lock_path(target).read_text().strip() == str(os.getpid())
    assert sorted(p.name for p in target.parent.iterdir()) == []  # the lock file goes with its holder


def _hold_lock_and_fork(target: str, flag: str) -> None:
    """Hold the lock and fork a child that outlives this process (as a reading worker may)."""
    import time

    with atomic.output_lock(target):
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        Path(flag).write_text(str(child))
        time.sleep(60)


def test_the_lock_ends_with_its_holder_even_if_its_children_live_on(tmp_path: Path) -> None:
    target = tmp_path / "index.parquet"
    flag = tmp_path / "flag"
    holder = multiprocessing.get_context("fork").Process(target=_hold_lock_and_fork, args=(str(target), str(flag)))
    holder.start()
    deadline = time.monotonic() + 20
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    orphan = int(flag.read_text())
    try:
        with pytest.raises(OutputError, match=f"pid {holder.pid}"):
            with atomic.output_lock(target):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
        os.kill(orphan, 0)  # still alive, with a copy of the holder's descriptors
        with atomic.output_lock(target):
            pass
    finally:
        os.kill(orphan, signal.SIGKILL)


def _create(path: str, barrier: Any, results: Any, i: int) -> None:
    barrier.wait()
    created = atomic.create_once(path, f"value {i}\n".encode())
    results.put((created, i))


def test_concurrent_creators_agree_on_one_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for trial in range(5):
        path = tmp_path / f"salt-{trial}"
        barrier, results = ctx.Barrier(8), ctx.Queue()
        children = [ctx.Process(target=_create, args=(str(path), barrier, results, i)) for i in range(8)]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=20) for _ in children]
        for child in children:
            child.join()
        winners = [i for created, i in outcomes if created]
        assert len(winners) == 1
        assert path.read_text() == f"value {winners[0]}\n"
        assert path.stat().st_mode & 0o777 == 0o600
    assert _temps(tmp_path) == []
