"""The `radimagenet` layout: RadImageNet's published downstream folders, read with their own folds.

    <task>/images/...                                   the images the CSVs list
    <task>/dataframe/{prefix}{train,val,test}_fold{1..5}.csv

prefix: "" for acl, "thyroid_" for thyroid, "breast_" for breast (either form is accepted for
any task). Columns: path in `img_dir` (thyroid) or `filename` (acl, breast), relative to <task>/
("images/314_1.jpg"); label in `label` (benign / malignant; BUSI "normal" images already say
benign) or `acl_label` (yes / no). The 15 CSVs are used as they are: the items are every image
any of them lists; a fold's train / val / test are its three CSVs. Anything odd in them (a group
in two parts of a fold) becomes a warning on the Task, never a silent fix.

Groups: acl by exam (the leading number of `NNNN_sagittal_S.*.png`), thyroid by case (the leading
number of the DDTI stem `{case}_{k}`), breast by file (BUSI gives one image per case and no
patient ids). A name that does not match its pattern is its own group.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DatasetError
from .base import CLASS_NAMES, SPLITS, Fold, Task, check_files, check_two_classes, label_value, make_items
from .folds import fold_warnings

PREFIX = {"acl": "", "thyroid": "thyroid_", "breast": "breast_"}
PATH_COLUMNS = ("img_dir", "filename", "path")
LABEL_COLUMNS = ("acl_label", "label")
N_FOLDS = 5
_GROUP = {"acl": re.compile(r"^(\d+)_"), "thyroid": re.compile(r"^(\d+)_\d+$")}


def expected_layout(task: str) -> str:
    prefix = PREFIX.get(task, "")
    columns = {"acl": "filename,acl_label", "thyroid": "img_dir,label", "breast": "filename,label"}
    return (f"<{task}>/dataframe/{prefix}{{train,val,test}}_fold{{1..5}}.csv (columns "
            f"{columns.get(task, 'filename,label')}) + <{task}>/images/ (radimagenet layout)")


def detect(root: Path) -> str | None:
    """The CSV prefix found under root/dataframe ("", "thyroid_", "breast_", ...) or None."""
    frames = root / "dataframe"
    if not frames.is_dir():
        return None
    for candidate in sorted(frames.glob("*test_fold1.csv")):
        return candidate.name[: -len("test_fold1.csv")]
    return None


def infer_name(root: Path) -> str:
    """The task a radimagenet folder holds, from its CSV prefix or label column ("custom" if unsure)."""
    prefix = detect(root)
    for task, p in PREFIX.items():
        if p and prefix == p:
            return task
    if prefix is not None:
        try:
            header = pd.read_csv(root / "dataframe" / f"{prefix}test_fold1.csv", nrows=0).columns
        except (OSError, ValueError):
            return "custom"
        if "acl_label" in header:
            return "acl"
    return "custom"


def group_of(task: str, file_name: str) -> str:
    stem = Path(file_name).stem
    pattern = _GROUP.get(task)
    match = pattern.match(stem) if pattern else None
    return match.group(1) if match else stem


def _fold_csv(frames: Path, task: str, split: str, k: int) -> Path | None:
    prefixes = [PREFIX.get(task, ""), *PREFIX.values()]
    found = detect(frames.parent)
    if found is not None:
        prefixes.insert(0, found)
    for prefix in dict.fromkeys(prefixes):
        path = frames / f"{prefix}{split}_fold{k}.csv"
        if path.is_file():
            return path
    return None


def _read_csv(path: Path, task: str) -> pd.DataFrame:
    where = f"{path}: "
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{where}cannot be read as CSV ({exc}); expected {expected_layout(task)}") from exc
    path_col = next((c for c in PATH_COLUMNS if c in frame.columns), None)
    label_col = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    if path_col is None or label_col is None:
        raise DatasetError(f"{where}columns {','.join(frame.columns)}; expected {expected_layout(task)}")
    frame = frame[frame[path_col].str.strip() != ""]
    return pd.DataFrame({"rel": frame[path_col].str.strip(),
                         "label": [label_value(v, where=where) for v in frame[label_col]]})


def _resolve(root: Path, rel: str) -> tuple[str, str]:
    """(id, absolute path) of a CSV path value: relative to root, else inside root/images."""
    clean = Path(os.path.normpath(rel.replace("\\", "/")))
    if clean.is_absolute():
        try:
            clean = clean.relative_to(root)
        except ValueError:
            return clean.as_posix(), str(clean)
    path = root / clean
    if not path.exists() and len(clean.parts) == 1 and (root / "images" / clean).exists():
        clean = Path("images") / clean
        path = root / clean
    return clean.as_posix(), str(path)


def load_radimagenet(root: str | os.PathLike[str], name: str = "custom") -> Task:
    """Read a RadImageNet downstream folder (see the module docstring) into a Task with its 5 folds."""
    root = Path(root)
    frames = root / "dataframe"
    if name == "custom":
        name = infer_name(root)
    if not frames.is_dir():
        raise DatasetError(f"{root}: no dataframe/ folder; expected {expected_layout(name)}")
    tables: dict[tuple[int, str], pd.DataFrame] = {}
    for k in range(1, N_FOLDS + 1):
        for split in SPLITS:
            path = _fold_csv(frames, name, split, k)
            if path is None:
                raise DatasetError(f"{frames}: no {PREFIX.get(name, '')}{split}_fold{k}.csv; "
                                   f"expected {expected_layout(name)}")
            tables[k, split] = _read_csv(path, name)
    labels: dict[str, int] = {}
    paths: dict[str, str] = {}
    members: dict[tuple[int, str], list[str]] = {}
    for key, table in tables.items():
        ids = []
        for rel, label in zip(table["rel"], table["label"]):
            image_id, path = _resolve(root, rel)
            if labels.setdefault(image_id, label) != label:
                raise DatasetError(f"{frames}: {image_id} has both labels across the fold CSVs")
            paths[image_id] = path
            ids.append(image_id)
        members[key] = ids
    items = make_items(list(paths), list(paths.values()), [labels[i] for i in paths],
                       [group_of(name, i) for i in paths])
    check_files(items, str(root), expected_layout(name))
    check_two_classes(items, str(root))
    position = pd.Series(np.arange(len(items)), index=items["id"])
    folds = [Fold(k, *(np.unique(position[members[k, s]].to_numpy(np.int64)) for s in SPLITS))
             for k in range(1, N_FOLDS + 1)]
    positive, negative = CLASS_NAMES.get(name, ("positive", "negative"))
    return Task(name, root, items, folds, positive, negative, "radimagenet", None, tuple(fold_warnings(items, folds)))
