"""Any binary task: class folders, a CSV of paths and labels, or a modan-dicom index plus labels.

    folders  ROOT/<class A>/**/<image>, ROOT/<class B>/**/<image>      exactly two class folders
    csv      a CSV with columns path,label[,group]                      paths relative to the CSV
    index    index.parquet (modan-dicom index) + labels CSV path,label[,group]  keyed by index path

Labels: 0/1, yes/no, malignant/benign, ... map directly; two other class names need
`positive=NAME`, else the alphabetically second class is positive (the same rule as folders).
Groups: the `group` column when the CSV has one; for class folders the first sub-folder under
the class folder (ROOT/<class>/<case>/...), or `group_pattern` (a regex searched in the image's
relative path; its first group, or the match), else each image is its own group; for an index,
the pseudonymous patient (`patient_key`), the strictest grouping the index knows.
Folds are built and saved as for the raw layouts: beside the data (or in `work_dir`), reused when
present: `ROOT/folds.csv`, `<csv stem>.folds.csv`, `<labels stem>.folds.csv`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ...errors import DatasetError, SourceError
from .base import IMAGE_SUFFIXES, Task, binary_labels, check_files, check_two_classes, make_items, posix_rel
from .folds import fold_warnings, folds_location, load_or_make_folds, writable_home

FOLDERS_LAYOUT = "ROOT/<negative class>/*.png + ROOT/<positive class>/*.png, two class folders (folders layout)"
CSV_LAYOUT = "a CSV with columns path,label[,group], paths relative to the CSV (csv layout)"
INDEX_LAYOUT = "index.parquet from modan-dicom index + labels=CSV with columns path,label[,group] (index layout)"
IMAGE_STATUSES = ("ok", "unmapped")


def is_image_file(path: Path) -> bool:
    """An image by suffix, or an extension-less file with the DICOM preamble ('DICM' at byte 128)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _class_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts) and is_image_file(p))


def load_folders(root: str | os.PathLike[str], *, positive: str | None = None, group_pattern: str | None = None,
                 work_dir: str | os.PathLike[str] | None = None, folds_path: str | os.PathLike[str] | None = None,
                 seed: int = 0, n_folds: int = 5) -> Task:
    """A folder of two class folders; the positive class is `positive` or the alphabetically second."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; expected {FOLDERS_LAYOUT}")
    classes = {d.name: _class_images(d) for d in sorted(root.iterdir())
               if d.is_dir() and not d.name.startswith(".") and d.name != "modan-cache"}
    classes = {name: files for name, files in classes.items() if files}
    if len(classes) != 2:
        names = ", ".join(classes) or "none"
        raise DatasetError(f"{root}: {len(classes)} class folders with images ({names}); expected {FOLDERS_LAYOUT}")
    names = sorted(classes)
    if positive is None:
        positive = names[1]
    if positive not in classes:
        raise DatasetError(f"{root}: positive class {positive!r} is not one of the folders {', '.join(names)}")
    negative = next(n for n in names if n != positive)
    pattern = re.compile(group_pattern) if group_pattern else None
    ids, paths, labels, groups = [], [], [], []
    for name in names:
        for p in classes[name]:
            rel = posix_rel(p, root)
            inner = p.relative_to(root / name).parts
            group = f"{name}/{inner[0]}" if len(inner) > 1 else rel
            if pattern is not None:
                match = pattern.search(rel)
                group = (match.group(1) if match.groups() else match.group(0)) if match else rel
            ids.append(rel)
            paths.append(p)
            labels.append(int(name == positive))
            groups.append(group)
    items = make_items(ids, paths, labels, groups)
    location = folds_location(writable_home(root, work_dir), "folds.csv", folds_path)
    folds = load_or_make_folds(items, location, n_folds=n_folds, seed=seed)
    return Task("custom", root, items, folds, positive, negative, "folders", location,
                tuple(fold_warnings(items, folds)))


def _label_table(path: Path, layout: str) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; expected {layout}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path}: cannot be read as CSV ({exc}); expected {layout}") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if "path" not in frame.columns or "label" not in frame.columns:
        raise DatasetError(f"{path}: columns {','.join(frame.columns)}; expected {layout}")
    frame = frame[frame["path"].str.strip() != ""].copy()
    if frame.empty:
        raise DatasetError(f"{path}: no rows; expected {layout}")
    frame["path"] = frame["path"].str.strip()
    return frame


def load_csv(csv: str | os.PathLike[str], *, positive: str | None = None,
             work_dir: str | os.PathLike[str] | None = None, folds_path: str | os.PathLike[str] | None = None,
             seed: int = 0, n_folds: int = 5) -> Task:
    """A CSV of `path,label[,group]`; relative paths are relative to the CSV's folder."""
    csv = Path(csv)
    frame = _label_table(csv, CSV_LAYOUT)
    root = csv.parent
    labels, pos_name, neg_name = binary_labels(frame["label"].tolist(), positive, f"{csv}: ")
    ids = [Path(os.path.normpath(p)).as_posix() for p in frame["path"]]
    paths = [p if os.path.isabs(p) else str(root / p) for p in ids]
    groups = frame["group"].tolist() if "group" in frame.columns else ids
    items = make_items(ids, paths, labels, groups)
    check_files(items, str(csv), CSV_LAYOUT)
    check_two_classes(items, str(csv))
    location = folds_location(writable_home(root, work_dir), f"{csv.stem}.folds.csv", folds_path)
    folds = load_or_make_folds(items, location, n_folds=n_folds, seed=seed)
    return Task("custom", root, items, folds, pos_name, neg_name, "csv", location, tuple(fold_warnings(items, folds)))


