"""The walk: every regular file once, sorted, through symlinks without loops, whatever the names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modan_dicom.ingest.walk import count_files, walk, walk_items


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a-c").write_bytes(b"x")
    (root / "a" / "b" / "IM000001").write_bytes(b"12345")  # no extension
    (root / "a" / "file.dcm").write_bytes(b"")
    (root / "DICOMDIR").write_bytes(b"d")
    (root / "ü-名前").mkdir()
    (root / "ü-名前" / "Bild 1").write_bytes(b"z")


def test_sorted_relative_posix_paths_with_sizes(tmp_path: Path) -> None:
    _tree(tmp_path)
    entries = list(walk(tmp_path))
    paths = [e.path for e in entries]
    assert paths == sorted(paths)  # global code point order, not per-folder order
    assert set(paths) == {"DICOMDIR", "a-c", "a/b/IM000001", "a/file.dcm", "ü-名前/Bild 1"}
    by_path = {e.path: e for e in entries}
    assert by_path["a/b/IM000001"].size == 5
    assert by_path["a/b/IM000001"].mtime_ns == os.stat(tmp_path / "a/b/IM000001").st_mtime_ns
    assert all(e.error is None for e in entries)
    assert count_files(tmp_path) == 5


def test_symlink_loops_end_and_linked_folders_are_walked_once(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.symlink(tmp_path, tmp_path / "a" / "b" / "loop")  # back to the root
    os.symlink(tmp_path / "a", tmp_path / "z-alias")  # a second name for a folder
    os.symlink(tmp_path / "a" / "b" / "IM000001", tmp_path / "link-to-file")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    entries = list(walk(tmp_path))
    paths = [e.path for e in entries]
    assert len(paths) == len(set(paths))
    assert "link-to-file" in paths  # file links are files
    assert not any(p.startswith("z-alias/") for p in paths)  # "a" was walked already
    assert not any("/loop/" in p for p in paths)
    dangling = next(e for e in entries if e.path == "dangling")
    assert dangling.error == "dangling symbolic link"
    assert count_files(tmp_path) == len(paths)  # the dangling link is a row too


def test_fifo_is_skipped_and_exclusions_apply(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.mkfifo(tmp_path / "pipe")  # opening it would block the run
    paths = [e.path for e in walk(tmp_path, exclude=lambda rel: rel == "a-c")]
    assert "pipe" not in paths and "a-c" not in paths and "DICOMDIR" in paths


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any folder")
def test_unlistable_folder_is_an_error_entry(tmp_path: Path) -> None:
    _tree(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "x").write_bytes(b"x")
    locked.chmod(0)
    try:
        entries = {e.path: e for e in walk(tmp_path)}
    finally:
        locked.chmod(0o755)
    assert entries["locked"].error.startswith("cannot list folder")


def test_walk_is_a_generator(tmp_path: Path) -> None:
    _tree(tmp_path)
    it = walk(tmp_path)
    assert iter(it) is it
    first = next(it)
    assert first.path == "DICOMDIR"


def test_non_utf8_name_is_reported(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad-\xff-name")
    try:
        (tmp_path / name).write_bytes(b"x")
    except (OSError, UnicodeEncodeError):
        pytest.skip("the file system refuses non-UTF-8 names")
    (entry,) = list(walk(tmp_path))
    assert entry.error == "file name is not valid UTF-8"
    entry.path.encode("utf-8")  # storable


def test_walk_items_are_the_walk_as_tuples(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    items = list(walk_items(tmp_path, exclude=lambda rel: rel == "a-c"))
    entries = list(walk(tmp_path, exclude=lambda rel: rel == "a-c"))
    assert items == [(e.path, e.size, e.mtime_ns, e.error) for e in entries]
    assert [i[0] for i in items] == ["DICOMDIR", "a/b/IM000001", "a/file.dcm", "dangling", "ü-名前/Bild 1"]
    assert items[3][3] == "dangling symbolic link"


def test_walk_without_stat_leaves_plain_files_to_the_reader(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "link-to-file").symlink_to(tmp_path / "a" / "b" / "IM000001")
    os.mkfifo(tmp_path / "pipe")
    full = list(walk_items(tmp_path))
    lean = list(walk_items(tmp_path, stat_files=False))
    assert [i[0] for i in lean] == [i[0] for i in full] and [i[3] for i in lean] == [i[3] for i in full]
    by_path = {i[0]: i for i in lean}
    assert by_path["a/b/IM000001"][1:3] == (None, None)  # a plain file: its reader stats it
    assert by_path["link-to-file"][1] == 5  # links are still followed by a stat here
    assert by_path["dangling"][3] == "dangling symbolic link"
    assert "pipe" not in by_path
