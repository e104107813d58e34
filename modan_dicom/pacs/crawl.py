"""Complete answers from archives that cap the number of matches.

Many archives stop a query at a fixed number of matches (Orthanc's ``LimitFindResults``; many PACS stop at
500 or 1,000), often silently. `complete_search` takes one query over a Study Date range and, whenever the
answer is large enough to have been cut (at least `suspect_at` records) or the archive said it was
(C-FIND Cancel, a DICOMweb Warning), splits the range at the median Study Date of what came back and asks
again for each part:

- every part non-empty and their counts adding up to the whole answer: the whole answer was complete;
- otherwise the parts are checked in turn (recursively) and their union, with the whole answer, is kept.

A one-day range that still looks cut cannot be split further: a warning says so, with the day.

An answer holding a study dated outside the range it was asked for shows an archive that ignores the date
filter: splitting could never end, so the crawl stops with a `PacsError`. (Study Dates that are not calendar
dates are ignored: they neither guide a split nor count as outside.)
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import PacsError
from .archive import Answer, DateRange, by_uid

EARLIEST = "19000101"


def _day(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y%m%d").date()


def _calendar_day(value: Any) -> str | None:
    """The YYYYMMDD Study Date of a record value, None unless it is a calendar date."""
    text = str(value or "").strip()[:8]
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        _day(text)
    except ValueError:
        return None
    return text


def _text(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _dates(records: list[dict[str, Any]]) -> list[str]:
    return sorted({day for record in records if (day := _calendar_day(record.get("StudyDate")))})


def split_range(dates: DateRange, seen: list[str], today: dt.date) -> list[DateRange]:
    """Parts of `dates` (closed, YYYYMMDD) cut at the median of the Study Dates seen (so that, when they
    differ, every part holds some of them); [] when the range is a single day."""
    start = _day(dates.start or EARLIEST)
    end = _day(dates.end) if dates.end else today
    if end <= start:
        return []
    inside = [_day(d) for d in seen if start <= _day(d) <= end]
    if len(set(inside)) >= 2:
        distinct = sorted(set(inside))
        cut = distinct[(len(distinct) - 1) // 2]
        return [DateRange(_text(start), _text(cut)), DateRange(_text(cut + dt.timedelta(days=1)), _text(end))]
    if inside:  # one date seen: that day alone, and what lies on either side of it
        day = inside[0]
        parts = [(start, day - dt.timedelta(days=1)), (day, day), (day + dt.timedelta(days=1), end)]
    else:
        middle = start + (end - start) // 2
        parts = [(start, middle), (middle + dt.timedelta(days=1), end)]
    return [DateRange(_text(a), _text(b)) for a, b in parts if a <= b]


class Crawl:
    """Runs `search(DateRange) -> Answer` until every answer is complete (see the module docstring).

    key: the UID that identifies a record (SeriesInstanceUID or StudyInstanceUID); suspect_at: answers with at
    least this many records are checked; workers: the parts of a split range asked at once (`search` must be
    thread-safe when > 1); where: the archive, as messages name it; queries: how many were sent; warnings:
    what may still be missing.
    """

    def __init__(self, search: Callable[[DateRange], Answer], *, key: str, suspect_at: int = 100,
                 today: dt.date | None = None, workers: int = 1, where: str = "the archive") -> None:
        self.search = search
        self.key = key
        self.suspect_at = max(1, suspect_at)
        self.today = today or dt.date.today()
        self.workers = max(1, workers)
        self.where = where
        self._count = threading.Lock()
        self.queries = 0
        self.capped = False  # an answer was shown to be cut
        self.warnings: list[str] = []

    def _ask(self, dates: DateRange) -> Answer:
        with self._count:
            self.queries += 1
        answer = self.search(dates)
        if dates.start or dates.end:
            low, high = dates.start or "00000000", dates.end or "99999999"
            if any(not low <= day <= high for day in _dates(answer.records)):
                raise PacsError(f"{self.where}: the archive answered studies outside the Study Date range asked "
                                "for (it ignores the date filter), so its answers cannot be split by date")
        return answer

    def _ask_all(self, parts: list[DateRange]) -> list[Answer]:
        if self.workers == 1 or len(parts) == 1:
            return [self._ask(part) for part in parts]
        with ThreadPoolExecutor(min(self.workers, len(parts)), thread_name_prefix="modan-crawl") as pool:
            return list(pool.map(self._ask, parts))

    def run(self, dates: DateRange) -> list[dict[str, Any]]:
        """Every record whose Study Date lies in `dates` (and, for an open range, those without a date)."""
        return list(by_uid(self._complete(dates, self._ask(dates)), self.key))

    def _complete(self, dates: DateRange, answer: Answer) -> list[dict[str, Any]]:
        records = answer.records
        if answer.truncated is not True and len(records) < self.suspect_at:
            return records
        parts = split_range(dates, _dates(records), self.today)
        if not parts:
            if answer.truncated or self.capped:
                self.warnings.append(
                    f"the answer for {dates.start} may be truncated at {len(records)} matches "
                    "(the archive caps a query and one day cannot be split further)")
            return records
        answers = self._ask_all(parts)
        counts = [len(a.records) for a in answers]
        if (answer.truncated is not True and not any(a.truncated for a in answers)
                and all(counts) and sum(counts) == len(records)):
            return records
        if sum(counts) > len(records) or answer.truncated:
            self.capped = True
        merged = list(records)
        for part, part_answer in zip(parts, answers):
            merged.extend(self._complete(part, part_answer))
        return merged
