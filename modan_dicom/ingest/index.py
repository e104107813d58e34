"""`build_index`: a folder of files -> one index row per file, in parallel, incrementally, atomically.

The walk (`walk.py`) yields files in path order. Each file becomes a row: the RadImageNet layout
gives its labels from the folders (`radimagenet.py`); otherwise its header is read
(`header.py`), its labels resolved by the vocabulary (`labels.py`) and its identifiers replaced by
keyed pseudonyms (`pseudonym.py`). Files go in chunks of `batch_size` to `ChunkRunner`
(`executor.py`), which reads them here and, with `workers` > 1, in worker processes too; the
rows come back as Arrow record batches that are written, in walk order, straight into the new
Parquet file (`schema.py`): memory stays bounded whatever the number of files. Rows are built
as tuples and turned into Arrow column by column; what repeats along a series (labels,
pseudonyms) is computed once. On a cold disk a helper process reads ahead (`readahead.py`), the
first kilobytes of each chunk's files are asked of the kernel a chunk ahead (`pagecache.py`)
and the ends of compressed files not yet in the page cache are checked after their chunk.

Incremental runs: when `output` already holds an index built with the same settings (profile,
vocabulary, salt, layout, keep_uids, source, modan-dicom version), it is read alongside the walk
(both are in path order) and the rows of files whose (path, size, mtime_ns) did not change are
copied instead of re-read; error rows are always retried; files no longer present disappear.
The result equals a fresh run. The new index replaces the old one in a single rename at the end,
so a run that fails or is killed midway leaves the previous index untouched. One run at a time
writes an output (`atomic.output_lock`: a second is refused at once; the temporaries of killed
runs are removed), and an index built with another salt is never re-keyed unless asked (`rekey`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..atomic import exclusive_output
from ..errors import ConfigError, SourceError
from . import pagecache, radimagenet
from .executor import ChunkRunner
from .header import HEADER_WINDOW, non_image_reason, read_header, tail_is_whole
from .pseudonym import (
    MARKER_PREFIX,
    SALT_ENV,
    SALT_FILE,
    Pseudonymizer,
    creates_salt_file,
    resolve_salt,
    salt_fingerprint,
)
from .readahead import ReadAhead
from .schema import (
    RAW_INT_COLUMNS,
    RAW_STRING_COLUMNS,
    ROW_COLUMNS,
    IndexMeta,
    columns_to_batch,
    local_path,
    open_index_writer,
    read_index,
    read_index_meta,
    read_local,
    row_schema,
    table_to_frame,
)
from .scrub import IDENTITY_KEYWORDS, Scrubber, scrub_error
from .summary import ANATOMY_FIELDS, MODALITY_FIELDS, IndexSummary, SummaryBuilder
from .walk import count_files, walk_items

LAYOUTS = ("auto", "dicom", "radimagenet")
LABEL_KEYS = ("Modality", "BodyPartExamined", "SeriesDescription", "ProtocolName",
              "StudyDescription", "AnatomicRegion", "SOPClassUID")
Progress = Callable[[int, "int | None"], None]
# a walked file (`walk_items`): (path, size, mtime_ns, error); size and mtime_ns None when the
# walk left the stat to the reader
Item = tuple[str, "int | None", "int | None", "str | None"]

# header dict -> values, in index column order
_TEXT_VALUES = itemgetter(*RAW_STRING_COLUMNS)
_INT_VALUES = itemgetter(*RAW_INT_COLUMNS)
_IDENTITY = itemgetter(*IDENTITY_KEYWORDS)  # what the scrubber removes from the texts, with the SOP Instance UID
_LABEL_VALUES = itemgetter(*LABEL_KEYS)
_IDENTIFIERS = itemgetter("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# a row's values after (path, size, mtime_ns, file_key, status, error), all null: raw values,
# AnatomicRegionSequence, the 4 keys, study_month, modality ... label, multi_hot
_NO_VALUES = (None,) * (len(ROW_COLUMNS) - 6)
# the columns the closing summary reads, and how to pick them from a row tuple
_SUMMARY_FIELDS = ("status", "modality", "anatomy", *MODALITY_FIELDS, *ANATOMY_FIELDS)
_SUMMARY_VALUES = itemgetter(*(ROW_COLUMNS.index(name) for name in _SUMMARY_FIELDS))


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
    """Turns files into index rows (one instance per worker process).

    A row is a tuple in row column order (`row_schema`: path, size, mtime_ns, then the shareable
    columns); a chunk of rows becomes one Arrow record batch, column by column. What repeats
    along a series is computed once: the labels and status of each distinct set of label values,
    the patient / study / series pseudonyms, the scrubbed texts (`scrub.py`).
    """

    def __init__(self, settings: _Settings, vocab: Any | None = None) -> None:
        from .labels import resolve_labels

        self.settings = settings
        self.vocab = vocab if vocab is not None else load_vocabulary(settings.profile)
        self._resolve = resolve_labels
        self.pseudo = Pseudonymizer(settings.salt, settings.keep_uids)
        self.scrubber = Scrubber()
        self.schema = row_schema(len(self.vocab.labels))
        self._prefix = os.path.join(settings.source, "")
        self._radimagenet = settings.layout == "radimagenet"
        # (label values, image flag) -> (status, modality, anatomy, modality_source, anatomy_source, multi_hot)
        self._labels: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._folders: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._deferred: dict[str, tuple[int, bytes]] = {}  # absolute path -> `tail` to check (`batch`)

    def labels(self, header: dict[str, Any]) -> Any:
        """The `Labels` of a header dict (uncached; `values` caches what it needs)."""
        raw = dict(zip(LABEL_KEYS, _LABEL_VALUES(header)))
        raw["AnatomicRegion"] = list(raw["AnatomicRegion"] or ())
        return self._resolve(raw, self.vocab)

    def _label_values(self, header: dict[str, Any]) -> tuple[Any, ...]:
        key = (_LABEL_VALUES(header), header["image"])
        found = self._labels.get(key)
        if found is None:
            if len(self._labels) > 50_000:
                self._labels.clear()
            labels = self.labels(header)
            reason = non_image_reason(header, bool(getattr(labels, "non_image", False)))
            status = "non_image" if reason else ("ok" if labels.mapped else "unmapped")
            found = self._labels[key] = (status, reason, labels.modality, labels.anatomy, labels.modality_source,
                                         labels.anatomy_source, labels.multi_hot)
        return found

    def values(self, item: Item, defer: bool = False) -> tuple[Any, ...]:
        """One file's row: a tuple of values in index column order. defer: an encapsulated file's
        end that is not in the page cache is left for `_check_tails` (`read_header(defer_tail=)`)."""
        path, size, mtime_ns, error = item
        file_key = self.pseudo.file_key(path)
        if error is not None:
            return (path, size, mtime_ns, file_key, "error", scrub_error(error, path), *_NO_VALUES)
        absolute = self._prefix + path
        if self._radimagenet:
            folder = radimagenet.parse_path(path, self.settings.prefix)
            if folder is not None:
                folder_row = self._folder_row(absolute, folder)
                if folder_row is not None:
                    return (path, size, mtime_ns, file_key, *folder_row)
        header = read_header(absolute, defer_tail=defer, with_stat=size is None)
        if size is None:  # the walk left the stat to us (`walk_items(stat_files=False)`)
            size, mtime_ns = header["size"], header["mtime_ns"]
        if defer and "tail" in header:
            self._deferred[absolute] = header["tail"]
        if header["kind"] != "dicom":
            return (path, size, mtime_ns, file_key, header["kind"], scrub_error(header["error"], path), *_NO_VALUES)
        status, reason, modality, anatomy, modality_source, anatomy_source, multi_hot = self._label_values(header)
        identity, instance = _IDENTITY(header), header["SOPInstanceUID"]
        texts = self.scrubber.texts(_TEXT_VALUES(header), identity, instance)
        regions = header["AnatomicRegion"]
        if regions:
            meanings = self.scrubber.texts(tuple(m for _, _, m in regions), identity, instance)
            regions = [(s, c, m) for (s, c, _), m in zip(regions, meanings)]
        return (path, size, mtime_ns, file_key, status, reason, *texts, *_INT_VALUES(header), regions or None,
                *self.pseudo.key_tuple(*_IDENTIFIERS(header)), header["StudyMonth"],
                modality, anatomy, modality_source, anatomy_source, None, multi_hot)

    def _folder_row(self, absolute: str, folder: radimagenet.FolderClass) -> tuple[Any, ...] | None:
        """(status, error, ... multi_hot) of a RadImageNet image, or None when it is no image."""
        try:
            with open(absolute, "rb") as handle:
                head = handle.read(32)
        except OSError as exc:
            return ("error", f"cannot open: {exc.strerror or exc}", *_NO_VALUES)
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
        raw = [None] * (len(RAW_STRING_COLUMNS) + len(RAW_INT_COLUMNS))
        raw[len(RAW_STRING_COLUMNS)] = size[0] if size else None  # Rows
        raw[len(RAW_STRING_COLUMNS) + 1] = size[1] if size else None  # Columns
        no_codes_keys_month = (None,) * 6  # AnatomicRegionSequence, the 4 keys, study_month
        return ("ok" if mapped else "unmapped", None, *raw, *no_codes_keys_month,
                modality, anatomy, "folder" if modality else None, "folder" if anatomy else None,
                folder.label, vector)

    def _check_tails(self, items: Sequence[Item], rows: list[tuple[Any, ...]]) -> None:
        """Check the deferred file ends (`read_header(defer_tail=True)`); read a file whose end is
        not the expected delimiter again, in full (it is truncated, or its fragments say more)."""
        deferred, self._deferred = self._deferred, {}
        prefix = self._prefix
        for i, item in enumerate(items):
            tail = deferred.get(prefix + item[0])
            if tail is not None and not tail_is_whole(prefix + item[0], tail):
                rows[i] = self.values(item)

    def warm_up(self) -> None:
        """Pay now the costs of a first chunk that every process would pay once: compiling the
        vocabulary's text matcher, pyarrow's lazy import of its pandas shim."""
        self.vocab.match_text("warm up")
        self.batch([])

    def prefetch(self, items: Sequence[Item]) -> None:
        """Ask the kernel for the first kilobytes of `items`' files when they are on a cold disk
        (`pagecache.prefetch`)."""
        if not self._radimagenet:
            pagecache.prefetch([self._prefix + item[0] for item in items if item[3] is None], HEADER_WINDOW)

    def batch(
        self, items: Sequence[Item], prefetch: bool = True
    ) -> tuple[pa.RecordBatch, Counter[tuple[Any, ...]]]:
        """The rows of `items` as one record batch (index schema), and their summary counts
        (`_add_to_summary`). prefetch=False: the caller has called `prefetch(items)` already
        (ahead of time)."""
        if prefetch:
            self.prefetch(items)
        values = self.values
        collect = gc.isenabled()
        gc.disable()  # rows and headers hold no reference cycles: collections would only cost time
        try:
            # the ends of compressed files not in the page cache are checked after the chunk
            rows = [values(item, True) for item in items]
            if self._deferred:
                self._check_tails(items, rows)
        finally:
            self._deferred.clear()
            if collect:
                gc.enable()
        batch = columns_to_batch(list(zip(*rows)) if rows else [[] for _ in self.schema], self.schema)
        return batch, Counter(map(_SUMMARY_VALUES, rows))


# ---- the previous index, read alongside the walk ------------------------------------------------


class _Previous:
    """Streams the rows of a previous index (path order), joined with its local file (path, size,
    mtime_ns), for a merge with the walk. The two files hold the same rows in the same order
    (`_previous_index` checks their file_keys)."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int = 8192) -> None:
        self._file = pq.ParquetFile(path)
        self._local_file = pq.ParquetFile(local_path(path))
        self._schema = schema  # `row_schema`
        self._batches = self._file.iter_batches(batch_size=batch_rows)
        self._local_batches = self._local_file.iter_batches(batch_size=batch_rows, columns=["path", "size", "mtime_ns"])
        self._local_rest: pa.RecordBatch | None = None
        self._batch: pa.RecordBatch | None = None
        self._paths: list[str] = []
        self._i = 0
        self._next_batch()

    def _take_local(self, n: int) -> pa.Table:
        """The next `n` rows of the local file."""
        pieces: list[pa.RecordBatch] = []
        while n > 0:
            rest = self._local_rest if self._local_rest is not None else next(self._local_batches)
            pieces.append(rest.slice(0, n))
            self._local_rest = rest.slice(n) if rest.num_rows > n else None
            n -= pieces[-1].num_rows
        return pa.Table.from_batches(pieces)

    def _next_batch(self) -> None:
        shared = next(self._batches, None)
        while shared is not None and shared.num_rows == 0:
            shared = next(self._batches, None)
        self._i = 0
        self._batch = None
        if shared is not None:
            local = self._take_local(shared.num_rows).combine_chunks()
            columns = [local.column(name).chunk(0) for name in ("path", "size", "mtime_ns")]
            self._batch = pa.RecordBatch.from_arrays([*columns, *shared.columns], schema=self._schema)
            self._paths = self._batch.column("path").to_pylist()
            self._sizes = self._batch.column("size").to_pylist()
            self._mtimes = self._batch.column("mtime_ns").to_pylist()
            self._status = self._batch.column("status").to_pylist()

    def match(self, item: Item) -> tuple[pa.RecordBatch, int] | None:
        """The previous row of the walked file `item` when it can be reused (same path, size and
        mtime, not an error), else None. Rows of paths before its path are passed over (vanished files)."""
        entry_path, entry_size, entry_mtime_ns, entry_error = item
        while self._batch is not None:
            if self._i >= len(self._paths):
                self._next_batch()
                continue
            path = self._paths[self._i]
            if path < entry_path:
                self._i += 1
                continue
            if path > entry_path:
                return None
            i = self._i
            self._i += 1
            if (entry_error is None and self._sizes[i] == entry_size
                    and self._mtimes[i] == entry_mtime_ns and self._status[i] != "error"):
                return self._batch, i
            return None
        return None

    def close(self) -> None:
        self._file.close()
        self._local_file.close()


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
    OutputError when it is a folder, cannot be written, or is a file of the user's that is not a
    modan-dicom index or census (it would be replaced)."""
    from ..outputs import INDEX_KEY, claim_file, has_parquet_key

    return claim_file(output, lambda path: has_parquet_key(path, INDEX_KEY), f"modan-dicom {what}",
                      f"{what}.parquet")


def resolve_output_salt(
    salt: str | bytes | None, output: Path | None, rekey: bool = False
) -> tuple[bytes, str]:
    """The salt of a run writing `output` and where it came from (`resolve_salt`). When `output`
    already holds an index or census made with another salt, replacing it would make its
    pseudonyms impossible to reproduce: ConfigError, unless `rekey` (the run then re-keys every
    row). Nor is a missing salt file created anew beside such an index (it may be restored)."""
    old = None
    if output is not None and output.exists() and not rekey:
        try:
            old = read_index_meta(output)
        except SourceError:
            old = None  # not ours: `check_output_file` refuses it
    if old is not None and creates_salt_file(salt, output.parent):
        raise ConfigError(f"{output.name} was built with a salt this run does not have ({SALT_FILE} is missing): "
                          f"give it (--salt or ${SALT_ENV}), restore {SALT_FILE}, or add --rekey to change "
                          "every pseudonym")
    salt_bytes, source = resolve_salt(salt, output.parent if output is not None else None)
    if old is not None and old.salt_fingerprint != salt_fingerprint(salt_bytes):
        given = {"argument": "--salt", "environment": f"${SALT_ENV}", "file": SALT_FILE}.get(source, source)
        raise ConfigError(f"{output.name} was built with another salt than this run's (from {given}): give the "
                          "salt it was built with, or add --rekey to change every pseudonym")
    return salt_bytes, source


def _exclusions(source: Path, output: Path | None) -> Callable[[str], bool] | None:
    """Files the walk must skip: the index itself, its local file, their temporary files and modan-dicom's own
    `.modan-*` files beside it (the salt, a pull's marker), when the index is written inside the
    source."""
    if output is None:
        return None
    try:
        rel_dir = output.parent.relative_to(source).as_posix()
    except ValueError:
        return None
    rel_dir = "" if rel_dir == "." else rel_dir + "/"
    own = {rel_dir + output.name, rel_dir + local_path(output).name}
    temp_prefixes = (f"{rel_dir}.{output.name}.", f"{rel_dir}.{local_path(output).name}.")
    marker_prefix = rel_dir + MARKER_PREFIX

    def exclude(rel: str) -> bool:
        return (rel in own or (rel.startswith(temp_prefixes) and rel.endswith(".tmp"))
                or (rel.startswith(marker_prefix) and "/" not in rel[len(marker_prefix):]))

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
    if not old.source and old.format == meta.format:
        warnings.append(f"{output}: its local file {local_path(output).name} is missing; the index is rebuilt "
                        "from scratch")
        return None
    if not old.reusable_by(meta):
        return None
    try:
        keys = pq.read_table(output, columns=["file_key"]).column("file_key")
        if read_local(output, keys, columns=["file_key"]) is None:
            warnings.append(f"{output}: its local file {local_path(output).name} belongs to another index; "
                            "the index is rebuilt from scratch")
            return None
        return _Previous(output, row_schema(len(meta.axes)))
    except (OSError, pa.ArrowInvalid, KeyError):
        warnings.append(f"{output} could not be read; it is rebuilt from scratch")
        return None


def _plan_chunks(
    entries: Iterator[Item], previous: _Previous | None, batch_size: int
) -> Iterator[tuple[list[tuple[str, Any]], list[Item]]]:
    """Group the walk into chunks of `batch_size` files. Each chunk is (segments, to_read):
    segments, in walk order, are ("old", (batch, start, stop)) runs of reusable previous rows
    and ("new", count) runs of files to read; to_read lists those files."""
    if previous is None:  # a fresh run: every file is read
        while chunk := list(islice(entries, batch_size)):
            yield [("new", len(chunk))], chunk
        return
    segments: list[tuple[str, Any]] = []
    to_read: list[Item] = []
    n = 0
    for item in entries:
        reuse = previous.match(item)
        if reuse is None:
            if segments and segments[-1][0] == "new":
                segments[-1] = ("new", segments[-1][1] + 1)
            else:
                segments.append(("new", 1))
            to_read.append(item)
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


def _table_counts(table: pa.Table) -> Counter[tuple[Any, ...]]:
    """The summary counts of a table's rows (what `FileIndexer.batch` returns for fresh rows)."""
    return Counter(zip(*(table.column(name).to_pylist() for name in _SUMMARY_FIELDS)))


def _add_to_summary(builder: SummaryBuilder, counts: Counter[tuple[Any, ...]]) -> None:
    """Feed `builder` (made with weight="count") one row per distinct combination of the fields
    the summary reads, with its count, in order of first appearance within the chunk. The
    builder's counters then see the same keys in the same order with the same totals as when fed
    every row (ties in "most frequent" stay in the same order), at a fraction of the cost."""
    distinct = list(zip(*counts)) if counts else [() for _ in _SUMMARY_FIELDS]
    data = {name: pa.array(values, type=pa.string()) for name, values in zip(_SUMMARY_FIELDS, distinct)}
    data["count"] = pa.array(list(counts.values()), type=pa.int64())
    builder.add(pa.table(data))


def _assemble(segments: list[tuple[str, Any]], fresh: pa.RecordBatch | None, schema: pa.Schema) -> pa.Table:
    if len(segments) == 1 and segments[0][0] == "new" and fresh is not None and segments[0][1] == fresh.num_rows:
        return pa.Table.from_batches([fresh], schema=schema)
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


@exclusive_output
def run_index(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    profile: str = "radimagenet",
    workers: int = 1,
    salt: str | bytes | None = None,
    keep_uids: bool = False,
    layout: str = "auto",
    batch_size: int | None = None,
    progress: Progress | None = None,
    return_frame: bool = True,
    rekey: bool = False,
    follow_links: bool = False,
) -> IndexResult:
    """Index `source` into `output` (Parquet); see `build_index`. Returns an `IndexResult`
    whose `frame` is the whole index when `return_frame` (else None: for very large runs,
    read the file back with `read_index` or in batches with pyarrow). One run at a time writes
    `output` (`output_lock`: another gets OutputError); temporary files of killed runs are removed."""
    started = time.perf_counter()
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")
    if batch_size is None:  # one worker: large chunks (fewer per-chunk costs); several: balanced ones
        batch_size = 2048 if workers == 1 else 512
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1 (got {batch_size})")
    root = _check_source(source)
    out_path = check_output_file(output) if output is not None else None
    layout_name, prefix = _resolve_layout(layout, root)
    vocab = load_vocabulary(profile)
    salt_bytes, salt_source = resolve_output_salt(salt, out_path, rekey)
    pseudo = Pseudonymizer(salt_bytes, keep_uids)
    meta = IndexMeta(
        profile=str(vocab.profile), axes=list(vocab.labels), source=str(root), layout=layout_name,
        keep_uids=keep_uids, salt_fingerprint=pseudo.fingerprint,
        vocab_fingerprint=vocabulary_fingerprint(vocab), version=__version__,
        extra={"prefix": prefix}, source_key=pseudo.source_key(str(root)),
    )
    settings = _Settings(str(root), profile, salt_bytes, keep_uids, layout_name, prefix)
    warnings: list[str] = []
    if salt_source == "ephemeral":
        warnings.append("no salt and no output folder: the pseudonyms of this run match no other run")
    schema = row_schema(len(meta.axes))
    exclude = _exclusions(root, out_path)
    total = count_files(root, exclude=exclude, follow_links=follow_links) if progress is not None else None
    builder = SummaryBuilder(weight="count")  # fed distinct rows with their counts (`_add_to_summary`)
    kept: list[pa.Table] = []
    counts = {"files": 0, "read": 0, "reused": 0}

    def consume(write: Callable[[pa.Table], None] | None, previous: _Previous | None) -> None:
        executor = ChunkRunner(partial(FileIndexer, settings), workers, local=FileIndexer(settings, vocab))
        # a helper process, on a cold disk only; not for an incremental run, which reads few files
        ahead = ReadAhead.start(str(root), exclude, follow_links=follow_links) if previous is None else None
        try:
            if progress is not None:
                progress(0, total)
            # a fresh DICOM run lets the header reader stat each file it opens anyway; an
            # incremental run compares sizes and times in the walk, and RadImageNet rows are not
            # read by the header reader
            stat_files = previous is not None or layout_name == "radimagenet"
            entries = walk_items(root, exclude=exclude, stat_files=stat_files, read_ahead=ahead is None,
                                 follow_links=follow_links)
            chunks = _plan_chunks(entries, previous, batch_size)
            for segments, fresh, n_read in executor.map(chunks):
                batch, fresh_counts = fresh if fresh is not None else (None, None)
                table = _assemble(segments, batch, schema)
                if write is not None:
                    write(table)
                if return_frame and out_path is None:
                    kept.append(table)
                _add_to_summary(builder, fresh_counts if n_read == table.num_rows else _table_counts(table))
                counts["files"] += table.num_rows
                counts["read"] += n_read
                counts["reused"] += table.num_rows - n_read
                if ahead is not None:
                    ahead.advance(counts["files"])
                if progress is not None:
                    progress(counts["files"], total)
        finally:
            if ahead is not None:
                ahead.close()
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
    batch_size: int | None = None,
    progress: Progress | None = None,
    rekey: bool = False,
    follow_links: bool = False,
) -> Any:
    """Index every file under `source`; return the index as a pandas DataFrame.

    source: a folder (a PACS export, a RadImageNet tree, anything). output: the Parquet file to
    write (incremental when it already holds an index of the same settings); None keeps the index
    in memory only. profile: the vocabulary profile for `multi_hot` ("radimagenet", "full", or a
    path). workers: reading processes, this one included. salt: the pseudonym key (else $MODAN_SALT, else
    `.modan-salt` beside the output, created once). keep_uids: keep Study/Series/SOP Instance
    UIDs unpseudonymised. layout: "auto", "dicom" or "radimagenet". batch_size: files per chunk
    handed to a worker (default 2048 with one worker, 512 with several). progress(done, total):
    called after each chunk. rekey: accept a salt other than the one `output` was built with
    (every row is then read again and gets new pseudonyms; without it that is a ConfigError).
    follow_links: follow symbolic links that lead out of `source` (by default each is an error
    row "link leaves the source folder").

    Returns one row per file, in path order (columns in `modan_dicom.ingest.schema`); the
    multi-hot axes are in `df.attrs["axes"]`. For the closing counts use `summarize(df)` or
    `run_index`, which also reports warnings (an empty source). Raises SourceError (missing or
    unreadable source), OutputError (output not writable, or being written by another run;
    checked before any file is read), ConfigError (another salt without `rekey`), VocabularyError.
    """
    return run_index(
        source, output, profile=profile, workers=workers, salt=salt, keep_uids=keep_uids,
        layout=layout, batch_size=batch_size, progress=progress, return_frame=True, rekey=rekey,
        follow_links=follow_links,
    ).frame
