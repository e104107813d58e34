"""NT-Xent: SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modan_dicom.losses import _core


class NTXentLoss(nn.Module):
    """SimCLR's NT-Xent loss over V >= 2 views per image.

    Every ordered pair (a, p) of distinct views of the same image is a positive pair, and its loss is

        -log( exp(z_a.z_p/T) / (exp(z_a.z_p/T) + sum_{k: other images' views} exp(z_a.z_k/T)) )

    averaged over all positive pairs. With V = 2 the denominator is all views but a, i.e. SimCLR's
    loss (and ``SupConLoss(labels=None)``); with V > 2 the other views of a's own image are left out of
    each pair's denominator (pytorch-metric-learning's convention), unlike ``SupConLoss(labels=None)``.
    With V = 1 or a single image there is no pair to score and the loss is a zero with a grad_fn.

    Args:
        temperature: T > 0 (SimCLR as used in the paper: 0.1).
        gather_distributed: see ``modan_dicom.losses`` (cross-rank gathering and what each rank returns).

    Shapes:
        features: (N, V, D); returns a scalar.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        self.temperature = _core.check_temperature(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, features: Tensor) -> Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            batch = _core.prepare(features, None, self.gather_distributed)
            if batch.z_all.shape[0] < 2 or batch.views < 2:
                return batch.z_local.sum() * 0.0
            n, v, _ = batch.z_local.shape
            scores = _core.logits(batch, self.temperature).view(n, v, -1, v)
            rows = torch.arange(n, device=scores.device)
            scores[rows, :, rows + batch.offset, :] = float("-inf")  # by index: the own image's views
            log_negatives = torch.logsumexp(scores.view(n, v, -1), dim=2).unsqueeze(2)  # (N, V, 1)
            positive = batch.z_local @ batch.z_local.transpose(1, 2) / self.temperature  # (N, V, V)
            pair_loss = torch.logaddexp(positive, log_negatives) - positive
            distinct = ~torch.eye(v, dtype=torch.bool, device=scores.device)
            loss_sum = torch.where(distinct, pair_loss, torch.zeros_like(pair_loss)).sum()
            return _core.reduce_over_anchors(loss_sum, distinct.sum() * n, batch)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"
