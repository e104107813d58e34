"""Downstream task adapters: any supported dataset layout -> a `Task` with fixed, grouped folds.

    task = load_task("thyroid", "data/")              # data/thyroid/ or data/ itself, layout detected
    task = load_task("acl", "data/", layout="mrnet", plane="sagittal", slices=3, work_dir="cache/")
    task = load_task("my/labels.csv")                  # generic: path,label[,group]
    task = load_task("index.parquet", labels="labels.csv")
    task.items      # DataFrame: id, path (absolute), label (0/1; 1 = tear / malignant), group (exam / case)
    task.folds      # [Fold(number, train, val, test)], int64 positions into task.items

Layouts (`LAYOUTS`; "auto" detects them in this order):

| layout | what it reads | folds |
| --- | --- | --- |
| radimagenet | `<task>/images/` + `<task>/dataframe/{prefix}{train,val,test}_fold{1..5}.csv` (the paper's partition) | shipped, used as they are |
| mrnet | MRNet-v1.0 `{train,valid}/<plane>/NNNN.npy` + `{train,valid}-acl.csv` | built once, saved |
| busi | `Dataset_BUSI_with_GT/{benign,malignant,normal}/*.png` | built once, saved |
| ddti | `{case}_{k}.jpg` + `{case}.xml` (`<tirads>`) | built once, saved |
| folders | two class folders | built once, saved |
| csv | `path,label[,group]` | built once, saved |
| index | a modan-dicom index + `labels=` CSV keyed by path | built once, saved |

Decisions where the published material is silent (details in each module):

* ids are POSIX paths relative to the dataset root ("images/314_1.jpg"); items are sorted by id.
* Groups: ACL by exam, thyroid by DDTI case, breast (BUSI) by file: BUSI has one image per case
  and no patient ids; generic layouts by a `group` column, a case sub-folder, or patient.
* radimagenet CSV names: "" prefix for acl, "thyroid_" / "breast_" for the others (the real
  names); any of them is accepted for any task. Paths may also be bare file names under images/.
* Built folds: StratifiedGroupKFold(5, shuffled, seed) for test; validation about 10% of the
  images, a grouped stratified slice of the rest; saved to `folds-*.csv` / `folds.csv` beside
  the data or in `work_dir` (`folds_path` overrides) and reused whenever present, whatever
  the seed, so every init sees the same folds. A saved file that no longer lists exactly the
  dataset's images is an error (delete it to rebuild), never silently replaced.
* MRNet: default the 3 middle sagittal slices per exam, written once as PNG under
  `<work_dir or data>/modan-cache/`; train and valid exams pooled.
* DDTI: TI-RADS 2-3 benign, 4 / 4a-4c / 5 malignant; other values and images without a case
  file are left out and counted in `Task.warnings`.
* Every layout problem is a `DatasetError` whose one line names the expected layout.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DatasetError
from .base import CLASS_NAMES, ITEM_COLUMNS, SPLITS, TASK_NAMES, Fold, Task, binary_labels, label_value
from .folds import folds_frame, make_folds, read_folds, save_folds
from .generic import CSV_LAYOUT, FOLDERS_LAYOUT, INDEX_LAYOUT, load_csv, load_folders, load_index_task
from .radimagenet import detect as detect_radimagenet
from .radimagenet import expected_layout, infer_name, load_radimagenet
from .raw import (BUSI_LAYOUT, DDTI_LAYOUT, MRNET_LAYOUT, find_busi, find_ddti, find_mrnet, load_busi, load_ddti,
                  load_mrnet, read_tirads, tirads_label)

__all__ = [
    "CLASS_NAMES", "COMMON_OPTIONS", "ITEM_COLUMNS", "LAYOUTS", "SPLITS", "TASK_NAMES", "Fold", "Task", "binary_labels", "folds_frame",
    "label_value", "load_busi", "load_csv", "load_ddti", "load_folders", "load_index_task", "load_mrnet",
    "load_radimagenet", "load_task", "make_folds", "read_folds", "read_tirads", "save_folds", "tirads_label",
]

LAYOUTS = ("auto", "radimagenet", "mrnet", "busi", "ddti", "folders", "csv", "index")
RAW_LAYOUT = {"acl": "mrnet", "breast": "busi", "thyroid": "ddti"}
# accepted by every layout, ignored where they do not apply (the radimagenet layout ships its folds)
COMMON_OPTIONS = frozenset({"work_dir", "folds_path", "seed", "n_folds", "progress"})
_RAW_TEXT = {"acl": MRNET_LAYOUT, "breast": BUSI_LAYOUT, "thyroid": DDTI_LAYOUT}
_LOADERS: dict[str, Callable[..., Task]] = {
    "radimagenet": load_radimagenet, "mrnet": load_mrnet, "busi": load_busi, "ddti": load_ddti,
    "folders": load_folders, "csv": load_csv, "index": load_index_task,
}


def _expected(name: str) -> str:
    return f"{expected_layout(name)} or {_RAW_TEXT[name]}"


def _detect_for(name: str, root: Path) -> str | None:
    if detect_radimagenet(root) is not None and infer_name(root) in (name, "custom"):
        return "radimagenet"
    finder = {"acl": find_mrnet, "breast": find_busi, "thyroid": find_ddti}[name]
    return RAW_LAYOUT[name] if finder(root) is not None else None


def _detect_path(path: Path) -> str:
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix == ".parquet":
            return "index"
        raise DatasetError(f"{path}: not a CSV or an index; expected {CSV_LAYOUT} or {INDEX_LAYOUT}")
    if detect_radimagenet(path) is not None:
        return "radimagenet"
    for layout, finder in (("mrnet", find_mrnet), ("busi", find_busi), ("ddti", find_ddti)):
        if finder(path) is not None:
            return layout
    return "folders"


def _call(layout: str, root: Path, name: str | None, options: dict[str, Any]) -> Task:
    loader = _LOADERS[layout]
    accepted = set(inspect.signature(loader).parameters) - {"root", "csv", "index", "name"}
    options = {k: v for k, v in options.items() if k in accepted or k not in COMMON_OPTIONS}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"the {layout} layout takes no option {', '.join(unknown)}; it takes "
                          f"{', '.join(sorted(accepted)) or 'none'}")
    if layout == "radimagenet":
        return loader(root, name or "custom")
    task = loader(root, **options)
    if name is not None and task.name != name:
        task = dataclasses.replace(task, name=name)
    return task


def load_task(name_or_path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None, *,
              layout: str = "auto", **options: Any) -> Task:
    """Load a downstream task.

    name_or_path: "acl", "breast" or "thyroid" (looked up as data_dir/<name>, then data_dir itself),
        or a path (a folder, a CSV, an index; relative paths are taken under data_dir when given).
    layout: one of `LAYOUTS`; "auto" detects it.
    options: passed to the layout's adapter (mrnet: plane, slices; busi: normal_as_benign; folders:
        positive, group_pattern; csv: positive; index: labels, positive). `COMMON_OPTIONS` (work_dir,
        folds_path, seed, n_folds, progress) are accepted by every layout and used where they apply:
        by the layouts that build folds (and progress by mrnet's slice extraction).
    Raises DatasetError (one line naming the expected layout) for a missing or malformed dataset,
    ConfigError for unknown layouts or options.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    text = os.fspath(name_or_path)
    if text.lower() in TASK_NAMES:
        name = text.lower()
        if data_dir is None:
            raise ConfigError(f"the {name} task needs a data folder (data_dir)")
        base = Path(data_dir)
        candidates = [c for c in (base / name, base) if c.is_dir()]
        if not candidates:
            raise DatasetError(f"{base}: no such folder; expected {_expected(name)}")
        if layout == "auto":
            for root in candidates:
                found = _detect_for(name, root)
                if found is not None:
                    return _call(found, root, name, options)
            raise DatasetError(f"{name}: no dataset in {base / name} or {base}; expected {_expected(name)}")
        if layout == "radimagenet":
            root = next((c for c in candidates if (c / "dataframe").is_dir()), candidates[0])
        else:
            root = candidates[0]
        return _call(layout, root, name, options)
    path = Path(text)
    if data_dir is not None and not path.is_absolute():
        path = Path(data_dir) / path
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder; expected {FOLDERS_LAYOUT}, {CSV_LAYOUT} or {INDEX_LAYOUT}")
    return _call(_detect_path(path) if layout == "auto" else layout, path, None, options)
