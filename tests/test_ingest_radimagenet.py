"""The RadImageNet folder layout: detection, folder labels, quirky class names, non-images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modan_dicom.ingest import build_index, run_index
from modan_dicom.ingest.radimagenet import detect_prefix, parse_path
from test_ingest_support import write_dicom

CLASSES = [
    # (path of the class folder, expected modality, anatomy axis)
    ("CT/lung/Nodule", "CT", "lung"),
    ("CT/abd/biliary_dilation?", "CT", "abdomen"),
    ("MR/mriabd/liver_disease_", "MR", "abdomen"),
    ("MR/af/achilles_pathology_", "MR", "ankle_foot"),
    ("MR/shoulder/ca++_tendinosis", "MR", "shoulder"),
    ("MR/spine/foraminal_pathlogy", "MR", "spine"),
    ("US/gb", "US", "abdomen"),
    ("US/portal_vein", "US", "abdomen"),
    ("US/thyroid_nodule", "US", "thyroid"),
    ("US/thyroid", "US", "thyroid"),
]


def _png(path: Path, rows: int = 20, cols: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((rows, cols), np.uint8)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def _tree(root: Path) -> None:
    for folder, _, _ in CLASSES:
        for i in range(2):
            _png(root / folder / f"img{i}.png")
    (root / "CT" / "lung" / "Nodule" / "Thumbs.db").write_bytes(b"junk")
    (root / "README.txt").write_text("RadImageNet")


def test_parse_path() -> None:
    assert parse_path("CT/lung/Nodule/x.png").label == "CT/lung/Nodule"
    assert parse_path("US/thyroid_nodule/x.png").region_or_organ == "thyroid_nodule"
    assert parse_path("MR/mriabd/normal/x.png").region_or_organ == "mriabd"
    assert parse_path("radiology_ai/US/gb/x.png", "radiology_ai/").label == "US/gb"
    assert parse_path("CT/lung/x.png") is None and parse_path("XR/a/b/c.png") is None


def test_detection(tmp_path: Path) -> None:
    _tree(tmp_path / "plain")
    assert detect_prefix(tmp_path / "plain") == ""
    _tree(tmp_path / "wrapped" / "radiology_ai")
    assert detect_prefix(tmp_path / "wrapped") == "radiology_ai/"
    # a DICOM export sorted into modality folders is not a RadImageNet tree
    write_dicom(tmp_path / "dicom" / "CT" / "study1" / "series1" / "IM1")
    assert detect_prefix(tmp_path / "dicom") is None


@pytest.mark.parametrize("wrapper", ["", "radiology_ai/"])
def test_folder_labels(tmp_path: Path, wrapper: str) -> None:
    _tree(tmp_path / wrapper) if wrapper else _tree(tmp_path)
    result = run_index(tmp_path, tmp_path.parent / f"idx{len(wrapper)}.parquet", salt="s")
    assert result.meta.layout == "radimagenet"
    df = result.frame.set_index("path")
    axes = result.meta.axes
    for folder, modality, axis in CLASSES:
        row = df.loc[f"{wrapper}{folder}/img0.png"]
        assert row["status"] == "ok", folder
        assert row["label"] == folder
        assert row["modality"] == modality
        assert (row["modality_source"], row["anatomy_source"]) == ("folder", "folder")
        assert [a for a, v in zip(axes, row["multi_hot"]) if v] == [modality, axis], folder
        assert (row["Rows"], row["Columns"]) == (20, 30)
    assert df.loc[f"{wrapper}US/gb/img1.png", "anatomy"] == "gallbladder"  # the organ, projected to abdomen
    assert df.loc[f"{wrapper}US/thyroid_nodule/img1.png", "anatomy"] == "thyroid"
    assert df.loc[f"{wrapper}CT/lung/Nodule/Thumbs.db", "status"] == "not_dicom"
    assert df.loc[f"{wrapper}README.txt" if not wrapper else "radiology_ai/README.txt", "status"] == "not_dicom"
    assert result.summary.by_status["ok"] == 2 * len(CLASSES)


def test_forced_layouts(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    as_dicom = build_index(tmp_path / "src", None, layout="dicom", salt="s")
    assert set(as_dicom["status"]) == {"not_dicom"}
    unknown = tmp_path / "odd"
    _png(unknown / "CT" / "elbow" / "normal" / "a.png")
    df = build_index(unknown, None, layout="radimagenet", salt="s")
    row = df.iloc[0]
    assert row["status"] == "unmapped" and row["modality"] == "CT" and row["label"] == "CT/elbow/normal"
