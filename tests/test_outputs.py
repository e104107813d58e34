"""`modan_dicom.outputs`: what modan-dicom wrote is recognised by its content, anything else is refused;
and the index says why a DICOM file is `non_image`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modan_dicom.errors import OutputError
from modan_dicom.outputs import (
    EMBEDDINGS_KEY,
    PNG_METADATA,
    embeddings_output,
    figure_output,
    is_our_png,
    report_folder,
    run_folder,
)


def _parquet(path: Path, metadata: dict[bytes, bytes] | None) -> Path:
    pq.write_table(pa.table({"x": [1, 2]}).replace_schema_metadata(metadata), path)
    return path


def test_a_parquet_file_is_ours_by_its_metadata_key(tmp_path: Path) -> None:
    ours = _parquet(tmp_path / "ours.parquet", {EMBEDDINGS_KEY: b"{}"})
    assert embeddings_output(ours) == ours.resolve()
    for foreign in (_parquet(tmp_path / "plain.parquet", None), tmp_path / "notes.csv"):
        foreign.write_text("a,b\n") if foreign.suffix == ".csv" else None
        with pytest.raises(OutputError, match="is not a modan-dicom embeddings file; refusing to replace it"):
            embeddings_output(foreign)
    with pytest.raises(OutputError, match="is a folder"):
        embeddings_output(tmp_path)
    assert embeddings_output(tmp_path / "new" / "e.parquet") == (tmp_path / "new" / "e.parquet").resolve()


def test_a_png_is_ours_by_its_software_chunk(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1))
    figure.savefig(tmp_path / "ours.png", format="png", metadata=PNG_METADATA)
    figure.savefig(tmp_path / "theirs.png", format="png")  # Software: Matplotlib ...
    (tmp_path / "notes.csv").write_text("a,b\n")
    assert is_our_png(tmp_path / "ours.png")
    assert not is_our_png(tmp_path / "theirs.png") and not is_our_png(tmp_path / "notes.csv")
    assert figure_output(tmp_path / "ours.png") == (tmp_path / "ours.png").resolve()
    with pytest.raises(OutputError, match="not a modan-dicom figure"):
        figure_output(tmp_path / "theirs.png")


def test_folders_are_ours_by_their_marker_files(tmp_path: Path) -> None:
    assert run_folder(tmp_path / "missing") is False and not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    assert run_folder(tmp_path / "empty") is False and report_folder(tmp_path / "empty") is False
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"index": "i", "out": "o", "method": "mulsupcon", "epochs": 3}))
    assert run_folder(run) is True
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "config.json").write_text(json.dumps({"tasks": [], "inits": {}, "modes": [], "repeats": 1}))
    assert report_folder(bench) is True
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.md").write_text("# Downstream benchmark report\n\n...")
    assert report_folder(report) is True
    with pytest.raises(OutputError, match="not a modan-dicom pretraining run"):
        run_folder(bench)
    with pytest.raises(OutputError, match="not a modan-dicom report or benchmark folder"):
        report_folder(run)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        run_folder(tmp_path / "file")


def test_non_image_rows_say_why(tmp_path: Path) -> None:
    from test_ingest_support import make_dataset, write_dicom, write_sr

    from modan_dicom.ingest import build_index

    for i in range(3):
        ds = make_dataset(modality="CT", body_part="CHEST")
        for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                        "SamplesPerPixel", "PhotometricInterpretation"):
            if keyword in ds:
                delattr(ds, keyword)
        write_dicom(tmp_path / "src" / f"CT{i}", ds)
    write_sr(tmp_path / "src" / "SR1")
    write_dicom(tmp_path / "src" / "IM1", modality="CT", body_part="CHEST")
    frame = build_index(tmp_path / "src", tmp_path / "index.parquet", salt="s").set_index("path")
    assert list(frame.loc[[f"CT{i}" for i in range(3)], "status"]) == ["non_image"] * 3
    assert list(frame.loc[[f"CT{i}" for i in range(3)], "error"]) == ["no Pixel Data"] * 3
    assert frame.loc["SR1", ["status", "error"]].tolist() == ["non_image", "a non-image SOP class"]
    assert frame.loc["IM1", "status"] == "ok" and pd.isna(frame.loc["IM1", "error"])
