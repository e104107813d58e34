"""The census of an archive: what it holds, by modality × anatomy, without moving a pixel.

`survey` asks the archive for its series (split by Study Date where the archive caps answers, see
`crawl.py`), resolves each series' labels from its series-level attributes with the same code as the file
index (`ingest.labels.resolve_labels`), and, for a series those do not label, reads the header of one of its
instances before calling it unmapped. `run_census` turns the survey into index rows (one per series, or one
per instance with ``level="instance"``) with the file index's columns and pseudonyms plus ``instances``, and
writes them atomically; `census` is the one-call API.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import __version__
from ..atomic import exclusive_output
from ..errors import ConfigError
from ..ingest.header import NON_IMAGE_CODE, study_month
from ..ingest.index import check_output_file, load_vocabulary, vocabulary_fingerprint
from ..ingest.labels import Labels, code_triples, resolve_labels
from ..ingest.pseudonym import Pseudonymizer, resolve_salt
from ..ingest.schema import (
    RAW_INT_COLUMNS, RAW_STRING_COLUMNS, IndexMeta, open_index_writer, read_index, read_index_meta,
    read_index_table, row_schema, rows_to_batch, table_to_frame,
)
from ..ingest.scrub import IDENTITY_KEYWORDS, INSTANCE_KEYWORD, scrub_error, scrub_texts
from ..ingest.summary import IndexSummary, SummaryBuilder
from .address import ArchiveAddress, parse_address
from .archive import (
    DEFAULT_MAX_QUERIES,
    Archive,
    DateRange,
    Limits,
    QueryBudget,
    SeriesQuery,
    integer,
    no_uids,
    numbered_instances,
    one_line,
    open_archive,
    text,
    until_complete,
)
from .crawl import Crawl

LEVELS = ("series", "instance")
EXTRA_FIELDS = (pa.field("instances", pa.int64()),)
Progress = Callable[[int, "int | None"], None]
_DATE = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")


def parse_date(value: str, what: str) -> str:
    """'2024-03-01' or '20240301' -> '20240301' (ConfigError otherwise)."""
    value = value.strip()
    if not _DATE.match(value):
        raise ConfigError(f"{what} {value!r}: give a date as YYYY-MM-DD or YYYYMMDD")
    digits = value.replace("-", "")
    try:
        dt.datetime.strptime(digits, "%Y%m%d")
    except ValueError as exc:
        raise ConfigError(f"{what} {value!r}: not a calendar date") from exc
    return digits


def date_range(study_date: str | None = None, since: str | None = None) -> DateRange:
    """The Study Date range of `--study-date FROM-TO` (either side may be empty) and `--since DATE`."""
    start = end = None
    if study_date:
        match = re.match(r"^(\d{4}-?\d{2}-?\d{2})?-(\d{4}-?\d{2}-?\d{2})?$", study_date.strip())
        if match is None:  # one day
            start = end = parse_date(study_date, "--study-date")
        else:
            start = parse_date(match[1], "--study-date") if match[1] else None
            end = parse_date(match[2], "--study-date") if match[2] else None
    if since:
        since_day = parse_date(since, "--since")
        start = max(start, since_day) if start else since_day
    if start and end and start > end:
        raise ConfigError(f"the Study Date range {start}-{end} is empty")
    return DateRange(start, end)


def parse_modalities(modality: str | Sequence[str] | None) -> list[str]:
    """"CT", ["CT", "MR"] or ["CT,MR"] -> ["CT", "MR"] (upper case, blanks dropped)."""
    given = [modality] if isinstance(modality, str) else list(modality or ())
    return [code.strip().upper() for item in given for code in item.split(",") if code.strip()]


def _raw(record: Mapping[str, Any]) -> dict[str, Any]:
    """What `resolve_labels` reads, from a record."""
    return {"Modality": text(record.get("Modality")), "SOPClassUID": text(record.get("SOPClassUID")),
            "BodyPartExamined": text(record.get("BodyPartExamined")),
            "SeriesDescription": text(record.get("SeriesDescription")),
            "ProtocolName": text(record.get("ProtocolName")),
            "StudyDescription": text(record.get("StudyDescription")),
            "AnatomicRegion": record.get("AnatomicRegionSequence") or []}


@dataclass
class SeriesItem:
    """One series of the archive: its record (real UIDs: kept in memory, never written unless keep_uids),
    the labels the census gave it, and a note when asking failed."""

    record: dict[str, Any]
    labels: Labels
    error: str | None = None
    instances: list[dict[str, Any]] = field(default_factory=list)
    census_labels: tuple[str | None, str | None] | None = None  # (modality, anatomy) of a census file

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.labels.non_image:
            return "non_image"
        return "ok" if self.labels.mapped else "unmapped"

    @property
    def uids(self) -> tuple[str, str]:
        return str(self.record.get("StudyInstanceUID")), str(self.record.get("SeriesInstanceUID"))


@dataclass
class Survey:
    """What `survey` found: the series, the number of queries sent, and what may be missing."""

    series: list[SeriesItem]
    queries: int
    warnings: list[str]


def _with_metadata(archive: Archive, item: SeriesItem, vocab: Any) -> None:
    """Label an unmapped series from the header of one of its instances (in place)."""
    study, series = item.uids
    try:
        numbered = numbered_instances(archive, study, series, [1])
        listing = numbered if numbered is not None else archive.series_instances(study, series).records
        if not listing:
            return
        first = min(listing, key=lambda r: (integer(r.get("InstanceNumber")) is None,
                                            integer(r.get("InstanceNumber")) or 0))
        metadata = archive.instance_metadata(study, series, str(first.get("SOPInstanceUID")))
    except Exception as exc:  # noqa: BLE001 - one series failing must not stop the census
        item.error = no_uids(f"instance metadata: {one_line(exc)}", item.uids)
        return
    merged = {**item.record, **{k: v for k, v in metadata.items() if v is not None and k in _LABEL_KEYS}}
    labels = resolve_labels(_raw(merged), vocab)
    if labels.mapped or labels.non_image or labels.anatomy is not None or labels.modality is not None:
        item.labels = labels
        item.record = merged


_LABEL_KEYS = frozenset({"Modality", "SOPClassUID", "BodyPartExamined", "SeriesDescription", "ProtocolName",
                         "StudyDescription", "AnatomicRegionSequence", "ImageLaterality", "ViewPosition"})


def survey(
    archive: Archive, vocab: Any, *, dates: DateRange = DateRange(), modalities: Sequence[str] = (),
    query_cap: int | None = None, workers: int = 4, progress: Progress | None = None,
) -> Survey:
    """Every series of `archive` in `dates` (and `modalities`), labelled. Series whose own attributes do not
    label them get one instance's header read (concurrently, `workers` at a time)."""
    warnings: list[str] = []
    records: list[dict[str, Any]] = []
    queries = 0
    for modality in (list(modalities) or [None]):
        crawl = Crawl(lambda d, m=modality: archive.find_series(SeriesQuery(d, m)), key="SeriesInstanceUID",
                      suspect_at=query_cap or 100, workers=workers, where=archive.address.display)
        records.extend(crawl.run(dates))
        queries += crawl.queries
        warnings.extend(crawl.warnings)
        if crawl.capped:
            warnings.append("the archive caps the matches of a query: the census split the query by Study Date "
                            f"({crawl.queries} queries)")
    records = list({r.get("SeriesInstanceUID"): r for r in records}.values())
    items = [SeriesItem(r, resolve_labels(_raw(r), vocab)) for r in records]
    todo = [item for item in items if not item.labels.mapped and not item.labels.non_image]
    if progress is not None:
        progress(0, len(todo))
    if todo:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for done, _ in enumerate(pool.map(lambda it: _with_metadata(archive, it, vocab), todo), 1):
                if progress is not None:
                    progress(done, len(todo))
        queries += 2 * len(todo)
    return Survey(items, queries, warnings)


