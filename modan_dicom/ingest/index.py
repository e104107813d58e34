"""`build_index`: a folder of files -> one index row per file, in parallel, incrementally, atomically.

The walk (`walk.py`) yields files in path order. Each file becomes a row: the RadImageNet layout
gives its labels from the folders (`radimagenet.py`); otherwise its header is read
(`header.py`), its labels resolved by the vocabulary (`labels.py`) and its identifiers replaced by
keyed pseudonyms (`pseudonym.py`). Files are handed to `workers` processes in chunks of
`batch_size`, at most a few chunks in flight, and the rows come back as Arrow record batches that
are written, in walk order, straight into the new Parquet file (`schema.py`): memory stays bounded
whatever the number of files.

Incremental runs: when `output` already holds an index built with the same settings (profile,
vocabulary, salt, layout, keep_uids, source, modan-dicom version), it is read alongside the walk
(both are in path order) and the rows of files whose (path, size, mtime_ns) did not change are
copied instead of re-read; error rows are always retried; files no longer present disappear.
The result equals a fresh run. The new index replaces the old one in a single rename at the end,
so a run that fails or is killed midway leaves the previous index untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..errors import ConfigError, OutputError, SourceError
from . import radimagenet
from .header import is_image, read_header
from .pseudonym import SALT_FILE, Pseudonymizer, resolve_salt
from .schema import (
    RAW_INT_COLUMNS,
    RAW_STRING_COLUMNS,
    IndexMeta,
    index_schema,
    open_index_writer,
    read_index,
    read_index_meta,
    rows_to_batch,
    table_to_frame,
)
from .summary import IndexSummary, SummaryBuilder
from .walk import FileEntry, count_files, walk

LAYOUTS = ("auto", "dicom", "radimagenet")
LABEL_KEYS = ("Modality", "BodyPartExamined", "SeriesDescription", "ProtocolName",
              "StudyDescription", "AnatomicRegion", "SOPClassUID")
Progress = Callable[[int, "int | None"], None]


# ---- one file -> one row ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """Everything a worker needs (picklable)."""

    source: str
    profile: str
    salt: bytes
    keep_uids: bool
    layout: str  # "dicom" or "radimagenet"
    prefix: str  # RadImageNet layout root inside the source ("" or "dir/")


def load_vocabulary(profile: str) -> Any:
    """The vocabulary for `profile` (a name or a path)."""
    from ..vocab import Vocabulary

    return Vocabulary.load(profile)


def vocabulary_fingerprint(vocab: Any) -> str:
    """A short hash that changes whenever the vocabulary could map a file differently: the
    profile, its axes, and the bytes of the vocabulary files (so an edited synonym list makes
    the next incremental run re-read everything)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(vocab.profile), list(vocab.labels),
                              bool(getattr(vocab, "expand_ancestors", False))]).encode())
    files: set[Path] = set()
    folder = getattr(vocab, "folder", None)
    if folder is not None:
        files.update(Path(folder).glob("*.yaml"))
    source = Path(str(getattr(vocab, "source", "")))
    if source.is_file():
        files.add(source)
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class FileIndexer:
    """Turns `FileEntry`s into index rows (one instance per worker process)."""

    def __init__(self, settings: _Settings, vocab: Any | None = None) -> None:
        from .labels import resolve_labels

        self.settings = settings
        self.vocab = vocab if vocab is not None else load_vocabulary(settings.profile)
        self._resolve = resolve_labels
        self.pseudo = Pseudonymizer(settings.salt, settings.keep_uids)
        self.schema = index_schema(len(self.vocab.labels))
        self._labels: dict[tuple[Any, ...], Any] = {}  # raw label values -> Labels (series repeat)
        self._folders: dict[tuple[str, str], tuple[Any, ...]] = {}

    def labels(self, header: dict[str, Any]) -> Any:
        key = tuple(header.get(k) for k in LABEL_KEYS)
        found = self._labels.get(key)
        if found is None:
            if len(self._labels) > 50_000:
                self._labels.clear()
            raw = dict(zip(LABEL_KEYS, key))
            raw["AnatomicRegion"] = list(raw["AnatomicRegion"] or ())
            found = self._labels[key] = self._resolve(raw, self.vocab)
        return found

    def row(self, entry: FileEntry) -> dict[str, Any]:
        row: dict[str, Any] = {"path": entry.path, "size": entry.size, "mtime_ns": entry.mtime_ns}
        if entry.error is not None:
            row.update(status="error", error=entry.error)
            return row
        absolute = os.path.join(self.settings.source, entry.path)
        if self.settings.layout == "radimagenet":
            folder = radimagenet.parse_path(entry.path, self.settings.prefix)
            if folder is not None:
                folder_row = self._folder_row(absolute, folder)
                if folder_row is not None:
                    row.update(folder_row)
                    return row
        header = read_header(absolute)
        row.update(self._header_row(header))
        return row

    def _header_row(self, header: dict[str, Any]) -> dict[str, Any]:
        kind = header["kind"]
        if kind != "dicom":
            return {"status": kind, "error": header["error"]}
        out: dict[str, Any] = {name: header.get(name) for name in RAW_STRING_COLUMNS + RAW_INT_COLUMNS}
        out["AnatomicRegionSequence"] = header["AnatomicRegion"] or None
        out.update(self.pseudo.keys(header))
        out["study_month"] = header["StudyMonth"]
        labels = self.labels(header)
        out.update(
            modality=labels.modality, modality_source=labels.modality_source,
            anatomy=labels.anatomy, anatomy_source=labels.anatomy_source,
            multi_hot=labels.multi_hot,
        )
        non_image = (not is_image(header)) or bool(getattr(labels, "non_image", False))
        out["status"] = "non_image" if non_image else ("ok" if labels.mapped else "unmapped")
        return out

    def _folder_row(self, absolute: str, folder: radimagenet.FolderClass) -> dict[str, Any] | None:
        try:
            with open(absolute, "rb") as handle:
                head = handle.read(32)
        except OSError as exc:
            return {"status": "error", "error": f"cannot open: {exc.strerror or exc}"}
        if radimagenet.image_kind(head) is None:
            return None  # not an image: the DICOM reader decides (usually not_dicom)
        key = (folder.modality_folder, folder.region_or_organ)
        cached = self._folders.get(key)
        if cached is None:
            modality, anatomy = self.vocab.lookup_radimagenet(*key)
            mapped = (self.vocab.project_modality(modality) is not None
                      and self.vocab.project_anatomy(anatomy) is not None)
            vector = self.vocab.encode(modality, anatomy) if mapped else None  # as resolve_labels does
            cached = self._folders[key] = (modality, anatomy, vector, mapped)
        modality, anatomy, vector, mapped = cached
        size = radimagenet.png_size(head)
        return {
            "status": "ok" if mapped else "unmapped",
            "Rows": size[0] if size else None, "Columns": size[1] if size else None,
            "modality": modality, "anatomy": anatomy,
            "modality_source": "folder" if modality else None,
            "anatomy_source": "folder" if anatomy else None,
            "label": folder.label, "multi_hot": vector,
        }

    def batch(self, entries: list[FileEntry]) -> pa.RecordBatch:
        return rows_to_batch([self.row(e) for e in entries], self.schema)


