"""Atomic writes: all or nothing, no temporary files left, ordinary permissions."""

from __future__ import annotations

import os
from pathlib import Path

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
