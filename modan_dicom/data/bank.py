"""The uint8 image bank: every training image decoded once, resized, and kept on the training device.

Decoding goes through MONAI: a `Dataset` whose transform decodes, or, with a `cache_dir`, a
`PersistentDataset`, so that a second run decodes nothing. Each image is decoded in a worker process
(`decode.IsolatedDecoder`), so a file that makes a decoder raise, panic, crash or hang becomes one
recorded failure (`Failure`: index row and reason) and the bank is built from the rest.

A cache item holds only a key (`cache_key`: a digest of the path, the file's size and mtime and
the image size), never the path: a cache file's name and bytes name no patient, and a changed file
or another `--image-size` is decoded again.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import Dataset, PersistentDataset

from .. import atomic
from ..errors import UndecodableError
from .decode import DECODE_TIMEOUT_S, IsolatedDecoder
from .targets import Targets
from .transforms import LoadResizedd

FAILURE_COLUMNS = ("index_row", "instance_key", "series_key", "reason")


@dataclass(frozen=True)
class Failure:
    """An image that could not be decoded: its row in the index frame and a reason without identifiers."""

    row: int
    reason: str


@dataclass
class ImageBank:
    """Training images and their labels, as tensors on one device.

    Attributes:
        images: (N, 1, S, S) uint8.
        multi_hot: (N, K) float32.
        classes: (N,) int64.
        axes: names of the K multi-hot axes.
        class_names: names of the classes.
        rows: (N,) positions of the images' rows in the index frame.
        failures: the selected rows that could not be decoded (not in the bank).
    """

    images: torch.Tensor
    multi_hot: torch.Tensor
    classes: torch.Tensor
    axes: list[str]
    class_names: list[str]
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    failures: list[Failure] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> ImageBank:
        return ImageBank(
            self.images.to(device),
            self.multi_hot.to(device),
            self.classes.to(device),
            self.axes,
            self.class_names,
            self.rows,
            self.failures,
        )


def cache_key(path: Path, size: int, mtime_ns: int, image_size: int) -> str:
    """The cache key of one file at one image size: a SHA-256 digest, which does not show the path."""
    text = f"{path}\0{int(size)}\0{int(mtime_ns)}\0{int(image_size)}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def _stat(row: pd.Series, column: str) -> int:
    return int(row[column]) if column in row and pd.notna(row[column]) else -1


def bank_items(index: pd.DataFrame, rows: np.ndarray, root: Path, image_size: int) -> tuple[list[dict], list[str]]:
    """The cache items of the selected index rows ({"key": digest}) and the absolute paths, in order."""
    items, paths = [], []
    for i in rows:
        row = index.iloc[int(i)]
        path = root / row["path"]
        items.append({"key": cache_key(path, _stat(row, "size"), _stat(row, "mtime_ns"), image_size)})
        paths.append(str(path))
    return items, paths


def build_bank(
    index: pd.DataFrame,
    targets: Targets,
    root: str | Path,
    image_size: int,
    *,
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = None,
    workers: int = 2,
    timeout_s: float = DECODE_TIMEOUT_S,
    progress: Callable[[int, int | None], None] | None = None,
) -> ImageBank:
    """Decode the usable rows of `index` into an `ImageBank` on `device`; undecodable ones go to `failures`.

    Args:
        index: the index frame; `targets.rows` select the rows.
        targets: from `build_targets`; the bank keeps the targets of the decoded rows.
        root: the folder the index's relative paths start from.
        image_size: side S of the square uint8 images.
        cache_dir: a `PersistentDataset` cache; None keeps the decoded images in the bank only.
        workers: decoding processes (at least 1).
        timeout_s: longest time one image may take; a slower one is a failure.
        progress: (images done, total).
    """
    root = Path(root)
    items, paths = bank_items(index, targets.rows, root, image_size)
    decoded: list[torch.Tensor] = []
    kept: list[int] | np.ndarray = []
    failures: list[Failure] = []
    with IsolatedDecoder(image_size, workers, timeout_s) as decoder:
        transform = LoadResizedd(dict(zip((item["key"] for item in items), paths)), decoder)
        if cache_dir is not None:
            dataset: Dataset = PersistentDataset(items, transform=transform, cache_dir=Path(cache_dir))
        else:
            dataset = Dataset(items, transform=transform)
        for i, result in decoder.map(lambda i: dataset[i]["image"], paths, progress):
            if isinstance(result, str):
                failures.append(Failure(int(targets.rows[i]), result))
            else:
                decoded.append(torch.as_tensor(result))
                kept.append(i)
    # one stack at the end: a copy per image costs far more (each is a parallel op on a busy machine)
    images = torch.stack(decoded) if decoded else torch.empty(0, 1, image_size, image_size, dtype=torch.uint8)
    kept = np.asarray(kept, dtype=np.int64)
    return ImageBank(
        images=images.to(torch.uint8).contiguous().to(device),
        multi_hot=torch.as_tensor(targets.multi_hot[kept], dtype=torch.float32, device=device),
        classes=torch.as_tensor(targets.classes[kept], dtype=torch.int64, device=device),
        axes=list(targets.axes),
        class_names=list(targets.class_names),
        rows=np.asarray(targets.rows)[kept].astype(np.int64),
        failures=failures,
    )


def write_failures(path: str | Path, index: pd.DataFrame, failures: Sequence[Failure]) -> None:
    """Write `failures` as CSV (atomically): index_row, instance_key, series_key, reason; no paths."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FAILURE_COLUMNS)
    for failure in sorted(failures, key=lambda f: f.row):
        row = index.iloc[failure.row]
        keys = [row[c] if c in row and isinstance(row[c], str) else "" for c in ("instance_key", "series_key")]
        writer.writerow([failure.row, *keys, failure.reason])
    atomic.write_text(Path(path), buffer.getvalue())


def check_failures(n_failed: int, n_images: int, max_share: float, listed_in: str | Path) -> None:
    """Raise `UndecodableError` when more than `max_share` of `n_images` could not be decoded."""
    if n_failed > max_share * n_images or (n_images and n_failed == n_images):
        raise UndecodableError(
            f"{n_failed} of {n_images} images cannot be decoded ({n_failed / max(1, n_images):.1%}), more than "
            f"max-decode-failures {max_share:g} allows; the list is in {listed_in}"
        )
