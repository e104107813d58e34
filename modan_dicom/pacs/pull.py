"""Pull a de-identified training set from an archive: K instances of every series the profile can label.

For each series the census labels ``ok`` (taken from a census file, or from a fresh survey of the archive),
the middle K instances by Instance Number (asked for by number; the series listed whole only where its
numbering is not 1..N) are retrieved concurrently, de-identified on arrival (DICOM PS3.15
Annex E, `deidentify.py`), stamped with the evidence of the census's labels (Modality, Body Part Examined,
Anatomic Region Sequence), and written atomically to ``OUT/<patient_key>/<study_key>/<series_key>/
<instance_key>.dcm`` — names made of the keyed pseudonyms of the archive's identifiers, so a pull run
again finds what it already has and fetches only what is missing. The pull ends by indexing OUT into
``OUT/index.parquet``.

An instance counts only once it arrived whole (`instance.whole_instance`: its encoding ends where its last
element does, it parses, its pixel data are all there); anything else is an ``error`` row, nothing is
written, and the next run asks for it again. `PullResult.missing` counts what the pull asked for and does not
have at the end (the CLI exits with status 1 when it is not 0).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, claim_folder, write_text
from ..errors import ConfigError, OutputError
from ..ingest.index import load_vocabulary
from ..ingest.pseudonym import MARKER_PREFIX, Pseudonymizer, resolve_salt
from ..ingest.schema import read_index, read_index_meta
from .address import parse_address
from .archive import (
    DEFAULT_MAX_QUERIES,
    Archive,
    Limits,
    QueryBudget,
    integer,
    no_uids,
    numbered_instances,
    one_line,
    open_archive,
    text,
)
from .census import SeriesItem, date_range, parse_modalities, survey

PULL_FILE = MARKER_PREFIX + "pull.json"
INDEX_NAME = "index.parquet"
Progress = Callable[[int, "int | None"], None]


def middle(instances: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The `k` middle instances by Instance Number (instances without one sort last, then by UID)."""
    ordered = sorted(instances, key=lambda r: (integer(r.get("InstanceNumber")) is None,
                                               integer(r.get("InstanceNumber")) or 0, str(r.get("SOPInstanceUID"))))
    if k >= len(ordered):
        return ordered
    start = (len(ordered) - k) // 2
    return ordered[start:start + k]


@dataclass
class _Job:
    item: SeriesItem
    instance: dict[str, Any]
    path: str  # relative to OUT