# ---- rows ----------------------------------------------------------------------------------------------


def _row(item: SeriesItem, record: Mapping[str, Any], pseudo: Pseudonymizer, *, instance: bool) -> dict[str, Any]:
    labels = item.labels
    keys = pseudo.keys({"PatientID": text(record.get("PatientID")),
                        "StudyInstanceUID": text(record.get("StudyInstanceUID")),
                        "SeriesInstanceUID": text(record.get("SeriesInstanceUID")),
                        "SOPInstanceUID": text(record.get("SOPInstanceUID")) if instance else None})
    path = f"{keys['study_key']}/{keys['series_key']}" + (f"/{keys['instance_key']}" if instance else "")
    # the texts without the record's own name, ID, birth date and UIDs (`ingest/scrub.py`)
    identity = {name: text(record.get(name)) for name in (*IDENTITY_KEYWORDS, INSTANCE_KEYWORD)}
    codes = list(code_triples(record.get("AnatomicRegionSequence")))
    note = item.error if item.error is not None else (NON_IMAGE_CODE if item.status == "non_image" else None)
    *texts, error = scrub_texts([*(text(record.get(name)) for name in RAW_STRING_COLUMNS),
                                 *(meaning for _, _, meaning in codes), note], identity)
    row: dict[str, Any] = dict(zip(RAW_STRING_COLUMNS, texts))
    row.update({name: integer(record.get(name)) for name in RAW_INT_COLUMNS})
    row.update(keys)
    row.update(
        path=path, file_key=pseudo.file_key(path), size=0, mtime_ns=0, status=item.status, error=scrub_error(error),
        AnatomicRegionSequence=[(s, c, m) for (s, c, _), m in zip(codes, texts[len(RAW_STRING_COLUMNS):])] or None,
        study_month=study_month(text(record.get("StudyDate"))),
        modality=labels.modality, modality_source=labels.modality_source,
        anatomy=labels.anatomy, anatomy_source=labels.anatomy_source,
        multi_hot=labels.multi_hot if item.status == "ok" else None,
        instances=1 if instance else integer(record.get("NumberOfSeriesRelatedInstances")),
    )
    return row