_WORKER: FileIndexer | None = None


def _init_worker(settings: _Settings) -> None:
    global _WORKER
    _WORKER = FileIndexer(settings)  # the vocabulary is loaded once per process


def _index_chunk(entries: list[FileEntry]) -> pa.RecordBatch:
    assert _WORKER is not None
    return _WORKER.batch(entries)


# ---- the previous index, read alongside the walk ------------------------------------------------


class _Previous:
    """Streams the rows of a previous index (path order) for a merge with the walk."""

    def __init__(self, path: Path, batch_rows: int = 8192) -> None:
        self._file = pq.ParquetFile(path)
        self._batches = self._file.iter_batches(batch_size=batch_rows)
        self._batch: pa.RecordBatch | None = None
        self._paths: list[str] = []
        self._i = 0
        self._next_batch()

    def _next_batch(self) -> None:
        self._batch = next(self._batches, None)
        self._i = 0
        if self._batch is not None:
            self._paths = self._batch.column("path").to_pylist()
            self._sizes = self._batch.column("size").to_pylist()
            self._mtimes = self._batch.column("mtime_ns").to_pylist()
            self._status = self._batch.column("status").to_pylist()

    def match(self, entry: FileEntry) -> tuple[pa.RecordBatch, int] | None:
        """The previous row of `entry` when it can be reused (same path, size and mtime, not an
        error), else None. Rows of paths before `entry.path` are passed over (vanished files)."""
        while self._batch is not None:
            if self._i >= len(self._paths):
                self._next_batch()
                continue
            path = self._paths[self._i]
            if path < entry.path:
                self._i += 1
                continue
            if path > entry.path:
                return None
            i = self._i
            self._i += 1
            if (entry.error is None and self._sizes[i] == entry.size
                    and self._mtimes[i] == entry.mtime_ns and self._status[i] != "error"):
                return self._batch, i
            return None
        return None

    def close(self) -> None:
        self._file.close()


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class IndexResult:
    """What `run_index` did. frame: the index (None when not asked for); summary; output path;
    meta; files (rows written), read (files read this run), reused (rows copied from the
    previous index); seconds; salt_source ("argument", "environment", "file", "new file",
    "ephemeral")."""

    frame: Any
    summary: IndexSummary
    output: Path | None
    meta: IndexMeta
    files: int = 0
    read: int = 0
    reused: int = 0
    seconds: float = 0.0
    salt_source: str = ""
    warnings: list[str] = field(default_factory=list)


