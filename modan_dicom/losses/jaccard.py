"""Pairwise Jaccard similarity of multi-hot label sets, vectorised."""

from __future__ import annotations

import torch
from torch import Tensor


def jaccard_matrix(labels: Tensor, other: Tensor | None = None) -> Tensor:
    """Jaccard similarity |S_i ∩ S_j| / |S_i ∪ S_j| between the label sets of every pair of rows.

    Args:
        labels: (N, K) multi-hot; any nonzero entry counts as an active label.
        other: optional (M, K) multi-hot; defaults to ``labels``.

    Returns:
        (N, M) float32 (float64 if ``labels`` is float64) in [0, 1]. Two empty label sets have
        similarity 0 (0/0 is defined as 0), including an empty set with itself.
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be (N, K) multi-hot, got shape {tuple(labels.shape)}")
    other = labels if other is None else other
    if other.dim() != 2 or other.shape[1] != labels.shape[1]:
        raise ValueError(f"other must be (M, {labels.shape[1]}), got shape {tuple(other.shape)}")
    dtype = torch.float64 if labels.dtype == torch.float64 else torch.float32
    a = (labels != 0).to(dtype)
    b = (other != 0).to(dtype)
    with torch.autocast(device_type=labels.device.type, enabled=False):
        intersection = a @ b.T  # exact: counts are small integers
    union = a.sum(1, keepdim=True) + b.sum(1).unsqueeze(0) - intersection
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.zeros_like(union))