def _instance_rows(archive: Archive, items: list[SeriesItem], workers: int, warnings: list[str],
                   progress: Progress | None) -> int:
    """Fill `item.instances` for every series (the instance-level crawl); returns the queries sent."""
    def listing(item: SeriesItem) -> None:
        expected = integer(item.record.get("NumberOfSeriesRelatedInstances"))
        try:
            answer = until_complete(lambda: archive.series_instances(*item.uids), expected)
        except Exception as exc:  # noqa: BLE001 - the series becomes an error row
            item.error = no_uids(f"instance query: {one_line(exc)}", item.uids)
            return
        item.instances = answer.records
        if answer.truncated or (expected is not None and len(answer.records) < expected):
            warnings.append(f"series {len(warnings) + 1}: {len(answer.records)} of "
                            f"{expected if expected is not None else '?'} instances listed (the archive caps answers)")

    if progress is not None:
        progress(0, len(items))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for done, _ in enumerate(pool.map(listing, items), 1):
            if progress is not None:
                progress(done, len(items))
    return len(items)


def census_rows(items: Iterable[SeriesItem], pseudo: Pseudonymizer, level: str) -> list[dict[str, Any]]:
    """Index rows of the surveyed series (level "series") or of their instances (level "instance")."""
    rows: list[dict[str, Any]] = []
    for item in items:
        if level == "series" or not item.instances:
            rows.append(_row(item, item.record, pseudo, instance=False))
            continue
        for instance in item.instances:
            rows.append(_row(item, {**item.record, **instance}, pseudo, instance=True))
    rows.sort(key=lambda r: r["path"])
    return rows


# ---- the run ---------------------------------------------------------------------------------------------


@dataclass
class CensusResult:
    """What `run_census` did: the census (a DataFrame, when asked for), its summary, the output path, the
    metadata, series / instances counted, queries sent, seconds, salt source and warnings."""

    frame: Any
    summary: IndexSummary
    output: Path | None
    meta: IndexMeta
    series: int
    instances: int
    queries: int
    seconds: float
    salt_source: str
    warnings: list[str] = field(default_factory=list)


def _merge_previous(output: Path, meta: IndexMeta, rows: list[dict[str, Any]]) -> pa.Table | None:
    """Rows of the previous census at `output` that this (incremental) run did not see again."""
    if not output.exists():
        return None
    previous = read_index_meta(output)
    same = (previous.profile, previous.axes, previous.source_key, previous.salt_fingerprint, previous.keep_uids,
            previous.extra.get("level")) == (meta.profile, meta.axes, meta.source_key, meta.salt_fingerprint,
                                             meta.keep_uids, meta.extra.get("level"))
    if not same:
        raise ConfigError(f"{output} holds a census made with other settings (archive, profile, salt or level); "
                          "--since adds to a census of the same archive and settings only")
    table = read_index_table(output)  # joined with its local file (the paths)
    seen = pa.array(sorted({r["file_key"] for r in rows}), type=pa.string())
    import pyarrow.compute as pc

    return table.filter(pc.invert(pc.is_in(table["file_key"], value_set=seen)))


