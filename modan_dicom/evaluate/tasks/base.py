"""The task contract: `Task` (images, binary labels, groups, folds) and `Fold`, plus label parsing."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DatasetError

TASK_NAMES = ("acl", "breast", "thyroid")
ITEM_COLUMNS = ("id", "path", "label", "group")
SPLITS = ("train", "val", "test")
# report names of the classes: (positive, negative)
CLASS_NAMES = {"acl": ("tear", "intact"), "breast": ("malignant", "benign"), "thyroid": ("malignant", "benign")}

_POSITIVE = frozenset({"1", "1.0", "yes", "y", "true", "t", "malignant", "tear", "torn", "positive", "pos", "abnormal"})
_NEGATIVE = frozenset({"0", "0.0", "no", "n", "false", "f", "benign", "normal", "intact", "negative", "neg"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".dcm", ".dicom"})


@dataclass(frozen=True, eq=False)  # arrays and frames: identity, not value, equality
class Fold:
    """One cross-validation fold: sorted int64 positions into `Task.items` (disjoint)."""

    number: int  # 1-based
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def part(self, split: str) -> np.ndarray:
        """Positions of `split` ("train", "val" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, split)


@dataclass(frozen=True, eq=False)  # arrays and frames: identity, not value, equality
class Task:
    """A binary downstream task: images, labels, groups and a fixed fold partition.

    items: one row per image, columns `id` (unique, a POSIX path relative to `root` or to the
    dataset's own root), `path` (absolute file path, str), `label` (int64; 1 = positive: tear,
    malignant), `group` (str: the exam / case; a group never straddles train and test of a fold).
    folds: `Fold`s numbered from 1. warnings: what the adapter left out or found odd (one line each).
    """

    name: str
    root: Path
    items: pd.DataFrame
    folds: list[Fold]
    positive_name: str = "positive"
    negative_name: str = "negative"
    layout: str = "radimagenet"
    folds_path: Path | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 labels."""
        return self.items["label"].to_numpy(np.int64)

    @property
    def groups(self) -> np.ndarray:
        """(N,) group ids (str objects)."""
        return self.items["group"].to_numpy(object)

    def fold(self, number: int) -> Fold:
        """The fold numbered `number` (1-based)."""
        for f in self.folds:
            if f.number == number:
                return f
        raise KeyError(f"{self.name} has no fold {number}")

    def split(self, number: int, split: str) -> pd.DataFrame:
        """The items of one split of one fold."""
        return self.items.iloc[self.fold(number).part(split)]

    def summary(self) -> str:
        """One line: name, layout, image and group counts per class, folds."""
        n_pos = int(self.labels.sum())
        return (f"{self.name} ({self.layout}): {len(self.items)} images ({n_pos} {self.positive_name} / "
                f"{len(self.items) - n_pos} {self.negative_name}) in {self.items['group'].nunique()} groups, "
                f"{len(self.folds)} folds")


def label_value(value: object, positive: str | None = None, where: str = "") -> int:
    """0/1 for a label cell: 1/0, yes/no, malignant/benign (normal -> 0), true/false, tear/intact...

    positive: a class name that counts as 1 (anything else then counts as 0).
    """
    text = str(value).strip().lower()
    if positive is not None:
        return int(text == positive.strip().lower())
    if text in _POSITIVE:
        return 1
    if text in _NEGATIVE:
        return 0
    raise DatasetError(f"{where}unknown label {value!r} (expected yes/no, malignant/benign, 1/0 or pass positive=NAME)")


def binary_labels(values: Sequence[object], positive: str | None, where: str) -> tuple[np.ndarray, str, str]:
    """Labels (N,) int64 and (positive_name, negative_name) for a column of class names or 0/1.

    Known vocabularies (yes/no, malignant/benign, 1/0...) map directly; two other class names need
    `positive`, else the alphabetically second is positive (as for class folders).
    """
    texts = [str(v).strip() for v in values]
    classes = sorted(set(texts))
    if positive is None and all(t.lower() in _POSITIVE | _NEGATIVE for t in classes):
        labels = np.array([label_value(t, None, where) for t in texts], np.int64)
        pos = sorted({t for t in classes if t.lower() in _POSITIVE})
        neg = sorted({t for t in classes if t.lower() in _NEGATIVE})
        named = {"1": "positive", "0": "negative", "1.0": "positive", "0.0": "negative"}
        pos_name = named.get(pos[0], pos[0]) if pos else "positive"
        return labels, pos_name, named.get(neg[0], neg[0]) if neg else "negative"
    if len(classes) > 2:
        raise DatasetError(f"{where}expected two classes, found {len(classes)}: {', '.join(classes[:6])}")
    if positive is None:
        positive = classes[-1]
    if positive not in classes:
        raise DatasetError(f"{where}positive class {positive!r} not found; classes: {', '.join(classes)}")
    negative = next((c for c in classes if c != positive), "negative")
    return np.array([int(t == positive) for t in texts], np.int64), positive, negative


def make_items(ids: Iterable[str], paths: Iterable[str | os.PathLike[str]], labels: Iterable[int],
               groups: Iterable[str]) -> pd.DataFrame:
    """The items table, sorted by id; raises DatasetError on duplicate ids."""
    frame = pd.DataFrame({"id": [str(i) for i in ids], "path": [str(p) for p in paths],
                          "label": np.asarray(list(labels), np.int64), "group": [str(g) for g in groups]},
                         columns=list(ITEM_COLUMNS))
    dupes = frame["id"][frame["id"].duplicated()]
    if len(dupes):
        raise DatasetError(f"duplicate image id {dupes.iloc[0]!r} ({len(dupes)} duplicates)")
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def check_files(items: pd.DataFrame, where: str, expected: str) -> None:
    """Raise one DatasetError line when listed image files are missing."""
    missing = [p for p in items["path"] if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"{where}: {len(missing)} of {len(items)} listed images are missing "
                           f"(first: {missing[0]}); expected {expected}")


def check_two_classes(items: pd.DataFrame, where: str) -> None:
    counts = np.bincount(items["label"].to_numpy(np.int64), minlength=2)
    if len(items) == 0 or counts.min() == 0:
        raise DatasetError(f"{where}: needs images of both classes; found {counts[1]} positive and "
                           f"{counts[0]} negative")


def posix_rel(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form (the image id)."""
    return path.relative_to(root).as_posix()


_NATURAL = re.compile(r"(\d+)")


def natural_key(text: str) -> list[object]:
    """Sort key that orders "10_1" after "9_1"."""
    return [int(t) if t.isdigit() else t for t in _NATURAL.split(text)]