def _check_source(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such folder")
    if not path.is_dir():
        raise SourceError(f"{source}: not a folder")
    try:
        with os.scandir(path) as it:
            next(it, None)
    except OSError as exc:
        raise SourceError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
    return path.resolve()


def check_output_file(output: str | os.PathLike[str], what: str = "index") -> Path:
    """The resolved path of a Parquet file to write (`what`: "index", "census"), its folder created;
    OutputError when it is a folder or cannot be written."""
    from ..atomic import prepare_parent

    path = Path(output)
    if path.is_dir():
        raise OutputError(f"{output} is a folder; give the {what} file name (e.g. {path / (what + '.parquet')})")
    prepare_parent(path)  # raises OutputError when the folder cannot be created or written
    return path.resolve()


def _exclusions(source: Path, output: Path | None) -> Callable[[str], bool] | None:
    """Files the walk must skip: the index itself, its temporary files and the salt file, when
    the index is written inside the source."""
    if output is None:
        return None
    try:
        rel_dir = output.parent.relative_to(source).as_posix()
    except ValueError:
        return None
    rel_dir = "" if rel_dir == "." else rel_dir + "/"
    own = {rel_dir + output.name, rel_dir + SALT_FILE}
    temp_prefix = f"{rel_dir}.{output.name}."

    def exclude(rel: str) -> bool:
        return rel in own or (rel.startswith(temp_prefix) and rel.endswith(".tmp"))

    return exclude


def _resolve_layout(layout: str, source: Path) -> tuple[str, str]:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "dicom":
        return "dicom", ""
    prefix = radimagenet.detect_prefix(source)
    if layout == "radimagenet":
        return "radimagenet", prefix or ""
    return ("radimagenet", prefix) if prefix is not None else ("dicom", "")


def _previous_index(output: Path | None, meta: IndexMeta, warnings: list[str]) -> _Previous | None:
    if output is None or not output.exists():
        return None
    try:
        old = read_index_meta(output)
    except SourceError:
        warnings.append(f"{output} exists but is not a readable index; it is rebuilt from scratch")
        return None
    if not old.reusable_by(meta):
        return None
    try:
        return _Previous(output)
    except (OSError, pa.ArrowInvalid):
        warnings.append(f"{output} could not be read; it is rebuilt from scratch")
        return None


def _plan_chunks(
    entries: Iterator[FileEntry], previous: _Previous | None, batch_size: int
) -> Iterator[tuple[list[tuple[str, Any]], list[FileEntry]]]:
    """Group the walk into chunks of `batch_size` files. Each chunk is (segments, to_read):
    segments, in walk order, are ("old", (batch, start, stop)) runs of reusable previous rows
    and ("new", count) runs of files to read; to_read lists those files."""
    segments: list[tuple[str, Any]] = []
    to_read: list[FileEntry] = []
    n = 0
    for entry in entries:
        reuse = previous.match(entry) if previous is not None else None
        if reuse is None:
            if segments and segments[-1][0] == "new":
                segments[-1] = ("new", segments[-1][1] + 1)
            else:
                segments.append(("new", 1))
            to_read.append(entry)
        else:
            batch, i = reuse
            last = segments[-1] if segments else None
            if last is not None and last[0] == "old" and last[1][0] is batch and last[1][2] == i:
                segments[-1] = ("old", (batch, last[1][1], i + 1))
            else:
                segments.append(("old", (batch, i, i + 1)))
        n += 1
        if n >= batch_size:
            yield segments, to_read
            segments, to_read, n = [], [], 0
    if n:
        yield segments, to_read


def _assemble(segments: list[tuple[str, Any]], fresh: pa.RecordBatch | None, schema: pa.Schema) -> pa.Table:
    pieces: list[pa.RecordBatch] = []
    k = 0
    for kind, value in segments:
        if kind == "new":
            assert fresh is not None
            pieces.append(fresh.slice(k, value))
            k += value
        else:
            batch, start, stop = value
            pieces.append(pa.RecordBatch.from_arrays(batch.slice(start, stop - start).columns, schema=schema))
    return pa.Table.from_batches(pieces, schema=schema)


class _Executor:
    """Runs chunks in-process (workers=1) or in a process pool, handing results back in order
    with a bounded number of chunks in flight."""

    def __init__(self, settings: _Settings, vocab: Any, workers: int) -> None:
        self.workers = workers
        self.window = max(2, workers * 3)
        self._pool: ProcessPoolExecutor | None = None
        self._local: FileIndexer | None = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(settings,))
        else:
            self._local = FileIndexer(settings, vocab)

    def map(self, chunks: Iterator[tuple[list[tuple[str, Any]], list[FileEntry]]]) -> Iterator[tuple[list[tuple[str, Any]], pa.RecordBatch | None, int]]:
        """Yield (segments, fresh rows or None, files read) per chunk, in order."""
        if self._local is not None:
            for segments, to_read in chunks:
                yield segments, (self._local.batch(to_read) if to_read else None), len(to_read)
            return
        assert self._pool is not None
        pending: deque[tuple[list[tuple[str, Any]], Future[pa.RecordBatch] | None, int]] = deque()
        for segments, to_read in chunks:
            future = self._pool.submit(_index_chunk, to_read) if to_read else None
            pending.append((segments, future, len(to_read)))
            while len(pending) >= self.window or (pending and pending[0][1] is None):
                segs, fut, n = pending.popleft()
                yield segs, (fut.result() if fut is not None else None), n
        while pending:
            segs, fut, n = pending.popleft()
            yield segs, (fut.result() if fut is not None else None), n

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def run_index(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    profile: str = "radimagenet",
    workers: int = 1,
    salt: str | bytes | None = None,
    keep_uids: bool = False,
    layout: str = "auto",
    batch_size: int = 128,
    progress: Progress | None = None,
    return_frame: bool = True,
) -> IndexResult:
    """Index `source` into `output` (Parquet); see `build_index`. Returns an `IndexResult`
    whose `frame` is the whole index when `return_frame` (else None: for very large runs,
    read the file back with `read_index` or in batches with pyarrow)."""
    started = time.perf_counter()
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1 (got {batch_size})")
    root = _check_source(source)
    out_path = check_output_file(output) if output is not None else None
    layout_name, prefix = _resolve_layout(layout, root)
    vocab = load_vocabulary(profile)
    salt_bytes, salt_source = resolve_salt(salt, out_path.parent if out_path is not None else None)
    pseudo = Pseudonymizer(salt_bytes, keep_uids)
    meta = IndexMeta(
        profile=str(vocab.profile), axes=list(vocab.labels), source=str(root), layout=layout_name,
        keep_uids=keep_uids, salt_fingerprint=pseudo.fingerprint,
        vocab_fingerprint=vocabulary_fingerprint(vocab), version=__version__,
        extra={"prefix": prefix},
    )
    settings = _Settings(str(root), profile, salt_bytes, keep_uids, layout_name, prefix)
    warnings: list[str] = []
    if salt_source == "ephemeral":
        warnings.append("no salt and no output folder: the pseudonyms of this run match no other run")
    schema = index_schema(len(meta.axes))
    exclude = _exclusions(root, out_path)
    total = count_files(root, exclude=exclude) if progress is not None else None
    builder = SummaryBuilder()
    kept: list[pa.Table] = []
    counts = {"files": 0, "read": 0, "reused": 0}

    def consume(write: Callable[[pa.Table], None] | None, previous: _Previous | None) -> None:
        executor = _Executor(settings, vocab, workers)
        try:
            if progress is not None:
                progress(0, total)
            chunks = _plan_chunks(walk(root, exclude=exclude), previous, batch_size)
            for segments, fresh, n_read in executor.map(chunks):
                table = _assemble(segments, fresh, schema)
                if write is not None:
                    write(table)
                if return_frame and out_path is None:
                    kept.append(table)
                builder.add(table)
                counts["files"] += table.num_rows
                counts["read"] += n_read
                counts["reused"] += table.num_rows - n_read
                if progress is not None:
                    progress(counts["files"], total)
        finally:
            executor.close()

    if out_path is None:
        consume(None, None)
        frame = table_to_frame(pa.concat_tables(kept) if kept else schema.empty_table()) if return_frame else None
    else:
        previous = _previous_index(out_path, meta, warnings)
        try:
            with open_index_writer(out_path, meta) as writer:
                consume(writer.write, previous)
                if previous is not None:
                    previous.close()  # before the new file replaces it
                    previous = None
        finally:
            if previous is not None:
                previous.close()
        frame = read_index(out_path) if return_frame else None
    if frame is not None:
        frame.attrs["axes"] = list(meta.axes)
        frame.attrs["profile"] = meta.profile
    if counts["files"] == 0:
        warnings.append(f"{source}: no files found; the index is empty")
    builder.warnings.extend(warnings)
    return IndexResult(
        frame=frame, summary=builder.result(), output=out_path, meta=meta,
        files=counts["files"], read=counts["read"], reused=counts["reused"],
        seconds=time.perf_counter() - started, salt_source=salt_source, warnings=warnings,
    )


