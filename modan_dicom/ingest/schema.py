"""The index table: its columns, its Parquet metadata, and its atomic, streaming I/O.

One row per file seen (or, for a PACS census, per series). An index is two files written together:
the shareable index (`index.parquet`), which holds no path, no source folder and no header text
with the file's own identifiers in it, and its local file beside it (`local_path`:
`index.local.parquet`), which holds what only the machine that indexed needs: the relative paths,
sizes and modification times, and the source folder. `read_index` joins the two (by `file_key`);
`read_index(..., local=False)` is the shareable view. Shareable columns, in order:

| column | type | meaning |
| --- | --- | --- |
| file_key | string | keyed pseudonym of the relative path (`fil-…`, `pseudonym.py`): the row's key |
| status | string | ok, unmapped, non_image, not_dicom or error |
| error | string | one-line reason for error rows (and notes), else null (scrubbed: `scrub.py`) |
| Modality … TransferSyntaxUID | string | header values under their DICOM keywords (`RAW_STRING_COLUMNS`), the file's own identifiers removed (`scrub.py`) |
| Rows, Columns, NumberOfFrames | int32 | raw header values |
| AnatomicRegionSequence | list<struct<scheme, code, meaning>> | the codes of (0008,2218) (meanings scrubbed) |
| patient_key, study_key, series_key, instance_key | string | keyed pseudonyms (`pseudonym.py`) |
| study_month | string | "YYYY-MM" of the Study Date (the day is dropped) |
| modality, anatomy | string | controlled ids from the full vocabulary (most specific term) |
| modality_source, anatomy_source | string | what decided them: Modality, SOPClassUID, AnatomicRegion, BodyPartExamined, SeriesDescription, ProtocolName, StudyDescription, or "folder" |
| label | string | the RadImageNet class ("CT/lung/Nodule", "US/thyroid_nodule"), else null |
| multi_hot | fixed_size_list<float32>[len(axes)] | the profile's targets; set on `ok` rows only (null otherwise) |

The local file: file_key, path (relative POSIX path under the source root, or a census's
study/series[/instance] keys), size, mtime_ns (int64: bytes, modification time in ns, what
incremental runs compare), in the same row order; its metadata key `modan_dicom_local` holds the
source folder (or archive address).

No column holds names, birth dates, addresses, raw Patient IDs or full dates. The Parquet schema
metadata key `modan_dicom` holds a JSON object (`IndexMeta`): format, modan-dicom version,
profile, axes (the multi-hot labels, in order), source_key (a keyed pseudonym of the source;
`source` itself is empty there and read from the local file), layout, keep_uids, salt
fingerprint (never the salt), vocabulary fingerprint.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path, remove_stale_temps
from ..errors import SourceError

FORMAT = 2  # 2: paths and the source moved to the local file, row key file_key, text scrubbed
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


LOCAL_SUFFIX = ".local"  # index.parquet -> index.local.parquet
LOCAL_META_KEY = b"modan_dicom_local"
_LOCAL_FIELDS = (
    pa.field("path", pa.string(), nullable=False),
    pa.field("size", pa.int64(), nullable=False),
    pa.field("mtime_ns", pa.int64(), nullable=False),
)
LOCAL_ONLY: tuple[str, ...] = tuple(f.name for f in _LOCAL_FIELDS)  # never in the shareable index
LOCAL_SCHEMA = pa.schema([pa.field("file_key", pa.string(), nullable=False), *_LOCAL_FIELDS])
LOCAL_COLUMNS: tuple[str, ...] = tuple(LOCAL_SCHEMA.names)


def local_path(index: str | os.PathLike[str]) -> Path:
    """The local-only file beside an index: `index.local.parquet` for `index.parquet`."""
    index = Path(index)
    if index.suffix:
        return index.with_name(index.stem + LOCAL_SUFFIX + index.suffix)
    return index.with_name(index.name + LOCAL_SUFFIX)


def index_schema(n_axes: int, extra_fields: Sequence[pa.Field] = ()) -> pa.Schema:
    """The Arrow schema of a shareable index whose multi-hot has `n_axes` entries; `extra_fields`
    are appended (e.g. a PACS census's instance count)."""
    fields = [
        pa.field("file_key", pa.string(), nullable=False),
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


def row_schema(n_axes: int, extra_fields: Sequence[pa.Field] = ()) -> pa.Schema:
    """The schema of rows as they are built and as `read_index` gives them: path, size, mtime_ns
    (local only), then the shareable columns of `index_schema`."""
    return pa.schema([*_LOCAL_FIELDS, *index_schema(n_axes, extra_fields)])


COLUMNS: tuple[str, ...] = tuple(index_schema(1).names)  # the shareable index
ROW_COLUMNS: tuple[str, ...] = LOCAL_ONLY + COLUMNS  # a built row, a `read_index` frame


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built with; stored as JSON in the Parquet schema metadata."""

    profile: str
    axes: list[str]
    source: str  # the source folder / archive address: written in the local file only
    layout: str
    keep_uids: bool
    salt_fingerprint: str
    vocab_fingerprint: str
    version: str
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)
    source_key: str = ""  # keyed pseudonym of `source` (`Pseudonymizer.source_key`): what the index holds

    def to_json(self) -> bytes:
        """The JSON the shareable index holds: `source` left empty (it is in the local file)."""
        return json.dumps({**asdict(self), "source": ""}, sort_keys=True).encode()

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
    """Streams record batches (`row_schema`) into the two Parquet files of an index, published
    atomically when `close()` runs after a clean block (use `open_index_writer`): the shareable
    columns to the index, file_key, path, size and mtime_ns to its local file. Buffers up to
    `row_group_rows` rows so that row groups stay large whatever the batch size."""

    def __init__(self, tmp: Path, tmp_local: Path, schema: pa.Schema, shared: pa.Schema,
                 local: pa.Schema, row_group_rows: int) -> None:
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._shared_names = shared.names
        self._writer = pq.ParquetWriter(tmp, shared, compression="zstd")
        self._shared = shared
        self._local = local
        self._local_writer = pq.ParquetWriter(tmp_local, local, compression="zstd")

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
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            size = max(self._pending_rows, 1)
            shared = table.select(self._shared_names).replace_schema_metadata(self._shared.metadata)
            self._writer.write_table(shared, row_group_size=size)
            local = table.select(LOCAL_COLUMNS).replace_schema_metadata(self._local.metadata)
            self._local_writer.write_table(local, row_group_size=size)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._local_writer.close()

    def abort(self) -> None:
        for writer in (self._writer, self._local_writer):
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.contextmanager
def open_index_writer(
    path: str | os.PathLike[str], meta: IndexMeta, *, row_group_rows: int = 65_536,
    extra_fields: Sequence[pa.Field] = (),
) -> Iterator[IndexWriter]:
    """Yield an `IndexWriter` for `path` (batches in `row_schema`); the index appears at `path`
    and its local file at `local_path(path)`, replacing any previous ones, only when the block
    ends without an exception: the local file is renamed first, the index last."""
    n_axes = len(meta.axes)
    shared = index_schema(n_axes, extra_fields).with_metadata({META_KEY: meta.to_json()})
    local_meta = json.dumps({"format": FORMAT, "source": meta.source}, sort_keys=True).encode()
    local = LOCAL_SCHEMA.with_metadata({LOCAL_META_KEY: local_meta})
    remove_stale_temps(Path(path).parent, local_path(path).name)  # a killed run's (the index's: output_lock)
    with atomic_path(path, suffix=".parquet") as tmp, \
            atomic_path(local_path(path), suffix=".parquet") as tmp_local:
        writer = IndexWriter(tmp, tmp_local, row_schema(n_axes, extra_fields), shared, local, row_group_rows)
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


def _local_source(path: str | os.PathLike[str]) -> str | None:
    """The source recorded in an index's local file, or None when there is no readable one."""
    try:
        metadata = pq.read_schema(local_path(path)).metadata or {}
        return str(json.loads(metadata[LOCAL_META_KEY])["source"])
    except (OSError, pa.ArrowInvalid, KeyError, ValueError, TypeError):
        return None


def read_index_meta(path: str | os.PathLike[str]) -> IndexMeta:
    """The `IndexMeta` stored in an index file (its axes, profile, source, ...); `source` comes
    from the local file beside it and is "" without one."""
    metadata = _parquet_file(path).schema_arrow.metadata or {}
    if META_KEY not in metadata:
        raise SourceError(f"{path}: not a modan-dicom index (no '{META_KEY.decode()}' metadata)")
    try:
        meta = IndexMeta.from_json(metadata[META_KEY])
    except (ValueError, TypeError) as exc:
        raise SourceError(f"{path}: its '{META_KEY.decode()}' metadata is not readable") from exc
    source = _local_source(path) if not meta.source else meta.source
    return replace(meta, source=source or "")


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


def read_local(path: str | os.PathLike[str], file_keys: pa.ChunkedArray | None = None,
               columns: Sequence[str] = LOCAL_COLUMNS) -> pa.Table | None:
    """`columns` (of file_key, path, size, mtime_ns) of the local file of the index at `path`, or
    None when it is missing, unreadable or does not belong to the index (its file_keys differ
    from `file_keys`)."""
    try:
        table = pq.read_table(local_path(path), columns=list(dict.fromkeys(["file_key", *columns])))
    except (OSError, pa.ArrowInvalid):
        return None
    if file_keys is not None and not table.column("file_key").equals(file_keys):
        return None
    return table.replace_schema_metadata(None)


def read_index_table(path: str | os.PathLike[str], columns: Sequence[str] | None = None, *,
                     local: bool | None = None) -> pa.Table:
    """An index as an Arrow table: the shareable columns, joined with path, size and mtime_ns from
    its local file (columns in `row_schema` order, or `columns`' order). local=False: the
    shareable columns only; local=None (default): the local file is read when the columns asked
    for (all, by default) include path, size or mtime_ns. SourceError when those are asked for
    and the local file is missing or belongs to another index."""
    parquet = _parquet_file(path)
    if read_index_meta(path).format != FORMAT:
        raise SourceError(f"{path}: an index of an older modan-dicom (format 1, with paths); index the source again")
    wanted = list(columns) if columns is not None else None
    if local is False and wanted is not None and any(c in LOCAL_ONLY for c in wanted):
        raise SourceError(f"{path}: the shareable view has no {', '.join(c for c in wanted if c in LOCAL_ONLY)}")
    with_local = local is not False and (wanted is None or local is True or any(c in LOCAL_ONLY for c in wanted))
    shared_columns = None if wanted is None else [c for c in wanted if c not in LOCAL_ONLY]
    if with_local and shared_columns is not None and "file_key" not in shared_columns:
        shared_columns.append("file_key")
    try:
        table = parquet.read(columns=shared_columns).replace_schema_metadata(None)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"{path}: cannot read the index ({exc})") from exc
    if not with_local:
        return table
    found = read_local(path, table.column("file_key"))
    if found is None:
        raise SourceError(f"{path}: its local file {local_path(path).name} (the paths) is missing or belongs to "
                          "another index; index the source again (the shareable view needs no paths)")
    for i, name in enumerate(LOCAL_ONLY):
        table = table.add_column(i, name, found.column(name))
    names = wanted if wanted is not None else [n for n in ROW_COLUMNS if n in table.column_names] + [
        n for n in table.column_names if n not in ROW_COLUMNS]
    return table.select(names)


def read_index(path: str | os.PathLike[str], columns: Sequence[str] | None = None, *,
               local: bool | None = None) -> Any:
    """Read an index file into a pandas DataFrame (one row per file, in path order), joined with
    its local file (path, size, mtime_ns) as `read_index_table` says; local=False gives the
    shareable view (what a collaborator gets: no paths).

    The axes of `multi_hot` are in `read_index_meta(path).axes` (also `df.attrs["axes"]`).
    """
    meta = read_index_meta(path)
    frame = table_to_frame(read_index_table(path, columns, local=local))
    frame.attrs["axes"] = list(meta.axes)
    frame.attrs["profile"] = meta.profile
    return frame


def subset_index(index: str | os.PathLike[str], keep: Sequence[bool] | np.ndarray,
                 out: str | os.PathLike[str]) -> Path:
    """Write the rows of `index` where `keep` (one bool per row, in index order) is true to `out`,
    with the same metadata, and its local file beside it (when `index` has one). Returns `out`."""
    mask = pa.array(np.asarray(keep, dtype=bool))
    shared = _parquet_file(index).read()
    found = read_local(index, shared.column("file_key"))
    with atomic_path(out, suffix=".parquet") as tmp:
        if found is not None:
            metadata = pq.read_schema(local_path(index)).metadata
            with atomic_path(local_path(out), suffix=".parquet") as tmp_local:
                pq.write_table(found.filter(mask).replace_schema_metadata(metadata), tmp_local, compression="zstd")
        pq.write_table(shared.filter(mask), tmp, compression="zstd")
    return Path(out)


def resolve_index_root(index: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """The folder an index's relative paths start from.

    ``root`` when given, else the ``source`` recorded in the index metadata; a relative folder is taken
    relative to the index file's folder .
    """
    index = Path(index)
    if root is None:
        source = read_index_meta(index).source
        if not source:
            raise SourceError(f"{index}: its local file {local_path(index).name} is missing, so its source "
                              "folder is unknown; give the folder (--root) or index the source again")
    folder = Path(root) if root is not None else Path(source)
    if not folder.is_absolute():
        folder = (index.parent / folder).resolve()
    return folder
