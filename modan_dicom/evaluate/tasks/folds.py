"""Grouped, stratified folds: building them, saving them as CSV, and reading them back.

A fold's test part comes from `StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)` over
the images (label strata, group = exam / case); its validation part is the first inner split of
`StratifiedGroupKFold(round((1 - 1/n_folds) / val_fraction), random_state=seed + fold)` over the
rest (about `val_fraction` of all images: 10% by default, like RadImageNet's published folds);
train is what remains. Groups never straddle two parts of one fold.

The saved form (`folds.csv`) has one row per image and fold: `id, fold, split` (split is train,
val or test). Reading it back checks that it lists exactly the dataset's images.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ...atomic import atomic_open
from ...errors import DatasetError, OutputError
from .base import SPLITS, Fold

FOLD_COLUMNS = ("id", "fold", "split")


def make_folds(labels: np.ndarray, groups: np.ndarray, *, n_folds: int = 5, seed: int = 0,
               val_fraction: float = 0.1) -> list[Fold]:
    """Grouped, stratified folds over N images.

    labels: (N,) 0/1. groups: (N,) hashable group ids. Returns `n_folds` Folds (numbered from 1)
    whose test parts partition the images. Raises DatasetError when there are fewer groups than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels, np.int64)
    _, group_codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(group_codes.max()) + 1 if len(group_codes) else 0
    if n_groups < n_folds:
        raise DatasetError(f"{n_folds} folds need at least {n_folds} groups (exams / cases); found {n_groups}")
    positions = np.arange(len(labels))
    folds = []
    with warnings.catch_warnings():  # "the least populated class has only k members": fine for us
        warnings.simplefilter("ignore", UserWarning)
        outer = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for number, (rest, test) in enumerate(outer.split(positions, labels, group_codes), 1):
            val = np.array([], np.int64)
            inner_groups = np.unique(group_codes[rest])
            n_inner = min(max(2, round((1.0 - 1.0 / n_folds) / val_fraction)), len(inner_groups))
            if val_fraction > 0 and n_inner >= 2:
                inner = StratifiedGroupKFold(n_splits=n_inner, shuffle=True, random_state=seed + number)
                _, pick = next(inner.split(rest, labels[rest], group_codes[rest]))
                val = rest[pick]
            train = np.setdiff1d(rest, val)
            folds.append(Fold(number, np.sort(train).astype(np.int64), np.sort(val).astype(np.int64),
                              np.sort(test).astype(np.int64)))
    return folds


def folds_frame(ids: np.ndarray | pd.Series, folds: list[Fold]) -> pd.DataFrame:
    """The saved form: one row per (fold, image) with columns id, fold, split."""
    ids = np.asarray(ids, dtype=object)
    parts = []
    for f in folds:
        for split in SPLITS:
            pos = f.part(split)
            parts.append(pd.DataFrame({"id": ids[pos], "fold": f.number, "split": split}))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(FOLD_COLUMNS))
    return frame.sort_values(["fold", "split", "id"], kind="stable").reset_index(drop=True)


def save_folds(path: str | os.PathLike[str], ids: np.ndarray | pd.Series, folds: list[Fold]) -> Path:
    """Write the folds as CSV (atomically) and return the path."""
    target = Path(path)
    with atomic_open(target, "w", encoding="utf-8", newline="") as handle:
        folds_frame(ids, folds).to_csv(handle, index=False)
    return target


def read_folds(path: str | os.PathLike[str], ids: np.ndarray | pd.Series) -> list[Fold]:
    """Folds from a saved CSV, as positions into `ids` (the task's items in order).

    Raises DatasetError (one line) when the file is malformed or does not list exactly `ids`.
    """
    where = f"{path}: saved folds"
    try:
        frame = pd.read_csv(path, dtype={"id": str, "split": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{where} cannot be read ({exc}); delete the file to rebuild the folds") from exc
    if list(frame.columns[:3]) != list(FOLD_COLUMNS):
        raise DatasetError(f"{where}: expected columns id,fold,split; delete the file to rebuild the folds")
    if not frame["split"].isin(SPLITS).all() or frame.duplicated(["id", "fold"]).any():
        raise DatasetError(f"{where}: malformed (unknown split or an image twice in one fold); delete it to rebuild")
    index = pd.Series(np.arange(len(ids)), index=pd.Index(np.asarray(ids, dtype=str)))
    known = frame["id"].isin(index.index)
    listed = index.index.isin(frame["id"])
    if not known.all() or not listed.all():
        raise DatasetError(f"{where} do not match the dataset ({int((~listed).sum())} images not in the file, "
                           f"{frame.loc[~known, 'id'].nunique()} unknown ids); delete the file to rebuild the folds")
    folds = []
    for number, rows in frame.groupby("fold", sort=True):
        parts = {split: np.sort(index[rows.loc[rows["split"] == split, "id"]].to_numpy(np.int64)) for split in SPLITS}
        folds.append(Fold(int(number), parts["train"], parts["val"], parts["test"]))
    return folds


def folds_location(home: Path, name: str, folds_path: str | os.PathLike[str] | None) -> Path:
    """Where a dataset's folds live: `folds_path` if given, else `home/name`."""
    return Path(folds_path) if folds_path is not None else home / name


def writable_home(data_root: Path, work_dir: str | os.PathLike[str] | None) -> Path:
    """The folder that holds saved folds and caches: `work_dir` if given, else the data folder.

    Raises OutputError when neither can be written.
    """
    if work_dir is not None:
        home = Path(work_dir)
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create work_dir {home}: {exc.strerror or exc}") from exc
        return home
    return data_root


def load_or_make_folds(items: pd.DataFrame, location: Path, *, n_folds: int, seed: int) -> list[Fold]:
    """The saved folds at `location` when present; else new ones, saved there first."""
    ids = items["id"].to_numpy(object)
    if location.is_file():
        return read_folds(location, ids)
    folds = make_folds(items["label"].to_numpy(np.int64), items["group"].to_numpy(object), n_folds=n_folds, seed=seed)
    try:
        save_folds(location, ids, folds)
    except OutputError as exc:
        raise OutputError(f"{exc}; cannot save the folds there: pass work_dir=... or folds_path=...") from exc
    return folds


def fold_warnings(items: pd.DataFrame, folds: list[Fold]) -> list[str]:
    """Problems worth a line: a group in two parts of a fold, a test part without one class."""
    out = []
    groups = items["group"].to_numpy(object)
    labels = items["label"].to_numpy(np.int64)
    for f in folds:
        parts = {split: set(groups[f.part(split)].tolist()) for split in SPLITS}
        for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
            shared = parts[a] & parts[b]
            if shared:
                out.append(f"fold {f.number}: {len(shared)} groups are in both {a} and {b} "
                           f"(e.g. {sorted(map(str, shared))[0]!r})")
        test_labels = labels[f.test]
        if len(test_labels) and len(set(test_labels.tolist())) < 2:
            out.append(f"fold {f.number}: the test part holds one class only (AUC undefined)")
        overlap = (np.intersect1d(f.train, f.test).size + np.intersect1d(f.val, f.test).size
                   + np.intersect1d(f.train, f.val).size)
        if overlap:
            out.append(f"fold {f.number}: {overlap} images are in two parts")
    return out
