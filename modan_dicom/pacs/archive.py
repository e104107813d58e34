"""What the census and the pull need from an archive, whatever the protocol.

An `Archive` answers three questions and retrieves one thing:

- `find_series(query)`: the series of the studies whose Study Date falls in the query's range (one query:
  the crawl in `crawl.py` splits it when the archive caps the number of matches);
- `series_instances(study, series, instance_number=None)`: the instances of one series (SOP Instance UID,
  Instance Number, SOP Class), or only those with one Instance Number;
- `instance_metadata(study, series, sop)`: the header of one instance, without bulk data;
- `retrieve(study, series, sop, sop_class)`: the instance itself, a pydicom Dataset (the SOP Class UID, when
  known, lets DIMSE negotiate for it without asking first).

Answers are *records*: plain dicts keyed by DICOM keyword (``"Modality"``, ``"BodyPartExamined"`` …), the
values as `resolve_labels` takes them (strings, lists for multiple values, lists of dicts for sequences),
so that the same label code serves files, DICOMweb and DIMSE.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import PacsError
from .address import ArchiveAddress

# Series-level attributes asked for in a census (study-level ones included: QIDO-RS /series returns them).
SERIES_FIELDS = (
    "StudyInstanceUID", "SeriesInstanceUID", "PatientID", "StudyDate", "StudyDescription",
    "Modality", "BodyPartExamined", "SeriesDescription", "ProtocolName", "Laterality",
    "Manufacturer", "ManufacturerModelName", "NumberOfSeriesRelatedInstances", "SeriesNumber",
    "PatientName", "PatientBirthDate",  # never kept: what the census scrubs out of the texts (ingest/scrub.py)
)
INSTANCE_FIELDS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames",
                   "ImageLaterality", "ViewPosition")

T = TypeVar("T")


@dataclass(frozen=True)
class DateRange:
    """Inclusive Study Date range, as YYYYMMDD strings; None: open on that side."""

    start: str | None = None
    end: str | None = None

    def query_value(self) -> str | None:
        """The DICOM range-matching value ("20200101-20201231", "20200101-", "-20201231"), or None."""
        if self.start is None and self.end is None:
            return None
        return f"{self.start or ''}-{self.end or ''}"


@dataclass(frozen=True)
class SeriesQuery:
    """One series query: a Study Date range and at most one Modality code."""

    dates: DateRange = field(default_factory=DateRange)
    modality: str | None = None


@dataclass
class Answer:
    """The records of one query; `truncated`: True when the archive said it stopped early (C-FIND Cancel, a
    DICOMweb Warning), False when it said the answer is complete, None when it cannot be told."""

    records: list[dict[str, Any]]
    truncated: bool | None = None


class Archive:
    """Base of the protocol clients (`DicomwebArchive`, `DimseArchive`): retries and error wording."""

    address: ArchiveAddress
    retries: int = 4
    backoff_s: float = 0.5

    def find_series(self, query: SeriesQuery) -> Answer:  # pragma: no cover - abstract
        raise NotImplementedError

    def series_instances(self, study_uid: str, series_uid: str,
                         instance_number: int | None = None) -> Answer:  # pragma: no cover - abstract
        raise NotImplementedError

    def instance_metadata(self, study_uid: str, series_uid: str, sop_uid: str) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def retrieve(self, study_uid: str, series_uid: str, sop_uid: str,
                 sop_class: str | None = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (idempotent)."""

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def with_retries(self, action: Callable[[], T], what: str, transient: Callable[[BaseException], bool]) -> T:
        """Run `action`, retrying transient failures with exponential backoff (0.5 s, 1 s, 2 s, 4 s)."""
        for attempt in range(self.retries + 1):
            try:
                return action()
            except Exception as exc:
                if attempt == self.retries or not transient(exc):
                    raise
                time.sleep(self.backoff_s * (2 ** attempt))
        raise PacsError(f"{self.address.display}: {what} failed")  # pragma: no cover - loop returns or raises


def open_archive(address: ArchiveAddress, *, timeout_s: float = 30.0, workers: int = 4) -> Archive:
    """A client for `address` (DICOMweb or DIMSE); `workers`: concurrent queries it may run by itself."""
    if address.protocol == "dicomweb":
        from .dicomweb import DicomwebArchive

        return DicomwebArchive(address, timeout_s=timeout_s)
    from .dimse import DimseArchive

    return DimseArchive(address, timeout_s=timeout_s, workers=workers)


