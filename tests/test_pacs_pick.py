"""Which instances a pull takes: the middle ones by Instance Number, asked for by number where it can."""

from __future__ import annotations

from typing import Any

import pytest

from modan_dicom.ingest.labels import Labels
from modan_dicom.pacs.archive import Answer, Archive, integer
from modan_dicom.pacs.census import SeriesItem
from modan_dicom.pacs.pull import _pick, middle


class _Series(Archive):
    """One series of numbered instances, answering as an archive does (a filter on Instance Number)."""

    def __init__(self, numbers: list[int | None], ignores_filter: bool = False) -> None:
        self.instances = [{"SOPInstanceUID": f"1.2.{i}", "InstanceNumber": None if n is None else str(n)}
                          for i, n in enumerate(numbers)]
        self.ignores_filter = ignores_filter
        self.listings = 0
        self.by_number = 0

    def series_instances(self, study_uid: str, series_uid: str, instance_number: int | None = None) -> Answer:
        if instance_number is None or self.ignores_filter:
            self.listings += 1
            return Answer(list(self.instances), False)
        self.by_number += 1
        return Answer([r for r in self.instances if integer(r["InstanceNumber"]) == instance_number], False)


def _item(count: int | None) -> SeriesItem:
    record: dict[str, Any] = {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3",
                              "NumberOfSeriesRelatedInstances": None if count is None else str(count)}
    return SeriesItem(record, Labels("MR", "Modality", "knee", "BodyPartExamined", None, True))


def _uids(records: list[dict[str, Any]]) -> list[str]:
    return [r["SOPInstanceUID"] for r in records]


@pytest.mark.parametrize("count,k", [(9, 1), (10, 1), (10, 3), (25, 4), (2, 1)])
def test_numbered_series_are_asked_by_number_and_give_the_middle(count: int, k: int) -> None:
    archive = _Series(list(range(count, 0, -1)))  # 1..count, listed in any order
    picked = _pick(archive, _item(count), k)
    assert _uids(picked) == _uids(middle(archive.instances, k))
    assert archive.listings == 0 and archive.by_number == k
    assert [int(r["InstanceNumber"]) for r in picked] == list(range((count - k) // 2 + 1, (count - k) // 2 + k + 1))


@pytest.mark.parametrize("numbers", [
    [0, 10, 20, 30, 40, 50, 60],  # not 1..N
    [1, 2, 3, 3, 4, 5, 6],  # a repeated number among the wanted ones
    [None, None, None, None, None, None, None],  # no numbers at all
])
def test_other_numbering_falls_back_to_the_whole_listing(numbers: list[int | None]) -> None:
    archive = _Series(numbers)
    picked = _pick(archive, _item(len(numbers)), 2)
    assert _uids(picked) == _uids(middle(archive.instances, 2))
    assert archive.listings == 1


def test_an_archive_that_ignores_the_filter_or_a_series_without_count_is_listed() -> None:
    archive = _Series(list(range(1, 8)), ignores_filter=True)
    assert _uids(_pick(archive, _item(7), 1)) == ["1.2.3"] and archive.listings == 2
    uncounted = _Series(list(range(1, 8)))
    assert _uids(_pick(uncounted, _item(None), 1)) == ["1.2.3"]
    assert uncounted.listings == 1 and uncounted.by_number == 0
