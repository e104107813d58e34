"""Hostile input (issue 13): deflate bombs, absurd lengths and large files of zeros never hang,
crash or blow up the header reader, the index or the image loader.

The files come from `hostile.py`: small on disk (bombs compress ~1,000:1) or sparse. Every test
is bounded in time (pytest-timeout); without the caps most of them run for minutes or need
gigabytes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

import hostile
from modan_dicom.ingest.header import MAX_INFLATED_HEADER, MAX_VALUE_BYTES, read_header, read_header_pydicom

MIB = 1 << 20


def _peak(fn, *args):
    """(fn(*args), seconds, peak bytes Python allocated meanwhile)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = fn(*args)
        return result, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- the header reader --------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_deflate_bomb_in_many_elements_is_an_error_row_at_once(tmp_path: Path) -> None:
    # 25 MiB of zeros in 3,200 elements of 8 kB (a 41 kB file): each element used to re-copy
    # everything inflated so far (41 s).
    path = hostile.deflate_bomb(tmp_path / "bomb.dcm", 25 * MIB, pieces=3200)
    assert path.stat().st_size < 64_000
    got, seconds, peak = _peak(read_header, path)
    assert got["kind"] == "error"
    assert got["error"] == f"too large: deflated header larger than {MAX_INFLATED_HEADER >> 20} MiB"
    assert seconds < 2 and peak < 4 * MIB


@pytest.mark.timeout(20)
def test_deflated_header_under_the_cap_is_read_in_a_small_window(tmp_path: Path) -> None:
    path = hostile.deflate_bomb(tmp_path / "large.dcm", 12 * MIB, pieces=1500)
    got, seconds, peak = _peak(read_header, path)
    assert got["kind"] == "dicom" and got["image"] is True
    assert (got["Rows"], got["Columns"], got["Modality"]) == (4, 4, "CT")
    assert seconds < 2 and peak < 4 * MIB  # it held all 12 MiB inflated


@pytest.mark.timeout(20)
def test_deflated_text_bomb_is_an_error_row(tmp_path: Path) -> None:
    # a 65 kB file whose Study Description inflates to 64 MiB: it became a 64 MiB string in the index
    path = hostile.deflated_text_bomb(tmp_path / "text.dcm", 64 * MIB)
    got, seconds, peak = _peak(read_header, path)
    assert got["kind"] == "error" and got["error"].startswith("too large: a text value of 67,108,864 bytes")
    assert got["StudyDescription"] is None
    assert seconds < 2 and peak < 4 * MIB


@pytest.mark.timeout(20)
def test_huge_text_value_in_a_plain_file_is_never_read(tmp_path: Path) -> None:
    path = hostile.huge_text_value(tmp_path / "huge.dcm", 256 * MIB)  # sparse: the file holds the value
    got, seconds, peak = _peak(read_header, path)
    assert got["kind"] == "error" and f"more than {MAX_VALUE_BYTES >> 10} KiB" in got["error"]
    assert seconds < 2 and peak < 4 * MIB


@pytest.mark.timeout(30)
def test_pydicom_fallback_is_capped_too(tmp_path: Path) -> None:
    # The reference reader (used for files the walker rejects) inflated the whole dataset at once.
    bomb = hostile.deflate_bomb(tmp_path / "bomb.dcm", 128 * MIB)
    got, seconds, peak = _peak(read_header_pydicom, bomb)
    assert got["kind"] == "error" and got["error"].startswith("too large: deflated header larger than")
    assert peak < 3 * MAX_INFLATED_HEADER
    huge = hostile.huge_text_value(tmp_path / "huge.dcm", 256 * MIB)
    got, seconds, peak = _peak(read_header_pydicom, huge)
    assert got["kind"] == "error" and "a text value of 268,435,456 bytes" in got["error"]
    assert peak < 4 * MIB
    text = hostile.deflated_text_bomb(tmp_path / "text.dcm", 8 * MIB)  # under the inflation cap
    got = read_header_pydicom(text)
    assert got["kind"] == "error" and "a text value of 8,388,608 bytes" in got["error"]
    small = hostile.deflate_bomb(tmp_path / "small.dcm", 2 * MIB)
    assert read_header_pydicom(small) == read_header(small)
    assert read_header(small)["PatientID"] == hostile.PATIENT_ID


def test_large_file_of_zeros_is_not_dicom_at_once(tmp_path: Path) -> None:
    path = hostile.zeros(tmp_path / "zeros.bin", 2**31)
    start = time.perf_counter()
    assert read_header(path)["kind"] == "not_dicom"
    assert time.perf_counter() - start < 1


# ---- the index ----------------------------------------------------------------------------------

_CAPPED_INDEX = """
import re, resource, sys
from modan_dicom.ingest import run_index
# this process's address space now, plus 300 MB: a bomb inflated whole does not fit
size = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
limit = size + 300 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
run_index(sys.argv[1], sys.argv[2], salt="test", return_frame=False)
"""


@pytest.mark.timeout(60)
def test_index_under_a_memory_cap_gives_error_rows(tmp_path: Path) -> None:
    # Two bombs used to take 2.3 GB; under a memory cap the whole index died with a traceback.
    import pyarrow.parquet as pq

    src = tmp_path / "export"
    src.mkdir()
    hostile.deflate_bomb(src / "bomb.dcm", 256 * MIB)
    hostile.deflated_text_bomb(src / "text.dcm", 64 * MIB)
    hostile.huge_text_value(src / "huge.dcm", 512 * MIB)
    hostile.deflate_bomb(src / "fine.dcm", MIB)
    out = tmp_path / "index.parquet"
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(_CAPPED_INDEX), str(src), str(out)],
                         capture_output=True, text=True, timeout=50)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {r["path"]: r for r in pq.read_table(out).to_pylist()}
    assert rows["fine.dcm"]["status"] in ("ok", "unmapped")
    for name in ("bomb.dcm", "text.dcm", "huge.dcm"):
        assert rows[name]["status"] == "error" and rows[name]["error"].startswith("too large: "), name
