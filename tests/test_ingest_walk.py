"""The walk: every regular file once, sorted, through symlinks without loops (not out of the source),
whatever the names and however long the paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from modan_dicom.ingest.walk import count_files, walk, walk_items
from test_ingest_support import deep_tree


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


def test_no_name_is_dropped_past_the_longest_path_the_system_opens(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    (tmp_path / "z").write_bytes(b"y")
    deep = deep_tree(tmp_path, depth=30)  # 6 KB paths
    try:
        for stat_files in (True, False):
            items = list(walk_items(tmp_path, stat_files=stat_files))
            paths = [path for path, *_ in items]
            assert paths == ["a", *sorted(rel for rel, _ in deep), "z"]  # all of them, in walk order
            errors = {path: error for path, _, _, error in items}
            for rel, too_long in deep:
                assert errors[rel] == ("path longer than the system allows" if too_long else None)
            assert sum(too_long for _, too_long in deep) > 5
        assert count_files(tmp_path) == len(deep) + 2
        sizes = {e.path: e.size for e in walk(tmp_path)}
        assert sizes[deep[-1][0]] == len(b"not dicom")  # stat'ed through its folder's descriptor
    finally:
        shutil.rmtree(tmp_path / deep[0][0].split("/")[0])


def test_links_out_of_the_source_are_not_followed_unless_asked(tmp_path: Path) -> None:
    src, outside = tmp_path / "src", tmp_path / "outside"
    _tree(src)
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "secret").write_bytes(b"outside")
    (outside / "file").write_bytes(b"outside too")
    (src / "to-folder").symlink_to(outside)
    (src / "to-file").symlink_to(outside / "file")
    (src / "relative").symlink_to(Path("..") / "outside" / "sub")
    (src / "a" / "inside").symlink_to(src / "ü-名前")  # stays in the source: followed
    (src / "a" / "up").symlink_to("../a-c")
    entries = {e.path: e for e in walk(src)}
    for name in ("to-folder", "to-file", "relative"):
        assert entries[name].error == "link leaves the source folder"
    assert not any(path.startswith(("to-folder/", "relative/")) for path in entries)
    assert entries["a/inside/Bild 1"].error is None and entries["a/up"].size == 1
    # 5 files (ü-名前 walked once, as a/inside), 3 links out, a/up
    assert count_files(src) == len(entries) == 5 + 3 + 1
    followed = {e.path: e for e in walk(src, follow_links=True)}
    assert followed["relative/secret"].size == 7 and followed["to-file"].error is None
    assert followed["to-folder/file"].size == 11 and "to-folder/sub/secret" not in followed  # (walked once)
    assert "to-folder" not in followed
    # the source itself given through a link: links into its real folder are inside
    (tmp_path / "alias").symlink_to(src)
    assert {e.path for e in walk(tmp_path / "alias")} == set(entries)
