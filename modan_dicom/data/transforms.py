"""Deterministic per-image work, as MONAI transforms: decode with `load_image`, resize, quantise.

This is what the MONAI caches keep (in RAM or under `--cache-dir`); random augmentation happens
later, batched on the training device (`modan_dicom.data.augment`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, Transform

from ..imaging import load_image


def resize_unit_image(image: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Resize a float image in [0, 1] to `size`×`size` and quantise it.

    Args:
        image: (H, W) float array with values in [0, 1].
        size: output side in pixels.
    Returns:
        (1, size, size) uint8 tensor (0 ↔ 0.0, 255 ↔ 1.0), antialiased bilinear resampling.
    """
    tensor = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None, None]
    if tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (tensor[0].clamp_(0.0, 1.0) * 255.0).round_().to(torch.uint8)


class LoadResized(Transform):
    """Path → (1, size, size) uint8 tensor: `load_image`, then `resize_unit_image`."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, path: str) -> torch.Tensor:
        return resize_unit_image(load_image(path), self.size)


class LoadResizedd(MapTransform):
    """`data["key"]` -> `data["image"]`: the (1, size, size) uint8 image of the file `paths[key]`.

    The cache item holds only the key (`bank.cache_key`: a digest), never the path, so that neither
    a MONAI cache file's name nor its bytes name a patient; `decode` (an `IsolatedDecoder`, or
    `LoadResized` in this process) turns the path into the image.
    """

    def __init__(
        self,
        paths: Mapping[str, str],
        decode: Callable[[str], torch.Tensor],
        key: str = "key",
        image_key: str = "image",
    ) -> None:
        super().__init__(keys=[key])
        self.paths, self.decode = paths, decode
        self.key, self.image_key = key, image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        result = dict(data)
        result[self.image_key] = self.decode(self.paths[str(data[self.key])])
        return result
