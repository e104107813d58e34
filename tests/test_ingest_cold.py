"""The index on a cold disk and with several processes: deferred file ends, folders read ahead,
chunks shared with worker processes. Each path must give exactly what the plain one gives."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from modan_dicom.ingest import index as index_mod
from modan_dicom.ingest import pagecache
from modan_dicom.ingest.executor import ChunkRunner, WorkerFailed
from modan_dicom.ingest.header import read_header, tail_is_whole
from modan_dicom.ingest.index import FileIndexer, _Settings
from modan_dicom.ingest.walk import _ReadAhead, _walk_items, walk_items
from test_ingest_support import make_dataset, write_dicom


def _big_encapsulated(path: Path, fragment_bytes: int = 20_000, frames: int = 1) -> Path:
    """An encapsulated image whose end lies well past the first 8 kB window."""
    ds = make_dataset(rows=64, columns=64, series_description="AX T1 KNEE")
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(fragment_bytes)] * frames)
    ds["PixelData"].VR = "OB"
    if frames > 1:
        ds.NumberOfFrames = frames
    return write_dicom(path, ds, transfer_syntax=JPEG2000Lossless)


@pytest.fixture
def tails_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a cold disk: every read past the first window would wait for the disk."""
    monkeypatch.setattr(pagecache, "read_cached", lambda fd, offset, n: None)


def test_a_cached_tail_is_checked_at_once(tmp_path: Path) -> None:
    whole = _big_encapsulated(tmp_path / "whole")
    assert "tail" not in read_header(whole, defer_tail=True)  # just written: in the page cache
    cut = tmp_path / "cut"
    cut.write_bytes(whole.read_bytes()[:-100])
    assert read_header(cut, defer_tail=True)["kind"] == "error"


def test_deferred_tail_gives_the_same_header_and_is_checked_later(tmp_path: Path, tails_not_cached: None) -> None:
    whole = _big_encapsulated(tmp_path / "whole")
    direct = read_header(whole)
    deferred = read_header(whole, defer_tail=True)
    tail = deferred.pop("tail")
    assert deferred == direct and direct["kind"] == "dicom" and "tail" not in direct
    assert tail == (whole.stat().st_size - 8, b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert tail_is_whole(whole, tail)

    cut = tmp_path / "cut"
    cut.write_bytes(whole.read_bytes()[:-100])  # ends inside its only fragment
    assert read_header(cut)["kind"] == "error"
    late = read_header(cut, defer_tail=True)
    assert late["kind"] == "dicom"  # not known yet: the check comes later
    assert not tail_is_whole(cut, late["tail"])


def _settings(root: Path) -> _Settings:
    return _Settings(str(root), "radimagenet", b"salt" * 8, False, "dicom", "")


def _rows(root: Path) -> tuple[Any, Any]:
    return FileIndexer(_settings(root)).batch(list(walk_items(root)))


def test_a_cold_chunk_gives_the_rows_of_a_warm_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "src"
    for i in range(3):
        _big_encapsulated(root / f"whole{i}", fragment_bytes=12_000 + 5_000 * i)
    _big_encapsulated(root / "frames", frames=3)
    data = _big_encapsulated(tmp_path / "x").read_bytes()
    (root / "cut-in-fragment").write_bytes(data[:-100])
    (root / "cut-before-delimiter").write_bytes(data[:-8])
    (root / "padded").write_bytes(data + bytes(8))  # bytes after the delimiter: read in full
    write_dicom(root / "native", rows=64, columns=64)
    (root / "junk").write_bytes(b"not dicom at all" * 100)
    warm_batch, warm_counts = _rows(root)
    deferred: list[str] = []
    check = index_mod.tail_is_whole
    monkeypatch.setattr(pagecache, "read_cached", lambda fd, offset, n: None)
    monkeypatch.setattr(index_mod, "tail_is_whole", lambda path, tail: (deferred.append(path), check(path, tail))[1])
    cold_batch, cold_counts = _rows(root)
    assert cold_batch.equals(warm_batch) and cold_counts == warm_counts
    assert len(deferred) == 7  # the encapsulated files whose end lies past the first window
    status = dict(zip(warm_batch.column("path").to_pylist(), warm_batch.column("status").to_pylist()))
    assert status["cut-in-fragment"] == status["cut-before-delimiter"] == "error"
    assert status["whole0"] == status["frames"] == status["padded"] == "ok"


def _deep_tree(root: Path, links: bool = False) -> None:
    for a in range(4):
        for b in range(3):
            for c in range(3):
                folder = root / f"p{a}" / f"s{b}" / f"r{c}"
                folder.mkdir(parents=True)
                for f in range(2):
                    (folder / f"IM{f}").write_bytes(b"x" * (a + b + c + f))
        (root / f"p{a}" / "notes.txt").write_text("n")
    if not links:
        return
    (root / "p1" / "s0" / "loop").symlink_to(root)
    (root / "p2" / "alias").symlink_to(root / "p0")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "skip-me").write_text("s")


