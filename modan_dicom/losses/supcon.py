"""SupCon: the supervised contrastive loss with single labels (paper Eq. 2; Khosla et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modan_dicom.losses import _core


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Eq. 2), or SimCLR-style instance discrimination without labels.

    For each anchor view a among the N*V views: A(a) = all views except a; P(a) = the views of the
    images with the same label as a's image (with ``labels=None``: the other views of a's own image);
    loss_a = -(1/|P(a)|) * sum_{p in P(a)} log softmax_{A(a)}(p); the loss is the mean over anchors with
    |P(a)| > 0 (an anchor without positives is left out, never NaN; none at all gives a zero with a
    grad_fn). Equals MulSupConLoss with one-hot labels and any threshold in (0, 1].

    Args:
        temperature: T > 0 (paper: 0.07).
        gather_distributed: see ``modan_dicom.losses`` (cross-rank gathering and what each rank returns).

    Shapes:
        features: (N, V, D); labels: (N,) integer class ids, or None; returns a scalar.
    """

    def __init__(self, temperature: float = 0.07, gather_distributed: bool = True) -> None:
        super().__init__()
        self.temperature = _core.check_temperature(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, features: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is not None and labels.dim() != 1:
            raise ValueError(f"labels must be (N,) class ids, got shape {tuple(labels.shape)}")
        with torch.autocast(device_type=features.device.type, enabled=False):
            batch = _core.prepare(features, labels, self.gather_distributed)
            if batch.labels_local is None:
                positives = _core.same_image(batch)
            else:
                positives = batch.labels_local.unsqueeze(1) == batch.labels_all.unsqueeze(0)
            weights = positives.to(batch.z_local.dtype)
            return _core.weighted_positive_loss(batch, weights, positives, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"
