"""The index schema, its atomic streaming writer, its metadata, and the summary (file-independent:
the PACS census reuses them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modan_dicom.errors import SourceError
from modan_dicom.ingest.schema import (
    COLUMNS,
    IndexMeta,
    index_axes,
    index_schema,
    open_index_writer,
    read_index,
    read_index_meta,
    read_index_metadata,
    local_path,
    row_schema,
    rows_to_batch,
    columns_to_batch,
)
from modan_dicom.ingest.summary import SummaryBuilder, summarize

AXES = ["CT", "MR", "knee"]


def _meta(**changes: object) -> IndexMeta:
    base = dict(profile="p", axes=AXES, source="pacs://x", layout="dicom", keep_uids=False,
                salt_fingerprint="abc", vocab_fingerprint="v1", version="0")
    base.update(changes)
    return IndexMeta(**base)  # type: ignore[arg-type]


def _rows(n: int, start: int = 0) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        mapped = i % 3 != 2
        rows.append(dict(
            path=f"f{i:05d}", file_key=f"fil-{i:05d}", size=i, mtime_ns=10 * i, status="ok" if mapped else "unmapped",
            Modality="MR", BodyPartExamined="KNEE" if mapped else "", SeriesDescription=f"S{i % 2}",
            Rows=8, modality="MR", anatomy="knee" if mapped else None,
            AnatomicRegionSequence=[("SCT", "72696002", "Knee")] if i % 4 == 0 else None,
            multi_hot=np.array([0, 1, 1], np.float32) if mapped else None,
        ))
    return rows


def test_schema_columns_are_fixed_and_typed() -> None:
    schema = index_schema(3)
    assert schema.names == list(COLUMNS)
    assert schema.field("multi_hot").type == pa.list_(pa.float32(), 3)
    assert schema.field("Rows").type == pa.int32()
    for forbidden in ("PatientName", "PatientBirthDate", "PatientAddress", "PatientID", "StudyDate", "path", "mtime_ns"):
        assert forbidden not in schema.names
    extended = index_schema(3, [pa.field("instances", pa.int32())])
    assert extended.names[-1] == "instances"


def test_write_read_round_trip_with_metadata(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "index.parquet"
    schema = row_schema(3)
    with open_index_writer(out, _meta(), row_group_rows=4) as writer:
        for start in (0, 5, 10):
            writer.write(rows_to_batch(_rows(5, start), schema))
    df = read_index(out)
    assert list(df["path"]) == [f"f{i:05d}" for i in range(15)]
    assert df["Rows"].dtype == "Int32" and df["Rows"].iloc[0] == 8
    assert df["multi_hot"].iloc[0].tolist() == [0, 1, 1] and df["multi_hot"].iloc[2] is None
    assert list(df["AnatomicRegionSequence"].iloc[0]) == [{"scheme": "SCT", "code": "72696002", "meaning": "Knee"}]
    assert df.attrs["axes"] == AXES == index_axes(out)
    assert read_index_meta(out) == _meta()
    assert read_index_metadata(out)["source"] == "pacs://x"
    assert list(read_index(out, columns=["path", "status"]).columns) == ["path", "status"]
    # the shareable file holds no path and no source; the local file beside it holds them
    shared = pq.read_table(out)
    assert "path" not in shared.column_names and shared.column_names == list(COLUMNS)
    assert b"pacs://x" not in out.read_bytes() and b"f00001" not in out.read_bytes()
    assert json.loads(shared.schema.metadata[b"modan_dicom"])["source"] == ""
    assert local_path(out).name == "index.local.parquet"
    assert pq.read_table(local_path(out)).column("path").to_pylist() == [f"f{i:05d}" for i in range(15)]
    assert list(read_index(out, local=False).columns) == list(COLUMNS)
    # without its local file: the shareable view still reads, paths are a one-line SourceError
    local_path(out).unlink()
    assert len(read_index(out, local=False)) == 15
    assert len(read_index(out, columns=["status", "modality"])) == 15
    with pytest.raises(SourceError, match="local file"):
        read_index(out)
    assert read_index_meta(out).source == ""


def test_a_failing_writer_leaves_the_previous_file(tmp_path: Path) -> None:
    out = tmp_path / "index.parquet"
    schema = row_schema(3)
    with open_index_writer(out, _meta()) as writer:
        writer.write(rows_to_batch(_rows(3), schema))
    before = out.read_bytes()
    before_local = local_path(out).read_bytes()
    with pytest.raises(KeyboardInterrupt), open_index_writer(out, _meta()) as writer:
        writer.write(rows_to_batch(_rows(100), schema))
        raise KeyboardInterrupt
    assert out.read_bytes() == before and local_path(out).read_bytes() == before_local
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.local.parquet", "index.parquet"]


def test_reuse_needs_identical_settings() -> None:
    assert _meta().reusable_by(_meta())
    for change in (dict(profile="q"), dict(salt_fingerprint="x"), dict(keep_uids=True), dict(layout="radimagenet"),
                   dict(vocab_fingerprint="v2"), dict(source="/elsewhere"), dict(version="1"), dict(axes=["CT"])):
        assert not _meta(**change).reusable_by(_meta()), change


def test_not_an_index_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(SourceError):
        read_index(tmp_path / "x.parquet")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(SourceError, match="not a modan-dicom index"):
        read_index(tmp_path / "plain.parquet")


def test_summary_streamed_equals_whole_and_weights() -> None:
    schema = index_schema(3)
    batches = [rows_to_batch(_rows(7, s), schema) for s in (0, 7, 14)]
    streamed = SummaryBuilder()
    for batch in batches:
        streamed.add(batch)
    whole = pa.Table.from_batches(batches)
    frame = whole.to_pandas()
    assert streamed.result() == summarize(whole) == summarize(frame)
    result = summarize(frame)
    assert result.total == 21 and result.by_status["ok"] == 14 and result.by_status["error"] == 0
    assert result.by_modality_anatomy == {("MR", "knee"): 14, ("MR", None): 7}
    assert result.top_unmapped["SeriesDescription"] == [("S0", 4), ("S1", 3)]
    census = frame.assign(count=10)  # a census row stands for a series of 10 instances
    assert summarize(census, weight="count").total == 210


def test_columns_give_the_same_batch_as_rows() -> None:
    schema = index_schema(len(AXES))
    rows = _rows(12)
    by_columns = columns_to_batch([[row.get(name) for row in rows] for name in schema.names], schema)
    assert by_columns.equals(rows_to_batch(rows, schema))
    frame = by_columns.to_pandas()
    assert frame["multi_hot"].isna().tolist() == [i % 3 == 2 for i in range(12)]
    assert list(frame.loc[0, "AnatomicRegionSequence"][0].values()) == ["SCT", "72696002", "Knee"]