def test_folders_read_ahead_give_the_plain_walk(tmp_path: Path) -> None:
    _deep_tree(tmp_path, links=True)
    exclude = lambda rel: rel == "skip-me"  # noqa: E731
    plain = list(walk_items(tmp_path, exclude=exclude))
    ahead = _ReadAhead(threads=3, burst=7)
    ahead.cold = True  # as on a cold disk: every folder not read ahead starts a burst
    bursts = []
    read = ahead._read_ahead
    ahead._read_ahead = lambda start: (bursts.append(list(start)), read(start))[1]  # type: ignore[method-assign]
    assert list(_walk_items(tmp_path, exclude, ahead)) == plain
    assert len(bursts) >= 5  # 7 folders a burst over ~50 folders
    assert len(plain) == 4 * 3 * 3 * 2 + 4 + 1  # the loop and the alias are not walked again


def test_a_burst_reads_the_next_folders_in_walk_order(tmp_path: Path) -> None:
    _deep_tree(tmp_path)  # 52 folders below the root
    ahead = _ReadAhead(threads=1, burst=8)  # one thread: exactly the next folders in walk order
    ahead.cold = True
    reads: list[set[str]] = []
    read = ahead._read_ahead
    ahead._read_ahead = lambda start: (read(start), reads.append(set(ahead._read)))[0]  # type: ignore[method-assign]
    list(_walk_items(tmp_path, None, ahead))
    assert all(len(r) <= 8 for r in reads)
    assert len(reads) <= 8  # ceil(52 / 8) = 7, +1 for the root: each burst's folders are all used
    folders = {str(p) + "/" for p in [tmp_path, *tmp_path.rglob("*")] if p.is_dir()}
    assert set().union(*reads) == folders


def test_cold_disk_is_recognised_by_slow_folder_listings() -> None:
    lister = _ReadAhead(cold_s=30e-6)
    for k in range(64):
        lister._listed(5e-3 if k % 4 == 0 else 4e-6, 3)  # preempted now and then: still warm
        lister._listed(600e-6, 1000)  # a big folder takes long from the cache too
    assert not lister.cold
    for _ in range(16):
        lister._listed(90e-6, 3)
    assert lister.cold


# ---- sharing chunks with worker processes -------------------------------------------------------


