"""End to end on the synthetic export: every file once, with the manifest's expected labels, and no
fake PHI value anywhere in the index or the CLI output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.ingest import build_index, read_index_meta, run_index
from modan_dicom.ingest.pseudonym import SALT_ENV
from modan_dicom.synth import synth_export

# labels.py reports the Anatomic Region Sequence as "AnatomicRegion" (its raw key); the manifest
# uses the DICOM keyword.
SOURCE_ALIASES = {"AnatomicRegionSequence": "AnatomicRegion"}


@pytest.fixture(autouse=True)
def _no_env_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synth") / "export"
    manifest = synth_export(root, seed=3, image_size=64)
    return root, manifest


@pytest.fixture(scope="module")
def radimagenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synth") / "radimagenet"
    manifest = synth_export(root, seed=3, layout="radimagenet", image_size=32, images_per_class=2)
    return root, manifest


def _compare(index: pd.DataFrame, manifest: pd.DataFrame, columns: tuple[str, ...]) -> None:
    assert index["path"].is_unique
    assert sorted(index["path"]) == sorted(manifest["path"])  # every file exactly once
    merged = manifest.merge(index, on="path", suffixes=("_expected", ""), validate="one_to_one")
    assert (merged["status"] == merged["status_expected"]).all(), merged.loc[
        merged["status"] != merged["status_expected"], ["path", "status_expected", "status", "error"]]
    labelled = merged[merged["status_expected"].isin(["ok", "unmapped"])]
    for column in columns:
        expected = labelled[f"{column}_expected"].fillna("").astype(str)
        if column == "anatomy_source":
            expected = expected.replace(SOURCE_ALIASES)
        got = labelled[column].fillna("").astype(str)
        wrong = labelled.loc[expected != got, ["path", f"{column}_expected", column]]
        assert wrong.empty, wrong


def test_dicom_export_matches_the_manifest(export: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    root, manifest = export
    out = tmp_path / "index.parquet"
    result = run_index(root, out, salt="e2e")
    assert result.meta.layout == "dicom"
    _compare(result.frame, manifest, ("modality", "anatomy", "anatomy_source"))
    for status in ("ok", "unmapped", "non_image", "not_dicom", "error"):
        assert (manifest["status"] == status).any(), status  # the export exercises every status
    assert result.summary.by_status == manifest["status"].value_counts().reindex(
        list(result.summary.by_status), fill_value=0).to_dict()
    errors = result.frame[result.frame["status"] == "error"]
    assert errors["error"].str.contains("truncated").all()


def test_full_profile_statuses(export: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = export
    df = build_index(root, None, salt="e2e", profile="full")
    merged = manifest.merge(df, on="path", suffixes=("_expected", ""), validate="one_to_one")
    wrong = merged.loc[merged["status_full"] != merged["status"], ["path", "status_full", "status", "anatomy"]]
    assert wrong.empty, wrong


def test_workers_2_gives_the_same_frame(export: tuple[Path, pd.DataFrame]) -> None:
    root, _ = export
    one = build_index(root, None, salt="e2e", workers=1)
    two = build_index(root, None, salt="e2e", workers=2, batch_size=16)
    pd.testing.assert_frame_equal(one, two)


def test_no_fake_phi_in_the_index_or_the_cli_output(export: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    root, _ = export
    phi = json.loads((root / "phi.json").read_text())
    assert len(phi) > 20
    out = tmp_path / "cli" / "index.parquet"
    result = CliRunner().invoke(main, ["index", str(root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    # every value of every column (nested ones included), the metadata, and the raw file bytes
    table = pq.read_table(out)
    text = "\n".join(map(str, table.to_pylist())) + str(table.schema.metadata)
    raw = out.read_bytes()
    salt = (out.parent / ".modan-salt").read_text().strip()
    for value in phi:
        assert value not in text, value
        assert value.encode() not in raw, value
        assert value not in result.output and value not in result.stderr, value
    assert salt not in text and salt not in result.output + result.stderr
    assert "ZZPHI" not in text and "ZZPHI" not in result.output + result.stderr
    assert read_index_meta(out).salt_fingerprint


def test_radimagenet_export_matches_the_manifest(radimagenet: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = radimagenet
    result = run_index(root, None, salt="e2e", workers=2, batch_size=8)
    assert result.meta.layout == "radimagenet"
    _compare(result.frame, manifest, ("modality", "anatomy", "anatomy_source", "label"))
    ok = result.frame[result.frame["status"] == "ok"]
    axes = result.meta.axes
    for _, row in ok.iterrows():
        on = [a for a, v in zip(axes, row["multi_hot"]) if v]
        assert on[0] == row["modality"] and len(on) == 2
