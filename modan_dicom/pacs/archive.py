"""What the census and the pull need from an archive, whatever the protocol.

An `Archive` answers three questions and retrieves one thing:

- `find_series(query)`: the series of the studies whose Study Date falls in the query's range (one query:
  the crawl in `crawl.py` splits it when the archive caps the number of matches);
- `series_instances(study, series, instance_number=None)`: the instances of one series (SOP Instance UID,
  Instance Number, SOP Class), or only those with one Instance Number;
- `instance_metadata(study, series, sop)`: the header of one instance, without bulk data;
- `retrieve(study, series, sop, sop_class)`: the instance itself, a pydicom Dataset (the SOP Class UID, when
  known, lets DIMSE negotiate for it without asking first).

Every request is bounded (`Limits`: a total deadline per request, answer sizes, JSON nesting) and every
query a run sends is counted against its `QueryBudget`, so that a broken or hostile archive ends a run with
one line (a `PacsError`) instead of hanging it.

Answers are *records*: plain dicts keyed by DICOM keyword (``"Modality"``, ``"BodyPartExamined"`` …), the
values as `resolve_labels` takes them (strings, lists for multiple values, lists of dicts for sequences),
so that the same label code serves files, DICOMweb and DIMSE.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
DEFAULT_MAX_QUERIES = 200_000
_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1  # the range of an IS value (PS3.5 6.2): Rows, counts, numbers


@dataclass(frozen=True)
class Limits:
    """Bounds on one request to an archive.

    deadline_s: seconds one request may take in all, connecting, waiting and reading included (the socket
    timeout `timeout_s` of `open_archive` bounds each wait on its own); max_json_bytes / max_instance_bytes:
    the largest JSON answer (a QIDO-RS page, an instance's metadata) / instance retrieved; max_json_depth:
    the deepest nesting of arrays and objects a JSON answer may have (DICOM JSON needs 3 per sequence level);
    max_redirects: redirects followed per request (to the archive's own host, unless `redirects_off_host`).
    """

    deadline_s: float = 300.0
    max_json_bytes: int = 64 * 2 ** 20
    max_instance_bytes: int = 2 ** 30
    max_json_depth: int = 40
    max_redirects: int = 5
    redirects_off_host: bool = False


class QueryBudget:
    """How many queries (QIDO-RS requests, pages included; C-FINDs) one run may still send (thread-safe)."""

    def __init__(self, limit: int = DEFAULT_MAX_QUERIES) -> None:
        if limit < 1:
            from ..errors import ConfigError

            raise ConfigError(f"max_queries must be at least 1 (got {limit})")
        self.limit = limit
        self.sent = 0
        self._lock = threading.Lock()

    def spend(self, where: str) -> None:
        """Count one query; PacsError once the run has sent `limit` of them."""
        with self._lock:
            if self.sent >= self.limit:
                raise PacsError(f"{where}: stopped after {self.limit:,} queries (max_queries): the archive keeps "
                                "answering in ways that need more queries than it should; give a larger "
                                "max_queries if it really holds that much")
            self.sent += 1


class Malformed(ValueError):
    """An answer that is not what the protocol says (the message names what is wrong, never a value)."""


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
    limits: Limits = Limits()
    budget: QueryBudget | None = None  # set by a run (census, pull): every query counts against it

    def spend(self) -> None:
        """Count one query against the run's budget (see `QueryBudget`)."""
        if self.budget is not None:
            self.budget.spend(self.address.display)

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


def open_archive(address: ArchiveAddress, *, timeout_s: float = 30.0, workers: int = 4,
                 limits: Limits | None = None) -> Archive:
    """A client for `address` (DICOMweb or DIMSE); `workers`: concurrent queries it may run by itself;
    `timeout_s`: the longest wait for any one answer or packet; `limits`: see `Limits`."""
    if address.protocol == "dicomweb":
        from .dicomweb import DicomwebArchive

        return DicomwebArchive(address, timeout_s=timeout_s, limits=limits)
    from .dimse import DimseArchive

    return DimseArchive(address, timeout_s=timeout_s, workers=workers, limits=limits)


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


_SCALAR = (str, int, float)


def json_to_record(item: Any) -> dict[str, Any]:
    """DICOM JSON (PS3.18 F.2, one dataset) -> record keyed by keyword (unknown and private tags dropped).

    Raises `Malformed` when the answer does not follow F.2 (a key that is not a tag, an attribute that is not
    an object, a Value that is not an array of the VR's kind of values)."""
    from pydicom.datadict import keyword_for_tag

    if not isinstance(item, Mapping):
        raise Malformed("a dataset is not a JSON object")
    record: dict[str, Any] = {}
    for tag, element in item.items():
        if not isinstance(tag, str) or len(tag) != 8:
            raise Malformed("a key is not a DICOM tag")
        try:
            keyword = keyword_for_tag(int(tag, 16))
        except ValueError:
            raise Malformed("a key is not a DICOM tag") from None
        if not keyword:
            continue
        if not isinstance(element, Mapping):
            raise Malformed("an attribute is not a JSON object")
        values = element.get("Value")
        if values is None or values == []:
            record[keyword] = None
            continue
        if not isinstance(values, list):
            raise Malformed("a Value is not a JSON array")
        vr = element.get("vr")
        if vr == "SQ":
            record[keyword] = [json_to_record(v) for v in values if v is not None]
            continue
        if vr == "PN":
            values = [v.get("Alphabetic") if isinstance(v, Mapping) else v for v in values]
        if not all(v is None or (isinstance(v, _SCALAR) and not isinstance(v, bool)) for v in values):
            raise Malformed(f"a {keyword} value is not a string or a number")
        record[keyword] = values[0] if len(values) == 1 else list(values)
    return record


_UID_LIKE = re.compile(r"(?<![\w.])[0-2](?:\.\d+){2,}(?![\w.])")


def no_uids(message: str, uids: Iterable[str | None] = ()) -> str:
    """`message` without the given UIDs, nor anything shaped like a UID but a host's address (an error
    from deep inside a library may quote a request's path): each becomes ``…``."""
    for uid in uids:
        if uid:
            message = message.replace(str(uid), "…")

    def keep_addresses(match: re.Match[str]) -> str:
        parts = match[0].split(".")
        return match[0] if len(parts) == 4 and all(len(p) <= 3 for p in parts) else "…"

    return _UID_LIKE.sub(keep_addresses, message)


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
    """A record value as an int (IS strings included), None when absent, not a number, or outside the range
    of an IS value (-2^31 .. 2^31 - 1: what no count, size or number in a census can exceed)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, bool):
        return None
    given = str(value).strip()
    if len(given) > 40:
        return None  # no IS or DS value is that long (and int() of a long string costs)
    try:
        number = int(given)
    except ValueError:
        try:
            number = int(float(given))
        except (ValueError, OverflowError):  # "abc", "nan", "inf", "1e999"
            return None
    return number if _INT_MIN <= number <= _INT_MAX else None


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
