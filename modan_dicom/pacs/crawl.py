"""Complete answers from archives that cap the number of matches.

Many archives stop a query at a fixed number of matches (Orthanc's ``LimitFindResults``; many PACS stop at
500 or 1,000), often silently. `complete_search` takes one query over a Study Date range and, whenever the
answer is large enough to have been cut (at least `suspect_at` records) or the archive said it was
(C-FIND Cancel, a DICOMweb Warning), splits the range at the median Study Date of what came back and asks
again for each part:

- every part non-empty and their counts adding up to the whole answer: the whole answer was complete;
- otherwise the parts are checked in turn (recursively) and their union, with the whole answer, is kept.

A one-day range that still looks cut cannot be split further: a warning says so, with the day.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .archive import Answer, DateRange, by_uid

EARLIEST = "19000101"


def _day(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y%m%d").date()


def _text(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _dates(records: list[dict[str, Any]]) -> list[str]:
    found = set()
    for record in records:
        value = str(record.get("StudyDate") or "").strip()[:8]
        if len(value) == 8 and value.isdigit():
            found.add(value)
    return sorted(found)


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
    thread-safe when > 1); queries: how many were sent; warnings: what may still be missing.
    """

    def __init__(self, search: Callable[[DateRange], Answer], *, key: str, suspect_at: int = 100,
                 today: dt.date | None = None, workers: int = 1) -> None:
        self.search = search
        self.key = key
        self.suspect_at = max(1, suspect_at)
        self.today = today or dt.date.today()
        self.workers = max(1, workers)
        self._count = threading.Lock()
        self.queries = 0
        self.capped = False  # an answer was shown to be cut
        self.warnings: list[str] = []

    def _ask(self, dates: DateRange) -> Answer:
        with self._count:
            self.queries += 1
        return self.search(dates)

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
