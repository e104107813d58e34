"""`modan-dicom index` through click's CliRunner: summary, bad input, empty folder, no PHI printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.ingest import read_index
from modan_dicom.ingest.pseudonym import SALT_ENV
from test_ingest_support import FAKE_ADDRESS, FAKE_BIRTH_DATE, FAKE_PATIENT_NAME, write_dicom, write_sr


@pytest.fixture(autouse=True)
def _no_env_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)


def _source(root: Path) -> Path:
    for i in range(3):
        write_dicom(root / "s1" / f"IM{i}", modality="MR", body_part="KNEE", patient_id="PID-SECRET-1")
        write_dicom(root / "s2" / f"IM{i}", modality="CT", body_part="", series_description="Recon 7",
                    study_description="", patient_id="PID-SECRET-1")
    write_sr(root / "s3" / "SR1", patient_id="PID-SECRET-1")
    (root / "notes.txt").write_text("x")
    return root


def test_index_prints_the_summary_and_writes_the_index(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    out = tmp_path / "out" / "index.parquet"
    result = CliRunner().invoke(main, ["index", str(src), "-o", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output + result.stderr
    text = result.output
    assert "files by status" in text and "anatomy x modality" in text
    assert "top unmapped values" in text and "Recon 7" in text
    assert "index written to" in result.stderr and "salt from new file" in result.stderr
    df = read_index(out)
    assert len(df) == 8 and (df["status"] == "ok").sum() == 3
    for secret in (FAKE_PATIENT_NAME, FAKE_BIRTH_DATE, FAKE_ADDRESS, "PID-SECRET-1"):
        assert secret not in result.output and secret not in result.stderr
    again = CliRunner().invoke(main, ["index", str(src), "-o", str(out)])
    assert again.exit_code == 0 and "0 read" in again.stderr.replace("\n", " ")


def test_missing_source_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["index", str(tmp_path / "nope"), "-o", str(tmp_path / "i.parquet")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no such folder" in lines[0]
    assert "Traceback" not in result.output + result.stderr


def test_unwritable_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    (tmp_path / "plain-file").write_text("x")
    result = CliRunner().invoke(main, ["index", str(src), "-o", str(tmp_path / "plain-file" / "i.parquet")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "Traceback" not in result.output + result.stderr


def test_empty_folder_warns(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["index", str(tmp_path / "empty"), "-o", str(tmp_path / "i.parquet")])
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "no files found" in result.stderr
    assert len(read_index(tmp_path / "i.parquet")) == 0


def test_bad_layout_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["index", str(tmp_path), "-o", str(tmp_path / "i.parquet"), "--layout", "x"])
    assert result.exit_code == 2 and "Invalid value" in result.stderr


def test_zero_workers_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["index", str(tmp_path), "-o", str(tmp_path / "i.parquet"), "--workers", "0"])
    assert result.exit_code == 2 and "Invalid value" in result.stderr
    assert not (tmp_path / "i.parquet").exists()


def test_a_file_of_the_users_is_not_replaced_by_the_index(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    mine = tmp_path / "report.txt"
    mine.write_text("my report\n")
    result = CliRunner().invoke(main, ["index", str(src), "-o", str(mine), "--workers", "2"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing to replace it" in lines[0]
    assert mine.read_text() == "my report\n"