@dataclass
class PullResult:
    """What `run_pull` did: `frame` has one row per instance asked for (or per series that failed before
    that): path (relative to OUT), series_key, instance_key, modality, anatomy, status ("pulled", "present",
    "error"), error. `index` is OUT/index.parquet as a DataFrame. `errors` counts the error rows: instances
    that could not be retrieved whole, and series whose instances could not be listed; `missing` is that
    count (what the pull asked for and does not have; 0: the pull is complete)."""

    frame: Any
    index: Any
    out: Path
    series: int
    pulled: int
    present: int
    errors: int
    seconds: float
    deidentified: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Instances (or whole series) asked for and not in OUT at the end: run the pull again to retry them."""
        return self.errors


def _is_pull_folder(root: Path) -> bool:
    return (root / PULL_FILE).is_file()


def _remove_stale_temporaries(root: Path) -> int:
    """Delete the half-written files a killed pull left behind in any folder under `root` (atomic
    writes' temporaries whose writer is gone; never those of a live writer)."""
    from ..atomic import remove_stale_temps

    return sum(remove_stale_temps(folder) for folder, _, _ in os.walk(root))


def _census_selection(census_path: str | os.PathLike[str], fingerprint: str) -> dict[str, tuple[str, str]]:
    """series_key -> (modality, anatomy) of the `ok` series of a census file made with the same salt."""
    meta = read_index_meta(census_path)
    if meta.extra.get("kind") != "census":
        raise ConfigError(f"{census_path} is not a census (make one with `modan-dicom index URL -o FILE`)")
    if meta.salt_fingerprint != fingerprint:
        raise ConfigError(f"{census_path} was made with another salt: give the same --salt (or MODAN_SALT) as the census")
    frame = read_index(census_path, columns=["status", "series_key", "modality", "anatomy"])
    ok = frame[frame["status"] == "ok"]
    return {str(k): (m, a) for k, m, a in zip(ok["series_key"], ok["modality"], ok["anatomy"])}


def run_pull(
    source: str, out: str | os.PathLike[str], *, per_series: int = 1, profile: str = "radimagenet",
    modality: str | Sequence[str] | None = None, study_date: str | None = None, census: str | None = None,
    workers: int = 4, deidentify: bool = True, salt: str | bytes | None = None, calling_aet: str = "MODAN",
    ca_bundle: str | None = None, query_cap: int | None = None, progress: Progress | None = None,
    archive: Archive | None = None, max_queries: int = DEFAULT_MAX_QUERIES, limits: Limits | None = None,
) -> PullResult:
    """Pull from the archive at `source` into `out` (see `pull`); returns a `PullResult`."""
    started = time.perf_counter()
    if per_series < 1:
        raise ConfigError(f"--per-series must be at least 1 (got {per_series})")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")
    address = parse_address(source, calling_aet=calling_aet, ca_bundle=ca_bundle)
    modalities = parse_modalities(modality)
    dates = date_range(study_date)
    root = Path(out).resolve()
    if census is not None and not Path(census).is_file():
        raise ConfigError(f"--census {census}: no such file")
    resumed = claim_folder(root, _is_pull_folder, "modan-dicom pull folder")
    settings = {"source": address.display, "profile": profile, "per_series": per_series,
                "deidentified": deidentify, "verified": True}
    unverified = False  # files written by a pull that did not check instances yet (checked once, below)
    if resumed:
        try:
            previous = json.loads((root / PULL_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{root / PULL_FILE} is unreadable ({type(exc).__name__}); "
                              "pull into another folder") from None
        if not isinstance(previous, dict):
            raise ConfigError(f"{root / PULL_FILE} is not a pull's settings; pull into another folder")
        unverified = previous.get("verified") is not True
        if previous.get("deidentified") != deidentify:
            raise ConfigError(f"{root} holds a pull made with{'out' if deidentify else ''} de-identification; "
                              "pull into another folder")
        _remove_stale_temporaries(root)
    write_text(root / PULL_FILE, json.dumps(settings, indent=2) + "\n")
    salt_bytes, _ = resolve_salt(salt, Path(census).resolve().parent if census is not None else root)
    pseudo = Pseudonymizer(salt_bytes)
    vocab = load_vocabulary(profile)
    selection = _census_selection(census, pseudo.fingerprint) if census is not None else None
    deidentifier = None
    if deidentify:
        from .deidentify import Deidentifier

        deidentifier = Deidentifier(salt_bytes)

    own = archive is None
    archive = archive if archive is not None else open_archive(address, workers=workers, limits=limits)
    archive.budget = QueryBudget(max_queries)
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    try:
        found = survey(archive, vocab, dates=dates, modalities=modalities, query_cap=query_cap, workers=workers)
        warnings.extend(found.warnings)
        chosen: list[SeriesItem] = []
        for item in found.series:
            key = _series_key(pseudo, item)
            if selection is not None:
                if key not in selection:
                    continue
                item.census_labels = selection[key]
            elif item.status != "ok":
                continue
            chosen.append(item)
        jobs = _plan(archive, chosen, pseudo, per_series, workers, rows)
        if unverified:
            _drop_incomplete(root, jobs)
        todo = [job for job in jobs if not (root / job.path).is_file()]
        for job in jobs:
            if (root / job.path).is_file():
                rows.append(_result(job, pseudo, "present"))
        if progress is not None:
            progress(0, len(todo))

        def fetch(job: _Job) -> dict[str, Any]:
            try:
                _fetch(archive, job, root, deidentifier, vocab)
            except Exception as exc:  # noqa: BLE001 - one failing instance must not stop the pull
                uids = (*job.item.uids, text(job.instance.get("SOPInstanceUID")))
                return _result(job, pseudo, "error", no_uids(one_line(exc), uids))
            return _result(job, pseudo, "pulled")

        with ThreadPoolExecutor(workers, thread_name_prefix="modan-pull") as pool:
            for done, row in enumerate(pool.map(fetch, todo), 1):
                rows.append(row)
                if progress is not None:
                    progress(done, len(todo))
    finally:
        if own:
            archive.close()

    import pandas as pd

    from ..ingest.index import build_index

    frame = pd.DataFrame(rows, columns=["path", "series_key", "instance_key", "modality", "anatomy", "status",
                                        "error"]).sort_values("path", kind="stable").reset_index(drop=True)
    index = build_index(root, root / INDEX_NAME, profile=profile, salt=salt_bytes)
    counts = frame["status"].value_counts()
    return PullResult(frame, index, root, len({r["series_key"] for r in rows}), int(counts.get("pulled", 0)),
                      int(counts.get("present", 0)), int(counts.get("error", 0)), time.perf_counter() - started,
                      deidentify, warnings)


def _labels_of(item: SeriesItem) -> tuple[str | None, str | None]:
    if item.census_labels is not None:
        return item.census_labels
    return item.labels.modality, item.labels.anatomy


def _series_key(pseudo: Pseudonymizer, item: SeriesItem) -> str | None:
    return pseudo.key("series", text(item.record.get("SeriesInstanceUID")))


def _result(job: _Job, pseudo: Pseudonymizer, status: str, error: str | None = None) -> dict[str, Any]:
    modality, anatomy = _labels_of(job.item)
    return {"path": job.path, "series_key": _series_key(pseudo, job.item),
            "instance_key": pseudo.key("instance", text(job.instance.get("SOPInstanceUID"))),
            "modality": modality, "anatomy": anatomy, "status": status, "error": error}


def _middle_numbers(count: int, k: int) -> list[int]:
    """The Instance Numbers `middle` picks from a series numbered 1..count."""
    start = (count - k) // 2 + 1
    return list(range(start, start + k))


def _pick(archive: Archive, item: SeriesItem, per_series: int) -> list[dict[str, Any]]:
    """The middle `per_series` instances of a series. Where the census counted more instances than that,
    they are asked for by number (1..N assumed); otherwise, or where the numbers do not match exactly one
    instance each, the series is listed whole and `middle` picks from the listing."""
    count = integer(item.record.get("NumberOfSeriesRelatedInstances"))
    if count is not None and count > per_series:
        numbered = numbered_instances(archive, *item.uids, _middle_numbers(count, per_series))
        if numbered is not None:
            return numbered
    return middle(archive.series_instances(*item.uids).records, per_series)


def _plan(archive: Archive, chosen: list[SeriesItem], pseudo: Pseudonymizer, per_series: int, workers: int,
          rows: list[dict[str, Any]]) -> list[_Job]:
    """Pick each chosen series' instances (concurrently); a series whose query fails becomes an error row."""
    def planned(item: SeriesItem) -> list[_Job] | str:
        try:
            instances = _pick(archive, item, per_series)
        except Exception as exc:  # noqa: BLE001
            return no_uids(one_line(exc), item.uids)
        record = item.record
        folder = "/".join(str(pseudo.key(kind, text(record.get(keyword)))) for kind, keyword in
                          (("patient", "PatientID"), ("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID")))
        return [_Job(item, instance, f"{folder}/{pseudo.key('instance', text(instance.get('SOPInstanceUID')))}.dcm")
                for instance in instances if instance.get("SOPInstanceUID")]

    jobs: list[_Job] = []
    with ThreadPoolExecutor(workers) as pool:
        for item, plan in zip(chosen, pool.map(planned, chosen)):
            if isinstance(plan, str):
                modality, anatomy = _labels_of(item)
                rows.append({"path": None, "series_key": _series_key(pseudo, item), "instance_key": None,
                             "modality": modality, "anatomy": anatomy, "status": "error",
                             "error": f"instance query: {plan}"})
            else:
                jobs.extend(plan)
    return jobs


def _drop_incomplete(root: Path, jobs: Sequence[_Job]) -> None:
    """Delete the files of `jobs` that are not whole instances (a pull before instances were checked could
    keep one cut short), so that they are fetched again."""
    from .instance import Incomplete, whole_instance

    for job in jobs:
        path = root / job.path
        try:
            whole_instance(path.read_bytes())
        except FileNotFoundError:
            continue
        except (Incomplete, OSError, MemoryError):
            path.unlink(missing_ok=True)


def _fetch(archive: Archive, job: _Job, root: Path, deidentifier: Any, vocab: Any) -> None:
    """Retrieve one instance (whole: `Archive.retrieve` checks it), de-identify and stamp it, and write it
    atomically."""
    from .instance import Incomplete, has_pixels

    study, series = job.item.uids
    sop = str(job.instance.get("SOPInstanceUID"))
    ds = archive.retrieve(study, series, sop, text(job.instance.get("SOPClassUID")))
    if not has_pixels(ds):  # only image series are pulled: one without pixels was cut before them
        raise Incomplete("the instance arrived without pixel data (cut short?)")
    if deidentifier is not None:
        from .deidentify import stamp_labels

        deidentifier.deidentify(ds)
        modality, anatomy = _labels_of(job.item)
        stamp_labels(ds, modality, anatomy, vocab)
    target = root / job.path
    try:
        with atomic_path(target) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc


def pull(
    source: str, out: str | os.PathLike[str], *, per_series: int = 1, profile: str = "radimagenet",
    modality: str | Sequence[str] | None = None, study_date: str | None = None, census: str | None = None,
    workers: int = 4, deidentify: bool = True, salt: str | bytes | None = None, calling_aet: str = "MODAN",
    ca_bundle: str | None = None, query_cap: int | None = None, progress: Progress | None = None,
    max_queries: int = DEFAULT_MAX_QUERIES, limits: Limits | None = None,
) -> Any:
    """Pull a de-identified training set from a live archive into `out`; returns the pull as a DataFrame.

    source: ``http(s)://…/dicom-web`` or ``dimse://CALLED_AET@HOST:PORT``. out: a new folder, or one a
    previous pull wrote (only what is missing is fetched). per_series: instances per series (the middle ones
    by Instance Number). profile: the vocabulary profile deciding which series are wanted. modality /
    study_date: filters, as `census`. census: a census file (`census(..., output=...)`) whose ``ok`` series
    are the ones pulled (made with the same salt). workers: concurrent retrievals. deidentify: False keeps
    the files as the archive sends them (the CLI warns). salt: keys the pseudonyms and the UID replacement
    (else $MODAN_SALT, else ``.modan-salt`` beside the census or in `out`). max_queries / limits: as `census`
    (the queries of the survey and of picking instances count; retrievals do not; an instance may be
    `Limits.max_instance_bytes`, 1 GiB, at most).

    Returns one row per instance asked for: path (relative to `out`), series_key, instance_key, modality,
    anatomy, status ("pulled", "present", "error"), error. `out/index.parquet` is the index of `out`. An
    instance that arrived cut short or does not parse is an "error" row and is asked for again next time.
    """
    return run_pull(source, out, per_series=per_series, profile=profile, modality=modality, study_date=study_date,
                    census=census, workers=workers, deidentify=deidentify, salt=salt, calling_aet=calling_aet,
                    ca_bundle=ca_bundle, query_cap=query_cap, progress=progress, max_queries=max_queries,
                    limits=limits).frame