def load_index_task(index: str | os.PathLike[str], *, labels: str | os.PathLike[str] | None = None,
                    positive: str | None = None, work_dir: str | os.PathLike[str] | None = None,
                    folds_path: str | os.PathLike[str] | None = None, seed: int = 0, n_folds: int = 5) -> Task:
    """Images of a modan-dicom index labelled by a CSV keyed by the index's `path` (or absolute paths)."""
    from ...ingest import read_index, read_index_meta

    index = Path(index)
    if labels is None:
        raise DatasetError(f"{index}: an index needs labels=CSV; expected {INDEX_LAYOUT}")
    if not index.is_file():
        raise DatasetError(f"{index}: no such file; expected {INDEX_LAYOUT}")
    try:
        meta = read_index_meta(index)
        table = read_index(index, columns=["path", "status", "patient_key"])
    except (SourceError, OSError, ValueError) as exc:
        raise DatasetError(f"{index}: not a modan-dicom index ({exc}); expected {INDEX_LAYOUT}") from exc
    source = Path(meta.source)
    labels_csv = Path(labels)
    frame = _label_table(labels_csv, INDEX_LAYOUT)
    keys = []
    for p in frame["path"]:
        if os.path.isabs(p):
            try:
                p = Path(p).relative_to(source).as_posix()
            except ValueError:
                pass
        keys.append(Path(os.path.normpath(p)).as_posix())
    frame["key"] = keys
    images = table[table["status"].isin(IMAGE_STATUSES)].set_index("path")
    known = frame["key"].isin(images.index)
    warnings = []
    if (~known).any():
        warnings.append(f"{int((~known).sum())} labelled paths are not images in the index (first: "
                        f"{frame.loc[~known, 'key'].iloc[0]})")
    frame = frame[known]
    if frame.empty:
        raise DatasetError(f"{labels_csv}: none of its paths is an image of {index}; expected {INDEX_LAYOUT}")
    values, pos_name, neg_name = binary_labels(frame["label"].tolist(), positive, f"{labels_csv}: ")
    if "group" in frame.columns:
        groups = frame["group"].tolist()
    else:
        patients = images.loc[frame["key"], "patient_key"].tolist()
        groups = [g if isinstance(g, str) and g else k for g, k in zip(patients, frame["key"])]
    items = make_items(frame["key"], [str(source / k) for k in frame["key"]], values, groups)
    check_files(items, str(index), f"the files under the index source {source}")
    check_two_classes(items, str(labels_csv))
    location = folds_location(writable_home(labels_csv.parent, work_dir), f"{labels_csv.stem}.folds.csv", folds_path)
    folds = load_or_make_folds(items, location, n_folds=n_folds, seed=seed)
    return Task("custom", source, items, folds, pos_name, neg_name, "index", location,
                tuple(warnings + fold_warnings(items, folds)))