def build_index(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    profile: str = "radimagenet",
    workers: int = 1,
    salt: str | bytes | None = None,
    keep_uids: bool = False,
    layout: str = "auto",
    batch_size: int = 128,
    progress: Progress | None = None,
) -> Any:
    """Index every file under `source`; return the index as a pandas DataFrame.

    source: a folder (a PACS export, a RadImageNet tree, anything). output: the Parquet file to
    write (incremental when it already holds an index of the same settings); None keeps the index
    in memory only. profile: the vocabulary profile for `multi_hot` ("radimagenet", "full", or a
    path). workers: reading processes. salt: the pseudonym key (else $MODAN_SALT, else
    `.modan-salt` beside the output, created once). keep_uids: keep Study/Series/SOP Instance
    UIDs unpseudonymised. layout: "auto", "dicom" or "radimagenet". batch_size: files per chunk
    handed to a worker. progress(done, total): called after each chunk.

    Returns one row per file, in path order (columns in `modan_dicom.ingest.schema`); the
    multi-hot axes are in `df.attrs["axes"]`. For the closing counts use `summarize(df)` or
    `run_index`, which also reports warnings (an empty source). Raises SourceError (missing or
    unreadable source), OutputError (output not writable; checked before any file is read),
    ConfigError, VocabularyError.
    """
    return run_index(
        source, output, profile=profile, workers=workers, salt=salt, keep_uids=keep_uids,
        layout=layout, batch_size=batch_size, progress=progress, return_frame=True,
    ).frame
