"""The index table: its columns, its Parquet metadata, and its atomic, streaming I/O.

One row per file seen (or, for a PACS census, per series). Columns, in order:

| column | type | meaning |
| --- | --- | --- |
| path | string | relative POSIX path under the source root (or a PACS address) |
| size, mtime_ns | int64 | bytes, modification time in ns (what incremental runs compare) |
| status | string | ok, unmapped, non_image, not_dicom or error |
| error | string | one-line reason for error rows (and notes), else null |
| Modality … TransferSyntaxUID | string | raw header values under their DICOM keywords (`RAW_STRING_COLUMNS`) |
| Rows, Columns, NumberOfFrames | int32 | raw header values |
| AnatomicRegionSequence | list<struct<scheme, code, meaning>> | the codes of (0008,2218) |
| patient_key, study_key, series_key, instance_key | string | keyed pseudonyms (`pseudonym.py`) |
| study_month | string | "YYYY-MM" of the Study Date (the day is dropped) |
| modality, anatomy | string | controlled ids from the full vocabulary (most specific term) |
| modality_source, anatomy_source | string | what decided them: Modality, SOPClassUID, AnatomicRegion, BodyPartExamined, SeriesDescription, ProtocolName, StudyDescription, or "folder" |
| label | string | the RadImageNet class ("CT/lung/Nodule", "US/thyroid_nodule"), else null |
| multi_hot | fixed_size_list<float32>[len(axes)] | the profile's targets; set on `ok` rows only (null otherwise) |

No column holds names, birth dates, addresses, raw Patient IDs or full dates. The Parquet schema
metadata key `modan_dicom` holds a JSON object (`IndexMeta`): format, modan-dicom version,
profile, axes (the multi-hot labels, in order), source, layout, keep_uids, salt fingerprint
(never the salt), vocabulary fingerprint.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import SourceError

FORMAT = 1
META_KEY = b"modan_dicom"
STATUSES = ("ok", "unmapped", "non_image", "not_dicom", "error")

RAW_STRING_COLUMNS = (
    "Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
    "Laterality", "ImageLaterality", "ViewPosition", "Manufacturer", "ManufacturerModelName",
    "SOPClassUID", "TransferSyntaxUID",
)
RAW_INT_COLUMNS = ("Rows", "Columns", "NumberOfFrames")
KEY_COLUMNS = ("patient_key", "study_key", "series_key", "instance_key", "study_month")
LABEL_COLUMNS = ("modality", "anatomy", "modality_source", "anatomy_source", "label")
CODE_TYPE = pa.struct([("scheme", pa.string()), ("code", pa.string()), ("meaning", pa.string())])


def index_schema(n_axes: int, extra_fields: Sequence[pa.Field] = ()) -> pa.Schema:
    """The Arrow schema of an index whose multi-hot has `n_axes` entries; `extra_fields` are
    appended (e.g. a PACS census's instance count)."""
    fields = [
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        *(pa.field(name, pa.string()) for name in RAW_STRING_COLUMNS),
        *(pa.field(name, pa.int32()) for name in RAW_INT_COLUMNS),
        pa.field("AnatomicRegionSequence", pa.list_(CODE_TYPE)),
        *(pa.field(name, pa.string()) for name in KEY_COLUMNS),
        *(pa.field(name, pa.string()) for name in LABEL_COLUMNS),
        pa.field("multi_hot", pa.list_(pa.float32(), n_axes)),
        *extra_fields,
    ]
    return pa.schema(fields)


COLUMNS: tuple[str, ...] = tuple(index_schema(1).names)


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built with; stored as JSON in the Parquet schema metadata."""

    profile: str
    axes: list[str]
    source: str
    layout: str
    keep_uids: bool
    salt_fingerprint: str
    vocab_fingerprint: str
    version: str
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> IndexMeta:
        raw = json.loads(data)
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)

    def reusable_by(self, other: IndexMeta) -> bool:
        """True when rows written under `self` are exactly what a run under `other` would write."""
        return asdict(self) == asdict(other)


def rows_to_batch(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Build a record batch from row dicts (missing keys are null). `multi_hot` values are
    float32 arrays of the schema's list size, or None."""
    return columns_to_batch([[row.get(name) for row in rows] for name in schema.names], schema)


def columns_to_batch(columns: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Build a record batch from one sequence of Python values per schema field, in schema
    order (the file index builds its rows this way: no dict per row). Values as in
    `rows_to_batch`: None is null; `multi_hot` holds float32 vectors of the list size;
    `AnatomicRegionSequence` holds (scheme, code, meaning) tuples."""
    arrays = []
    for fld, values in zip(schema, columns):
        name = fld.name
        if name == "multi_hot":
            arrays.append(_multi_hot_array(values, fld.type.list_size))
        elif name == "AnatomicRegionSequence":
            arrays.append(pa.array(
                [[{"scheme": s, "code": c, "meaning": m} for s, c, m in v] if v is not None else None
                 for v in values], type=fld.type))
        else:
            arrays.append(pa.array(values, type=fld.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _multi_hot_array(values: Sequence[Any], width: int) -> pa.FixedSizeListArray:
    """Vectors (or None) -> a fixed-size list array of float32, null where None."""
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    flat = np.zeros((n, width), dtype=np.float32)
    if valid.any():
        flat[valid] = np.stack([v for v in values if v is not None])
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), width, mask=pa.array(~valid))


class IndexWriter:
    """Streams record batches into a Parquet file published atomically when `close()` runs
    after a clean block (use `open_index_writer`). Buffers up to `row_group_rows` rows so that
    row groups stay large whatever the batch size."""

    def __init__(self, tmp: Path, schema: pa.Schema, row_group_rows: int) -> None:
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._writer = pq.ParquetWriter(tmp, schema, compression="zstd")

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if data.num_rows == 0:
            return
        batches = data.to_batches() if isinstance(data, pa.Table) else [data]
        for batch in batches:
            if batch.schema != self.schema:
                batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
        self.rows += data.num_rows
        if self._pending_rows >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self.schema),
                                     row_group_size=max(self._pending_rows, 1))
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


@contextlib.contextmanager
def open_index_writer(
    path: str | os.PathLike[str], meta: IndexMeta, *, row_group_rows: int = 65_536,
    extra_fields: Sequence[pa.Field] = (),
) -> Iterator[IndexWriter]:
    """Yield an `IndexWriter` for `path`; the index appears at `path` (replacing any previous
    one in a single rename) only when the block ends without an exception."""
    schema = index_schema(len(meta.axes), extra_fields).with_metadata({META_KEY: meta.to_json()})
    with atomic_path(path, suffix=".parquet") as tmp:
        writer = IndexWriter(tmp, schema, row_group_rows)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.close()


def _parquet_file(path: str | os.PathLike[str]) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: no such index") from exc
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"{path}: not a readable Parquet index ({exc})") from exc


def read_index_meta(path: str | os.PathLike[str]) -> IndexMeta:
    """The `IndexMeta` stored in an index file (its axes, profile, source, ...)."""
    metadata = _parquet_file(path).schema_arrow.metadata or {}
    if META_KEY not in metadata:
        raise SourceError(f"{path}: not a modan-dicom index (no '{META_KEY.decode()}' metadata)")
    return IndexMeta.from_json(metadata[META_KEY])


def read_index_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The index metadata as a plain dict (profile, axes, source, layout, ...)."""
    return asdict(read_index_meta(path))


def index_axes(path: str | os.PathLike[str]) -> list[str]:
    """The multi-hot axes (label names, in column order) of an index file."""
    return list(read_index_meta(path).axes)


def table_to_frame(table: pa.Table) -> Any:
    """Arrow table -> pandas DataFrame with nullable integer columns (Rows stays integer)."""
    import pandas as pd

    mapping = {pa.int32(): pd.Int32Dtype()}
    return table.to_pandas(types_mapper=mapping.get)


def read_index(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> Any:
    """Read an index file into a pandas DataFrame (one row per file, in path order).

    The axes of `multi_hot` are in `read_index_meta(path).axes` (also `df.attrs["axes"]`).
    """
    parquet = _parquet_file(path)
    meta = read_index_meta(path)
    try:
        table = parquet.read(columns=list(columns) if columns is not None else None)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"{path}: cannot read the index ({exc})") from exc
    frame = table_to_frame(table.replace_schema_metadata(None))
    frame.attrs["axes"] = list(meta.axes)
    frame.attrs["profile"] = meta.profile
    return frame


def resolve_index_root(index: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """The folder an index's relative paths start from.

    ``root`` when given, else the ``source`` recorded in the index metadata; a relative folder is taken
    relative to the index file's folder .
    """
    index = Path(index)
    folder = Path(root) if root is not None else Path(read_index_metadata(index).get("source") or ".")
    if not folder.is_absolute():
        folder = (index.parent / folder).resolve()
    return folder
