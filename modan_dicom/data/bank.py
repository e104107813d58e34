"""The uint8 image bank: every training image decoded once, resized, and kept on the training device.

Decoding goes through MONAI: `CacheDataset` (in RAM, decoded by `workers` threads) or, with a
`cache_dir`, `PersistentDataset`, so that a second run decodes nothing. Cache keys include the file's
size and mtime and the image size, so a changed file or another `--image-size` is decoded again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, DataLoader, PersistentDataset

from ..errors import DatasetError, ModanError
from .targets import Targets
from .transforms import LoadResizedd


@dataclass
class ImageBank:
    """Training images and their labels, as tensors on one device.

    Attributes:
        images: (N, 1, S, S) uint8.
        multi_hot: (N, K) float32.
        classes: (N,) int64.
        axes: names of the K multi-hot axes.
        class_names: names of the classes.
        paths: (N,) source paths, for reports.
    """

    images: torch.Tensor
    multi_hot: torch.Tensor
    classes: torch.Tensor
    axes: list[str]
    class_names: list[str]
    paths: list[str] = field(default_factory=list)

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
            self.paths,
        )


def _user_error(exc: BaseException) -> ModanError | None:
    """The `ModanError` behind `exc`: MONAI re-raises a transform's error wrapped in a RuntimeError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModanError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def bank_items(index: pd.DataFrame, rows: np.ndarray, root: Path, image_size: int) -> list[dict]:
    """The cache items of the selected index rows: absolute path plus what invalidates a cached copy."""
    items = []
    for i in rows:
        row = index.iloc[int(i)]
        items.append(
            {
                "path": str(root / row["path"]),
                "size": int(row["size"]) if "size" in row and pd.notna(row["size"]) else -1,
                "mtime_ns": int(row["mtime_ns"]) if "mtime_ns" in row and pd.notna(row["mtime_ns"]) else -1,
                "image_size": int(image_size),
            }
        )
    return items


def build_bank(
    index: pd.DataFrame,
    targets: Targets,
    root: str | Path,
    image_size: int,
    *,
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = None,
    workers: int = 2,
    progress: Callable[[int, int | None], None] | None = None,
) -> ImageBank:
    """Decode the usable rows of `index` into an `ImageBank` on `device`.

    Args:
        index: the index frame; `targets.rows` select the rows.
        targets: from `build_targets`.
        root: the folder the index's relative paths start from.
        image_size: side S of the square uint8 images.
        cache_dir: a `PersistentDataset` cache; None keeps the decoded images in RAM only.
        workers: decoding threads (RAM cache) or loader processes (persistent cache).
    Raises:
        DatasetError: an image cannot be decoded (the message names it).
    """
    root = Path(root)
    items = bank_items(index, targets.rows, root, image_size)
    transform = LoadResizedd(image_size)
    try:
        if cache_dir is not None:
            dataset = PersistentDataset(items, transform=transform, cache_dir=Path(cache_dir))
            loader = DataLoader(dataset, batch_size=64, num_workers=max(0, workers), shuffle=False)
            chunks = []
            for batch in loader:
                chunks.append(batch["image"].as_tensor() if hasattr(batch["image"], "as_tensor") else batch["image"])
                if progress is not None:
                    progress(sum(len(c) for c in chunks), len(items))
            images = torch.cat(chunks) if chunks else torch.empty(0, 1, image_size, image_size, dtype=torch.uint8)
        else:
            dataset = CacheDataset(items, transform=transform, num_workers=max(1, workers), progress=False)
            images = torch.stack([torch.as_tensor(dataset[i]["image"]) for i in range(len(dataset))])
            if progress is not None:
                progress(len(items), len(items))
    except Exception as exc:
        cause = _user_error(exc)
        if cause is None:
            raise
        raise DatasetError(f"cannot build the image bank: {cause}") from exc
    return ImageBank(
        images=images.to(torch.uint8).contiguous().to(device),
        multi_hot=torch.as_tensor(targets.multi_hot, dtype=torch.float32, device=device),
        classes=torch.as_tensor(targets.classes, dtype=torch.int64, device=device),
        axes=list(targets.axes),
        class_names=list(targets.class_names),
        paths=[item["path"] for item in items],
    )