# ---- values -> records -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A pydicom element value as a plain Python value (str, int, float, list, list of dicts)."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.valuerep import PersonName

    if isinstance(value, DicomSequence):
        return [dataset_to_record(item) for item in value]
    if isinstance(value, MultiValue | list | tuple):
        items = [_plain(v) for v in value]
        return items if len(items) != 1 else items[0]
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bytes):
        return None  # binary values are never needed here
    if hasattr(value, "real") and not isinstance(value, bool):  # DSfloat / IS / int / float
        return int(value) if float(value).is_integer() and not isinstance(value, float) else float(value)
    return value if value != "" else None


def dataset_to_record(ds: Any) -> dict[str, Any]:
    """pydicom Dataset (a C-FIND identifier, a header) -> record keyed by keyword (no bulk data)."""
    record: dict[str, Any] = {}
    for element in ds:
        if not element.keyword or element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
            continue
        record[element.keyword] = _plain(element.value)
    return record


def json_to_record(item: Mapping[str, Any]) -> dict[str, Any]:
    """DICOM JSON (PS3.18 F.2, one dataset) -> record keyed by keyword (unknown and private tags dropped)."""
    from pydicom.datadict import keyword_for_tag

    record: dict[str, Any] = {}
    for tag, element in item.items():
        try:
            keyword = keyword_for_tag(int(tag, 16))
        except (TypeError, ValueError):
            raise PacsError(f"malformed DICOM JSON: {str(tag)[:20]!r} is not a tag") from None
        if not keyword or not isinstance(element, Mapping):
            continue
        values = element.get("Value")
        if not values:
            record[keyword] = None
            continue
        vr = element.get("vr")
        if vr == "SQ":
            record[keyword] = [json_to_record(v) for v in values if isinstance(v, Mapping)]
            continue
        if vr == "PN":
            values = [v.get("Alphabetic") if isinstance(v, Mapping) else v for v in values]
        record[keyword] = values[0] if len(values) == 1 else list(values)
    return record


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type when empty), cut to `limit` characters."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return message if len(message) <= limit else message[:limit - 3] + "..."


def text(value: Any) -> str | None:
    """A record value as one string (multiple values joined by backslash), None when empty."""
    if value is None:
        return None
    if isinstance(value, list):
        value = "\\".join(str(v) for v in value if v is not None)
    value = str(value).strip()
    return value or None


def integer(value: Any) -> int | None:
    """A record value as an int (IS strings included), None when absent or not a number."""
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        try:
            return int(float(str(value)))
        except ValueError:
            return None


def until_complete(ask: Callable[[], Answer], expected: int | None, tries: int = 3) -> Answer:
    """`ask()` again (up to `tries` in all) while its answer holds fewer records than the archive counted
    (`expected`, e.g. a series' NumberOfSeriesRelatedInstances) and says nothing of a cap: pynetdicom 3.0
    can lose a C-FIND pending response under load and still end with Success (pydicom/pynetdicom#875)."""
    answer = ask()
    for _ in range(tries - 1):
        if expected is None or len(answer.records) >= expected or answer.truncated:
            break
        answer = ask()
    return answer


def numbered_instances(archive: Archive, study_uid: str, series_uid: str,
                       numbers: Sequence[int]) -> list[dict[str, Any]] | None:
    """The instances with these Instance Numbers, one query each (an archive reads every file of a series
    to list it, but finds one instance by number from its database); None unless each number matches
    exactly one instance (numbering not 1..N, repeated, or a filter the archive ignores: list them all)."""
    found = []
    for number in numbers:
        records = archive.series_instances(study_uid, series_uid, instance_number=number).records
        if len(records) != 1 or integer(records[0].get("InstanceNumber")) != number:
            return None
        found.append(records[0])
    return found


def by_uid(records: Sequence[Mapping[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    """Records without repeats of `key` (the first kept), in order."""
    seen: set[Any] = set()
    for record in records:
        uid = record.get(key)
        if uid in seen:
            continue
        seen.add(uid)
        yield dict(record)