class _Doubler:
    """A reader for ChunkRunner tests: doubles numbers; in a worker process, raises or dies on
    the chunks from `fail_on` / `die_on` on."""

    main_pid = os.getpid()

    def __init__(self, fail_on: int | None = None, die_on: int | None = None) -> None:
        self.fail_on, self.die_on = fail_on, die_on

    def warm_up(self) -> None:
        pass

    def prefetch(self, items: list[int]) -> None:
        pass

    def batch(self, items: list[int], prefetch: bool = True) -> tuple[int, list[int]]:
        if os.getpid() != _Doubler.main_pid:
            if self.fail_on is not None and items[0] >= self.fail_on:
                raise ValueError(f"cannot read {items[0]}")
            if self.die_on is not None and items[0] >= self.die_on:
                os._exit(3)
            time.sleep(0.002)  # the main process then reads some chunks itself
        return os.getpid(), [2 * x for x in items]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_chunks_come_back_in_walk_order(workers: int) -> None:
    chunks = [(k, list(range(10 * k, 10 * k + 10)) if k % 7 else []) for k in range(60)]
    with ChunkRunner(_Doubler, workers) as runner:
        got = list(runner.map(iter(chunks)))
    assert [tag for tag, _, _ in got] == list(range(60))
    for (tag, items), (_, result, n) in zip(chunks, got):
        assert n == len(items)
        assert (result is None) if not items else result[1] == [2 * x for x in items]
    pids = {result[0] for _, result, _ in got if result is not None}
    assert len(pids) == workers  # every process read some chunks


def test_a_failing_worker_raises_its_error_in_the_main_process() -> None:
    chunks = [(k, [k]) for k in range(40)]
    started = time.perf_counter()
    with pytest.raises(WorkerFailed, match=r"ValueError: cannot read \d+"):
        with ChunkRunner(lambda: _Doubler(fail_on=5), 2) as runner:
            for _ in runner.map(iter(chunks)):
                pass
    assert time.perf_counter() - started < 5


def test_a_worker_that_dies_is_reported() -> None:
    chunks = [(k, [k]) for k in range(40)]
    with pytest.raises(WorkerFailed, match="died"):
        with ChunkRunner(lambda: _Doubler(die_on=3), 2) as runner:
            for _ in runner.map(iter(chunks)):
                pass


# ---- the read-ahead helper process --------------------------------------------------------------


class _Shared:
    def __init__(self, value: int) -> None:
        self.value = value


def test_read_ahead_asks_for_files_in_walk_order_and_keeps_its_lead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from modan_dicom.ingest import readahead

    _deep_tree(tmp_path)
    order = [p for p, *_ in walk_items(tmp_path)]
    asked: list[int] = []
    monkeypatch.setattr(pagecache, "advise", lambda fd, offset, n: asked.append(os.fstat(fd).st_ino))
    done, stop = _Shared(0), _Shared(0)
    helper = threading.Thread(target=readahead._run, args=(str(tmp_path), None, done, stop, 5, 8192))
    helper.start()
    deadline = time.monotonic() + 5
    while len(asked) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert len(asked) == 5  # no further than its lead ahead of the index
    done.value = 20
    while len(asked) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert len(asked) == 25
    stop.value = 1
    helper.join(timeout=5)
    assert not helper.is_alive()
    assert asked == [os.stat(tmp_path / p).st_ino for p in order[:25]]


def test_index_with_the_read_ahead_helper_equals_without(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modan_dicom.ingest import build_index, readahead

    root = tmp_path / "src"
    for i in range(3):
        _big_encapsulated(root / f"s{i}" / f"whole{i}")
        write_dicom(root / f"s{i}" / "native", rows=32, columns=32)
    plain = build_index(root, None, salt="s", batch_size=2)
    started: list[bool] = []
    start = readahead.ReadAhead.start.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(readahead.ReadAhead, "start", classmethod(
        lambda cls, root, exclude=None, **kw: started.append(True) or start(cls, root, exclude, force=True, **kw)))
    helped = build_index(root, None, salt="s", batch_size=2)
    assert started and helped.equals(plain)


def test_a_freshly_written_tree_is_not_cold(tmp_path: Path) -> None:
    from modan_dicom.ingest.readahead import disk_is_cold

    _deep_tree(tmp_path / "deep")
    assert not disk_is_cold(str(tmp_path / "deep"))
    for k in range(16):  # big folders: their listings take long from the cache too
        folder = tmp_path / "flat" / f"series{k:02d}"
        folder.mkdir(parents=True)
        for i in range(500):
            (folder / f"IM{i:04d}").touch()
    assert not disk_is_cold(str(tmp_path / "flat"))
