"""Linear probing on cached features: the frozen encoder runs once per image, the head trains on its features.

The encoder is frozen and in eval mode (BatchNorm uses its running statistics), so its features of an
image are the same in every fold, repeat and epoch: `probe_features` computes them once per (task, init)
and every linear-probe cell trains only a 512 → 1 head on them, with the fine-tuning recipe.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .features import encode_images
from .finetune import Recipe, new_head, train_and_score


def probe_features(encoder: nn.Module, bank: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    """(N, 512) float32 features of the (N, 1, S, S) uint8 `bank`, encoder in eval mode, on bank's device
    (`batch_size`: as `encode_images`)."""
    return encode_images(encoder, bank, batch_size=batch_size, device=bank.device).to(bank.device)


def linear_cell(features: torch.Tensor, labels: torch.Tensor, train: np.ndarray, test: np.ndarray, *,
                seed: int, recipe: Recipe) -> np.ndarray:
    """Train `new_head(seed)` on `features[train]` (N, D); return its (len(test),) logits on `features[test]`."""
    head = new_head(seed, features.shape[1]).to(features.device)
    return train_and_score(head, features, labels, train, test, seed=seed, recipe=recipe)
