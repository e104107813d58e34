"""The RadImageNet folder layout: labels from folder names instead of DICOM headers.

    CT/<region>/<class>/<file>.png      e.g. CT/lung/Nodule/x.png, CT/abd/biliary_dilation?/x.png
    MR/<region>/<class>/<file>.png      MR abdomen is "mriabd"; e.g. MR/af/achilles_pathology_/x.png
    US/<organ>/<file>.png               ultrasound has no region level; e.g. US/thyroid_nodule/x.png

Folder names are kept verbatim (typos, trailing underscores, "?" included). The `label` column is
the class folder path relative to the layout root: "CT/lung/Nodule", "MR/mriabd/normal",
"US/gb" — unique over the 165 classes, reversible to the folder, and free of the separator
ambiguity a "-" join would have. The vocabulary turns the modality folder and the region (or US
organ) into controlled ids: `vocab.lookup_radimagenet("US", "gb")` gives ("US", "gallbladder"),
which projects to the `abdomen` axis; thyroid and thyroid_nodule give thyroid.

A tree may sit one folder down (e.g. `radiology_ai/CT/...`): the layout keeps that prefix.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

MODALITY_FOLDERS = ("CT", "MR", "US")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class FolderClass:
    """The class a file's folders give it."""

    modality_folder: str  # CT, MR or US
    region: str | None  # region folder (None for US)
    class_folder: str  # the class folder (the organ for US)

    @property
    def label(self) -> str:
        parts = [self.modality_folder, self.region, self.class_folder]
        return "/".join(p for p in parts if p is not None)

    @property
    def region_or_organ(self) -> str:
        return self.region if self.region is not None else self.class_folder


def parse_path(rel_path: str, prefix: str = "") -> FolderClass | None:
    """The class of a file at `rel_path` (POSIX, relative to the source) or None when the path
    does not follow the layout. `prefix` is the layout root inside the source ("" or "dir/")."""
    if prefix:
        if not rel_path.startswith(prefix):
            return None
        rel_path = rel_path[len(prefix):]
    parts = rel_path.split("/")
    if len(parts) == 4 and parts[0] in ("CT", "MR"):
        return FolderClass(parts[0], parts[1], parts[2])
    if len(parts) == 3 and parts[0] == "US":
        return FolderClass("US", None, parts[1])
    return None


def image_kind(head: bytes) -> str | None:
    """"png", "jpeg" or None from a file's first bytes."""
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def png_size(head: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a PNG's IHDR chunk (its first 24 bytes), else None."""
    if len(head) >= 24 and head.startswith(PNG_MAGIC) and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return height, width
    return None


def _first_file(folder: Path, max_entries: int = 200) -> Path | None:
    """The first regular file (sorted, depth first) under `folder`, looking at few entries."""
    seen = 0
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            names = sorted(os.listdir(current), reverse=True)
        except OSError:
            continue
        files, dirs = [], []
        for name in names:
            seen += 1
            if seen > max_entries:
                return None
            path = current / name
            (dirs if path.is_dir() else files).append(path)
        if files:
            return files[-1]
        stack.extend(dirs)
    return None


def detect_prefix(source: str | os.PathLike[str]) -> str | None:
    """The layout root of a RadImageNet tree ("" or "<dir>/"), or None when `source` does not
    look like one: its (non-hidden) folders must all be CT / MR / US — directly or under one
    wrapper folder — and the first file under each must be a PNG or JPEG at the layout's depth.
    A DICOM export sorted into CT/MR folders fails the last test."""
    root = Path(source)
    for prefix in ("", None):
        if prefix is None:
            dirs = _subdirs(root)
            if len(dirs) != 1:
                return None
            base, prefix = root / dirs[0], dirs[0] + "/"
        else:
            base = root
        dirs = _subdirs(base)
        if dirs and set(dirs) <= set(MODALITY_FOLDERS):
            return prefix if all(_looks_like_layout(base, d) for d in dirs) else None
    return None


def _subdirs(folder: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def _looks_like_layout(base: Path, modality: str) -> bool:
    first = _first_file(base / modality)
    if first is None:
        return False
    rel = first.relative_to(base).as_posix()
    if parse_path(rel) is None:
        return False
    try:
        with open(first, "rb") as handle:
            return image_kind(handle.read(8)) is not None
    except OSError:
        return False
