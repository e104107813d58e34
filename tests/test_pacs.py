"""Census and pull against a real Orthanc (DICOMweb and DIMSE), compared with the file index of the same export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.errors import PacsError
from modan_dicom.pacs.census import run_census
from modan_dicom.pacs.pull import run_pull

pytestmark = pytest.mark.orthanc
SALT = "test-salt"


@pytest.fixture(scope="module")
def file_series(small_index: Path) -> pd.DataFrame:
    """Per series of the file index (same salt): labels, status and number of files."""
    from modan_dicom.ingest import read_index

    frame = read_index(small_index)
    frame = frame[frame["series_key"].notna()]
    return frame.groupby("series_key").agg(
        modality=("modality", "first"), anatomy=("anatomy", "first"), status=("status", "first"),
        files=("path", "size"))


def _urls(pacs) -> list[str]:
    return [pacs.dicomweb_url, pacs.dimse_url]


def _phi(export: Path) -> list[str]:
    return json.loads((export / "phi.json").read_text(encoding="utf-8"))


def _same_labels(census: pd.DataFrame, file_series: pd.DataFrame) -> None:
    joined = census.set_index("series_key").join(file_series, how="inner", suffixes=("", "_file"))
    assert len(joined) == len(census)
    for column in ("modality", "anatomy"):
        left = joined[column].fillna("-")
        right = joined[f"{column}_file"].fillna("-")
        assert (left == right).all(), joined.loc[left != right, [column, f"{column}_file"]]
    both_image = joined["status_file"].isin(["ok", "unmapped"])
    assert (joined.loc[both_image, "status"] == joined.loc[both_image, "status_file"]).all()


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_census_matches_the_file_index(pacs, small_export: Path, file_series: pd.DataFrame, protocol: str,
                                       tmp_path: Path) -> None:
    url = pacs.dicomweb_url if protocol == "dicomweb" else pacs.dimse_url
    out = tmp_path / "census.parquet"
    result = run_census(url, out, salt=SALT)
    census = result.frame
    assert result.warnings == []
    # every series Orthanc holds, once, with the file index's pseudonyms and labels
    assert len(census) == pacs.statistics()["CountSeries"] == census["series_key"].nunique()
    _same_labels(census, file_series)
    counts = census.set_index("series_key")["instances"]
    assert (counts == file_series.loc[counts.index, "files"]).all()
    assert set(census["status"]) <= {"ok", "unmapped", "non_image"}
    assert (census["status"] == "ok").sum() > 50
    ok = census[census["status"] == "ok"]
    assert all(len(v) == 12 and sum(v) == 2 for v in ok["multi_hot"])
    # no PHI, no UID, no date finer than the month
    raw = out.read_bytes() + json.dumps(pq.read_table(out).to_pylist(), default=str).encode()
    for value in _phi(small_export):
        assert value.encode() not in raw, value
    assert b"1.2.826.0.1.3680043" not in raw
    assert census["study_month"].str.fullmatch(r"\d{4}-\d{2}").all()
    meta = pq.read_schema(out).metadata[b"modan_dicom"]
    assert json.loads(meta)["layout"] == protocol and b"ZZPHI" not in meta


def test_dicomweb_and_dimse_give_the_same_census(pacs) -> None:
    web = run_census(pacs.dicomweb_url, salt=SALT).frame.set_index("path")
    dimse = run_census(pacs.dimse_url, salt=SALT).frame.set_index("path")
    columns = ["status", "modality", "anatomy", "anatomy_source", "instances", "patient_key", "study_month"]
    pd.testing.assert_frame_equal(web.loc[dimse.index, columns], dimse[columns])


def test_instance_level_census(pacs, small_index: Path) -> None:
    from modan_dicom.ingest import read_index

    census = run_census(pacs.dicomweb_url, salt=SALT, level="instance").frame
    files = read_index(small_index)
    files = files[files["instance_key"].notna()].set_index("instance_key")
    assert len(census) == pacs.statistics()["CountInstances"]
    joined = census.set_index("instance_key").join(files, how="inner", suffixes=("", "_file"))
    assert len(joined) == len(census)
    assert (joined["SOPClassUID"] == joined["SOPClassUID_file"]).all()
    assert (joined["modality"].fillna("-") == joined["modality_file"].fillna("-")).all()
    assert (census["instances"] == 1).all()


def test_filters_and_incremental_census(pacs, tmp_path: Path) -> None:
    everything = run_census(pacs.dicomweb_url, salt=SALT).frame
    ct = run_census(pacs.dimse_url, salt=SALT, modality="CT").frame
    assert len(ct) == (everything["Modality"] == "CT").sum() and set(ct["Modality"]) == {"CT"}
    months = sorted(everything["study_month"].dropna().unique())
    cut = months[len(months) // 2]
    out = tmp_path / "census.parquet"
    early = run_census(pacs.dicomweb_url, out, salt=SALT, study_date=f"-{cut.replace('-', '')}01").frame
    assert 0 < len(early) < len(everything)
    assert (early["study_month"] <= cut).all()
    merged = run_census(pacs.dicomweb_url, out, salt=SALT, since=f"{cut}-01").frame
    assert sorted(merged["path"]) == sorted(everything["path"])


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_a_capped_archive_is_split_by_date_until_complete(capped_pacs, file_series: pd.DataFrame,
                                                          protocol: str) -> None:
    url = capped_pacs.dicomweb_url if protocol == "dicomweb" else capped_pacs.dimse_url
    # DIMSE says it stopped (C-FIND Cancel); Orthanc's QIDO-RS is silent, so the cap is given
    result = run_census(url, salt=SALT, query_cap=40 if protocol == "dicomweb" else None)
    assert len(result.frame) == capped_pacs.statistics()["CountSeries"]
    assert any("caps the matches" in w for w in result.warnings)
    assert result.queries > 3
    _same_labels(result.frame, file_series)


def test_wrong_called_ae_title_is_one_line(pacs) -> None:
    url = pacs.dimse_url.replace("ORTHANC@", "NOTORTHANC@")
    with pytest.raises(PacsError, match="rejected"):
        run_census(url, salt=SALT)
    result = CliRunner().invoke(main, ["index", url, "-o", "unused.parquet", "--salt", SALT])
    assert result.exit_code == 2
    assert "rejected" in result.output and "Traceback" not in result.output


def _pulled_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dcm"))


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_pull_reindexes_to_the_census_labels_without_phi(pacs, small_export: Path, protocol: str,
                                                         tmp_path: Path) -> None:
    url = pacs.dicomweb_url if protocol == "dicomweb" else pacs.dimse_url
    census_path = tmp_path / "census.parquet"
    census = run_census(url, census_path, salt=SALT).frame
    out = tmp_path / "pulled"
    per_series = 2 if protocol == "dicomweb" else 1  # a C-GET costs Orthanc about 0.3 s: keep the suite short
    result = run_pull(url, out, census=str(census_path), per_series=per_series, salt=SALT, workers=3)
    ok = census[census["status"] == "ok"]
    expected = int(ok["instances"].clip(upper=per_series).sum())
    assert result.errors == 0, result.frame[result.frame["status"] == "error"]["error"].tolist()[:3]
    assert result.pulled == expected == len(_pulled_files(out))
    # the index of the de-identified files gives back the census's labels, series by series
    from modan_dicom.ingest import read_index

    index = read_index(out / "index.parquet")  # joined with its local file: the paths
    assert (index["status"] == "ok").sum() == expected == len(index)  # the pull's own marker is not indexed
    joined = result.frame.merge(index, on="path", suffixes=("_pull", "_index"))
    assert len(joined) == expected
    assert (joined["modality_pull"] == joined["modality_index"]).all()
    assert (joined["anatomy_pull"] == joined["anatomy_index"]).all()
    # grouping survives: one pulled series -> one series in the files
    assert joined.groupby("series_key_pull")["series_key_index"].nunique().eq(1).all()
    assert joined["series_key_pull"].nunique() == joined["series_key_index"].nunique() == len(ok)
    # no fake PHI value in any output byte
    phi = [value.encode() for value in _phi(small_export)]
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [v for v in phi if v in data], path


def test_killed_pull_resumes_without_duplicates(pacs, tmp_path: Path) -> None:
    out = tmp_path / "pulled"
    env = {**os.environ, "MODAN_SALT": SALT}
    command = [str(Path(sys.executable).parent / "modan-dicom"), "pull", pacs.dicomweb_url, "--out", str(out),
               "--per-series", "3", "--workers", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_pulled_files(out)) < 20:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = {p.relative_to(out): p.read_bytes() for p in _pulled_files(out)}
    assert 20 <= len(first)
    result = run_pull(pacs.dicomweb_url, out, per_series=3, salt=SALT, workers=2)
    assert result.present == len(first) and result.errors == 0
    assert not [p for p in out.rglob("*.tmp")]
    files = _pulled_files(out)
    assert len(files) == result.pulled + result.present == len(set(result.frame["path"]))
    # what was there is untouched, and a clean pull gives the very same files
    assert all(first[p.relative_to(out)] == p.read_bytes() for p in files if p.relative_to(out) in first)
    clean = run_pull(pacs.dicomweb_url, tmp_path / "clean", per_series=3, salt=SALT, workers=2)
    assert sorted(clean.frame["path"]) == sorted(result.frame["path"])
    assert all((tmp_path / "clean" / p).read_bytes() == (out / p).read_bytes() for p in clean.frame["path"])


def test_pull_cli_warns_without_deidentification(pacs, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pull", pacs.dicomweb_url, "--out", str(tmp_path / "raw"), "--salt", SALT,
                                       "--no-deidentify", "--modality", "US"])
    assert result.exit_code == 0, result.output
    assert "--no-deidentify" in result.output and "NOT de-identified" in result.output
    files = _pulled_files(tmp_path / "raw")
    assert files and any(b"ZZPHI" in f.read_bytes() for f in files)  # the archive's bytes, PHI included
