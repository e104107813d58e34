"""What an index (or a PACS census) holds, for the closing report: counts by status, counts by
modality × anatomy, and the raw values that most often failed to map (what a curator fixes next).

Works on anything with the index columns: a pandas DataFrame, a pyarrow Table or RecordBatch,
fed whole (`summarize`) or batch by batch (`SummaryBuilder`) so a million-row run never needs the
whole table in memory. Rows may carry a `count` column (a census row standing for a series of
N instances is counted N times when `weight="count"`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .schema import STATUSES

# raw fields reported when the anatomy did not map, and when the modality did not
ANATOMY_FIELDS = ("BodyPartExamined", "SeriesDescription", "ProtocolName", "StudyDescription")
MODALITY_FIELDS = ("Modality",)
_NEEDED = ("status", "modality", "anatomy", *MODALITY_FIELDS, *ANATOMY_FIELDS)


@dataclass
class IndexSummary:
    """Counts over the rows of an index.

    total: rows; by_status: status -> rows (every status present, zeros included);
    by_modality_anatomy: (modality id or None, anatomy id or None) -> rows, over ok and unmapped rows;
    not_in_profile: (modality, anatomy) pairs that resolved in the full vocabulary but have no
    place in the profile -> rows; top_unmapped: raw field -> [(value, rows)], most frequent first,
    over unmapped rows whose modality (for Modality) or anatomy (for the others) is missing;
    warnings: messages for the user (an empty source, a discarded previous index, ...).
    """

    total: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    by_modality_anatomy: dict[tuple[str | None, str | None], int] = field(default_factory=dict)
    not_in_profile: dict[tuple[str | None, str | None], int] = field(default_factory=dict)
    top_unmapped: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def mapped(self) -> int:
        return self.by_status.get("ok", 0)


def _column(data: Any, name: str) -> list[Any]:
    """A column of a DataFrame / Table / RecordBatch as a Python list (None for missing)."""
    if hasattr(data, "column_names"):  # pyarrow
        if name not in data.column_names:
            return [None] * data.num_rows
        return data.column(name).to_pylist()
    if name not in data.columns:
        return [None] * len(data)
    return [None if _is_missing(v) else v for v in data[name].tolist()]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType"


class SummaryBuilder:
    """Accumulates an `IndexSummary` over batches of rows. `top` values are kept per field."""

    def __init__(self, *, top: int = 10, weight: str | None = None) -> None:
        self.top = top
        self.weight = weight
        self._total = 0
        self._status: Counter[str] = Counter()
        self._pairs: Counter[tuple[str | None, str | None]] = Counter()
        self._not_in_profile: Counter[tuple[str | None, str | None]] = Counter()
        self._unmapped = {name: Counter() for name in (*MODALITY_FIELDS, *ANATOMY_FIELDS)}
        self.warnings: list[str] = []

    def add(self, data: Any) -> SummaryBuilder:
        """Count the rows of a DataFrame, Table or RecordBatch with the index columns."""
        cols = {name: _column(data, name) for name in _NEEDED}
        n = len(cols["status"])
        weights = _column(data, self.weight) if self.weight else [1] * n
        for i in range(n):
            w = int(weights[i] or 0) if self.weight else 1
            status = cols["status"][i]
            self._total += w
            self._status[status] += w
            if status not in ("ok", "unmapped"):
                continue
            modality, anatomy = cols["modality"][i], cols["anatomy"][i]
            self._pairs[(modality, anatomy)] += w
            if status != "unmapped":
                continue
            if modality is None:
                self._count_raw(cols, MODALITY_FIELDS, i, w)
            if anatomy is None:
                self._count_raw(cols, ANATOMY_FIELDS, i, w)
            if modality is not None and anatomy is not None:  # resolved, but not in the profile
                self._not_in_profile[(modality, anatomy)] += w
        return self

    def _count_raw(self, cols: dict[str, list[Any]], fields: tuple[str, ...], i: int, w: int) -> None:
        for name in fields:
            value = cols[name][i]
            if value:
                self._unmapped[name][str(value)] += w

    def result(self) -> IndexSummary:
        by_status = dict.fromkeys(STATUSES, 0)
        by_status.update(self._status)
        return IndexSummary(
            total=self._total,
            by_status=by_status,
            by_modality_anatomy=dict(self._pairs.most_common()),
            not_in_profile=dict(self._not_in_profile.most_common()),
            top_unmapped={name: counter.most_common(self.top)
                          for name, counter in self._unmapped.items() if counter},
            warnings=list(self.warnings),
        )


def summarize(data: Any, *, top: int = 10, weight: str | None = None) -> IndexSummary:
    """The `IndexSummary` of a whole index (DataFrame, Table or RecordBatch)."""
    return SummaryBuilder(top=top, weight=weight).add(data).result()
