"""The public datasets as their owners ship them: MRNet-v1.0 (ACL), BUSI (breast), DDTI (thyroid).

    mrnet  MRNet-v1.0/{train,valid}/{axial,coronal,sagittal}/NNNN.npy   uint8 (slices, 256, 256)
           MRNet-v1.0/{train,valid}-acl.csv                              header-less "NNNN,0|1"
    busi   Dataset_BUSI_with_GT/{benign,malignant,normal}/*.png         masks (*_mask*.png) skipped
    ddti   {case}_{k}.jpg + {case}.xml with <tirads>                    2, 3 benign; 4, 4a-4c, 5 malignant

None ships folds: each adapter builds grouped, stratified ones (`folds.make_folds`) once and
saves them as CSV in the dataset folder, or in `work_dir` when given (`folds_path` names the file
outright); a saved file is always reused, so every init and every run sees the same folds.

MRNet: the slices of one plane (`plane`, default sagittal) become PNG files in a cache folder
(`<home>/modan-cache/mrnet-<plane>/NNNN_<plane>_S.png`, written once, reused); `slices` picks them:
an int k = the middle k slices of each volume (default 3, like RadImageNet's 1-5 middle sagittal
slices per exam), a list of slice numbers, or "all". Exams of train and valid are pooled (their
numbers do not overlap); group = exam.
BUSI: one image per case, so group = the file; `normal_as_benign=False` leaves the normal images
out (a warning counts them). DDTI: group = case; images whose case has no TI-RADS 2-5 value (blank,
1, 6, unknown) or no XML are left out with a counting warning. TI-RADS "4" without a letter counts
as malignant.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ...atomic import atomic_path
from ...errors import DatasetError
from .base import CLASS_NAMES, IMAGE_SUFFIXES, Task, check_files, check_two_classes, make_items, natural_key, posix_rel
from .folds import fold_warnings, folds_location, load_or_make_folds, writable_home

MRNET_LAYOUT = "MRNet-v1.0/{train,valid}/<plane>/NNNN.npy + {train,valid}-acl.csv (mrnet layout)"
BUSI_LAYOUT = "Dataset_BUSI_with_GT/{benign,malignant,normal}/*.png (busi layout)"
DDTI_LAYOUT = "{case}_{k}.jpg + {case}.xml with <tirads> (ddti layout)"
PLANES = ("axial", "coronal", "sagittal")
MRNET_SPLITS = ("train", "valid")
TIRADS = {"2": 0, "3": 0, "4": 1, "4a": 1, "4b": 1, "4c": 1, "5": 1}
CACHE = "modan-cache"

Progress = Callable[[int, int | None], None]


# ---- detection ------------------------------------------------------------------------------------


def find_mrnet(root: Path) -> Path | None:
    for candidate in (root, root / "MRNet-v1.0"):
        if any((candidate / f"{s}-acl.csv").is_file() for s in MRNET_SPLITS):
            return candidate
    return None


def find_busi(root: Path) -> Path | None:
    for candidate in (root, root / "Dataset_BUSI_with_GT"):
        if (candidate / "benign").is_dir() and (candidate / "malignant").is_dir():
            return candidate
    return None


def find_ddti(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    for xml in root.rglob("*.xml"):
        if re.fullmatch(r"\d+", xml.stem):
            return root
    return None


# ---- MRNet -----------------------------------------------------------------------------------------


def _slice_choice(n: int, slices: int | Sequence[int] | str) -> list[int]:
    if isinstance(slices, str):
        if slices != "all":
            raise DatasetError(f"slices must be an int, a list of slice numbers or 'all', not {slices!r}")
        return list(range(n))
    if isinstance(slices, (int, np.integer)):
        k = max(1, min(int(slices), n))
        start = (n - k) // 2
        return list(range(start, start + k))
    return sorted({int(s) for s in slices if 0 <= int(s) < n})


def _slices_key(slices: int | Sequence[int] | str) -> str:
    if isinstance(slices, str):
        return slices
    if isinstance(slices, (int, np.integer)):
        return f"mid{int(slices)}"
    return "s" + "-".join(str(int(s)) for s in sorted(set(slices)))


def _read_acl_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, header=None, names=["exam", "label"], dtype={"exam": str})
        frame["label"] = frame["label"].astype(np.int64)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path}: not a header-less 'NNNN,0|1' CSV ({exc}); expected {MRNET_LAYOUT}") from exc
    if not frame["label"].isin((0, 1)).all() or frame["exam"].isna().any():
        raise DatasetError(f"{path}: labels must be 0 or 1; expected {MRNET_LAYOUT}")
    frame["exam"] = [e.strip().zfill(4) if e.strip().isdigit() else e.strip() for e in frame["exam"]]
    return frame


def _write_png(target: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(target, suffix=".png") as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG")


def load_mrnet(root: str | os.PathLike[str], *, plane: str = "sagittal", slices: int | Sequence[int] | str = 3,
               work_dir: str | os.PathLike[str] | None = None, folds_path: str | os.PathLike[str] | None = None,
               seed: int = 0, n_folds: int = 5, progress: Progress | None = None) -> Task:
    """MRNet-v1.0 ACL: slices of `plane` as PNG images (cached), labelled by {train,valid}-acl.csv.

    Volumes are (slices, 256, 256) uint8; each chosen slice is one item `NNNN_<plane>_S.png`.
    """
    given = Path(root)
    found = find_mrnet(given)
    if found is None:
        raise DatasetError(f"{given}: no train-acl.csv or valid-acl.csv; expected {MRNET_LAYOUT}")
    if plane not in PLANES:
        raise DatasetError(f"unknown MRNet plane {plane!r}; expected one of {', '.join(PLANES)}")
    home = writable_home(found, work_dir)
    cache = home / CACHE / f"mrnet-{plane}"
    exams: list[tuple[str, str, int]] = []
    seen: dict[str, str] = {}
    for split in MRNET_SPLITS:
        csv = found / f"{split}-acl.csv"
        if not csv.is_file():
            continue
        for exam, label in zip(*(_read_acl_csv(csv)[c] for c in ("exam", "label"))):
            if exam in seen:
                raise DatasetError(f"{found}: exam {exam} is listed in both {seen[exam]}-acl.csv and {split}-acl.csv")
            seen[exam] = split
            exams.append((split, exam, int(label)))
    missing = [f"{s}/{plane}/{e}.npy" for s, e, _ in exams if not (found / s / plane / f"{e}.npy").is_file()]
    if missing:
        raise DatasetError(f"{found}: {len(missing)} of {len(exams)} volumes are missing (first: {missing[0]}); "
                           f"expected {MRNET_LAYOUT}")
    ids, paths, labels, groups = [], [], [], []
    for done, (split, exam, label) in enumerate(exams, 1):
        source = found / split / plane / f"{exam}.npy"
        try:
            volume = np.load(source, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{source}: not a NumPy volume ({exc}); expected {MRNET_LAYOUT}") from exc
        if volume.ndim != 3 or volume.dtype != np.uint8:
            raise DatasetError(f"{source}: shape {volume.shape} {volume.dtype}; expected (slices, H, W) uint8 "
                               f"in {MRNET_LAYOUT}")
        for s in _slice_choice(volume.shape[0], slices):
            name = f"{exam}_{plane}_{s}.png"
            target = cache / name
            if not target.is_file():
                _write_png(target, np.ascontiguousarray(volume[s]))
            ids.append(name)
            paths.append(target)
            labels.append(label)
            groups.append(exam)
        if progress is not None:
            progress(done, len(exams))
    items = make_items(ids, paths, labels, groups)
    check_two_classes(items, str(found))
    location = folds_location(home, f"folds-acl-{plane}-{_slices_key(slices)}.csv", folds_path)
    folds = load_or_make_folds(items, location, n_folds=n_folds, seed=seed)
    return Task("acl", found, items, folds, *CLASS_NAMES["acl"], "mrnet", location,
                tuple(fold_warnings(items, folds)))


# ---- BUSI ------------------------------------------------------------------------------------------


def _busi_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"
                   and "_mask" not in p.stem.lower()), key=lambda p: natural_key(p.name))


def load_busi(root: str | os.PathLike[str], *, normal_as_benign: bool = True,
              work_dir: str | os.PathLike[str] | None = None, folds_path: str | os.PathLike[str] | None = None,
              seed: int = 0, n_folds: int = 5) -> Task:
    """BUSI breast ultrasound: benign (+ normal) = 0, malignant = 1; one group per image."""
    given = Path(root)
    found = find_busi(given)
    if found is None:
        raise DatasetError(f"{given}: no benign/ and malignant/ folders; expected {BUSI_LAYOUT}")
    warnings = []
    rows: list[tuple[Path, int]] = []
    for folder, label in (("benign", 0), ("malignant", 1), ("normal", 0)):
        images = _busi_images(found / folder)
        if folder == "normal" and not normal_as_benign:
            if images:
                warnings.append(f"{len(images)} normal images left out (normal_as_benign=False)")
            continue
        rows += [(p, label) for p in images]
    items = make_items([posix_rel(p, found) for p, _ in rows], [p for p, _ in rows], [lab for _, lab in rows],
                       [p.stem for p, _ in rows])
    check_two_classes(items, str(found))
    name = "folds-breast.csv" if normal_as_benign else "folds-breast-no-normal.csv"
    location = folds_location(writable_home(found, work_dir), name, folds_path)
    folds = load_or_make_folds(items, location, n_folds=n_folds, seed=seed)
    return Task("breast", found, items, folds, *CLASS_NAMES["breast"], "busi", location,
                tuple(warnings + fold_warnings(items, folds)))


# ---- DDTI ------------------------------------------------------------------------------------------


def read_tirads(xml: Path) -> str:
    """The <tirads> text of a DDTI case file ("" when absent); DatasetError when it is not XML."""
    import xml.etree.ElementTree as ET

    data = xml.read_bytes()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:  # no entity expansion from dataset files
        raise DatasetError(f"{xml}: DTDs are not accepted in case files; expected {DDTI_LAYOUT}")
    try:
        element = ET.fromstring(data).find(".//tirads")
    except ET.ParseError as exc:
        raise DatasetError(f"{xml}: not XML ({exc}); expected {DDTI_LAYOUT}") from exc
    return (element.text or "").strip() if element is not None else ""


def tirads_label(value: str) -> int | None:
    """0 for TI-RADS 2-3, 1 for 4, 4a-4c and 5, None otherwise."""
    text = value.strip().lower().replace(" ", "")
    text = re.sub(r"^(ti-?rads|tr)", "", text)
    return TIRADS.get(text)


def load_ddti(root: str | os.PathLike[str], *, work_dir: str | os.PathLike[str] | None = None,
              folds_path: str | os.PathLike[str] | None = None, seed: int = 0, n_folds: int = 5) -> Task:
    """DDTI thyroid ultrasound: `{case}_{k}.jpg` images labelled by the TI-RADS of `{case}.xml`."""
    found = Path(root)
    if find_ddti(found) is None:
        raise DatasetError(f"{found}: no {{case}}.xml case files; expected {DDTI_LAYOUT}")
    image_pattern = re.compile(r"^(\d+)_(\d+)$")
    images: dict[tuple[Path, str], list[Path]] = {}
    for p in found.rglob("*"):
        match = image_pattern.match(p.stem)
        if match and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            images.setdefault((p.parent, match.group(1)), []).append(p)
    rows: list[tuple[Path, int, str]] = []
    excluded: dict[str, int] = {}
    used: set[tuple[Path, str]] = set()
    no_images = 0
    for xml in sorted(found.rglob("*.xml"), key=lambda p: natural_key(p.as_posix())):
        if not re.fullmatch(r"\d+", xml.stem):
            continue
        key = (xml.parent, xml.stem)
        used.add(key)
        case_images = images.get(key, [])
        if not case_images:
            no_images += 1
            continue
        value = read_tirads(xml)
        label = tirads_label(value)
        if label is None:
            excluded[value] = excluded.get(value, 0) + len(case_images)
            continue
        group = posix_rel(xml.with_suffix(""), found)
        rows += [(p, label, group) for p in case_images]
    warnings = []
    if excluded:
        values = ", ".join(repr(v) for v in sorted(excluded))
        warnings.append(f"{sum(excluded.values())} images left out: TI-RADS not in 2-5 ({values})")
    orphans = sum(len(v) for k, v in images.items() if k not in used)
    if orphans:
        warnings.append(f"{orphans} images left out: no {{case}}.xml beside them")
    if no_images:
        warnings.append(f"{no_images} case files have no images")
    items = make_items([posix_rel(p, found) for p, _, _ in rows], [p for p, _, _ in rows],
                       [lab for _, lab, _ in rows], [g for _, _, g in rows])
    check_files(items, str(found), DDTI_LAYOUT)
    check_two_classes(items, str(found))
    location = folds_location(writable_home(found, work_dir), "folds-thyroid.csv", folds_path)
    folds = load_or_make_folds(items, location, n_folds=n_folds, seed=seed)
    return Task("thyroid", found, items, folds, *CLASS_NAMES["thyroid"], "ddti", location,
                tuple(warnings + fold_warnings(items, folds)))