@exclusive_output
def run_census(
    source: str, output: str | os.PathLike[str] | None = None, *, profile: str = "radimagenet",
    level: str = "series", modality: str | Sequence[str] | None = None, study_date: str | None = None,
    since: str | None = None, salt: str | bytes | None = None, keep_uids: bool = False,
    calling_aet: str = "MODAN", ca_bundle: str | None = None, query_cap: int | None = None, workers: int = 4,
    progress: Progress | None = None, return_frame: bool = True, archive: Archive | None = None,
    max_queries: int = DEFAULT_MAX_QUERIES, limits: Limits | None = None,
) -> CensusResult:
    """Census of the archive at `source` (see `census`); returns a `CensusResult`."""
    started = time.perf_counter()
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(LEVELS)} (got {level!r})")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")
    address: ArchiveAddress = parse_address(source, calling_aet=calling_aet, ca_bundle=ca_bundle)
    modalities = parse_modalities(modality)
    dates = date_range(study_date, since)
    out_path = check_output_file(output, "census") if output is not None else None
    vocab = load_vocabulary(profile)
    salt_bytes, salt_source = resolve_salt(salt, out_path.parent if out_path is not None else None)
    pseudo = Pseudonymizer(salt_bytes, keep_uids)
    meta = IndexMeta(
        profile=str(vocab.profile), axes=list(vocab.labels), source=address.display, layout=address.protocol,
        keep_uids=keep_uids, salt_fingerprint=pseudo.fingerprint, vocab_fingerprint=vocabulary_fingerprint(vocab),
        version=__version__, source_key=pseudo.source_key(address.display),
        extra={"kind": "census", "level": level, "modality": modalities, "study_date": dates.query_value()},
    )
    budget = QueryBudget(max_queries)
    own = archive is None
    archive = archive if archive is not None else open_archive(address, workers=workers, limits=limits)
    archive.budget = budget
    try:
        found = survey(archive, vocab, dates=dates, modalities=modalities, query_cap=query_cap, workers=workers,
                       progress=progress)
        warnings = list(found.warnings)
        listed = _instance_rows(archive, found.series, workers, warnings, progress) if level == "instance" else 0
        queries = budget.sent or found.queries + listed  # an archive that does not count its queries: estimated
    finally:
        if own:
            archive.close()
    if salt_source == "ephemeral":
        warnings.append("no salt and no output folder: the pseudonyms of this census match no other run")
    rows = census_rows(found.series, pseudo, level)
    schema = row_schema(len(meta.axes), EXTRA_FIELDS)
    table = pa.Table.from_batches([rows_to_batch(rows, schema)], schema=schema)
    if since and out_path is not None:
        kept = _merge_previous(out_path, meta, rows)
        if kept is not None and kept.num_rows:
            table = pa.concat_tables([kept.cast(schema), table]).sort_by("path")
    if out_path is not None:
        with open_index_writer(out_path, meta, extra_fields=EXTRA_FIELDS) as writer:
            writer.write(table)
    builder = SummaryBuilder()
    builder.add(table)
    builder.warnings.extend(warnings)
    frame = None
    if return_frame:
        frame = read_index(out_path) if out_path is not None else table_to_frame(table)
        frame.attrs.update(axes=list(meta.axes), profile=meta.profile)
    instances = int(sum(r or 0 for r in table["instances"].to_pylist()))
    return CensusResult(frame, builder.result(), out_path, meta, len(found.series), instances, queries,
                        time.perf_counter() - started, salt_source, warnings)


def census(
    source: str, output: str | os.PathLike[str] | None = None, *, profile: str = "radimagenet",
    level: str = "series", modality: str | Sequence[str] | None = None, study_date: str | None = None,
    since: str | None = None, salt: str | bytes | None = None, keep_uids: bool = False,
    calling_aet: str = "MODAN", ca_bundle: str | None = None, query_cap: int | None = None, workers: int = 4,
    progress: Progress | None = None, max_queries: int = DEFAULT_MAX_QUERIES, limits: Limits | None = None,
) -> Any:
    """Census of a live archive: one row per series (or per instance) with the file index's columns.

    source: ``http(s)://…/dicom-web`` or ``dimse://CALLED_AET@HOST:PORT`` (credentials from the environment,
    see `modan_dicom.pacs.address`). output: Parquet file to write atomically (None: in memory only).
    profile: vocabulary profile for `multi_hot`. level: "series" or "instance". modality: DICOM Modality
    codes to keep ("CT" or ["CT", "MR"]). study_date: "FROM-TO" (YYYYMMDD or YYYY-MM-DD; a side may be empty).
    since: keep studies from this date on and add them to the census already at `output` (an incremental
    census). salt / keep_uids: the pseudonyms, as the file index. calling_aet / ca_bundle: DIMSE calling AE
    title / PEM bundle for https. query_cap: the archive's limit on matches per query when known (answers
    that large are split; by default any answer of 100 or more is checked). workers: concurrent queries.
    progress(done, total): called as series are looked at. max_queries: the most queries the census may send
    (QIDO-RS requests, pages included, and C-FINDs; default 200,000): more ends it with a PacsError, the bound
    on an archive that answers in circles. limits: the bounds on each request (`modan_dicom.pacs.archive.
    Limits`: a total deadline of 300 s, JSON answers of 64 MiB nested 40 deep, redirects to the archive's own
    host only).

    Returns a pandas DataFrame (columns of `modan_dicom.ingest.schema` plus ``instances``); no names, IDs or
    dates finer than the month. Raises PacsError (unreachable archive, rejected association, HTTP 401/403,
    malformed answers, a request past its deadline or size cap, repeated pages, studies outside the asked
    date range, max_queries spent), ConfigError, OutputError.
    """
    return run_census(source, output, profile=profile, level=level, modality=modality, study_date=study_date,
                      since=since, salt=salt, keep_uids=keep_uids, calling_aet=calling_aet, ca_bundle=ca_bundle,
                      query_cap=query_cap, workers=workers, progress=progress, max_queries=max_queries,
                      limits=limits).frame
