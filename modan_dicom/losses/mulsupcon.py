"""MulSupCon: the multi-label supervised contrastive loss of the paper (section 3.2, Eq. 3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modan_dicom.errors import ConfigError
from modan_dicom.losses import _core
from modan_dicom.losses.jaccard import jaccard_matrix


class MulSupConLoss(nn.Module):
    """Multi-label supervised contrastive loss, Eq. 3 of ModAn-MulSupCon.

    For each anchor view a among the N*V views of the batch, with z the L2-normalised features:

        A(a) = all views except a
        P(a) = {p in A(a) : w_ap >= threshold},   w_ap = Jaccard(y_a, y_p)
        loss_a = -(1/|P(a)|) * sum_{p in P(a)} w_ap * log( exp(z_a.z_p/T) / sum_{k in A(a)} exp(z_a.z_k/T) )

    and the loss is the mean of loss_a over the anchors with |P(a)| > 0. An anchor without positives is
    left out of the mean (never NaN); if no anchor has a positive the loss is a zero that still has a
    grad_fn.

    Same-image views: the other views of the anchor's own image are positives with weight 1 whatever the
    labels (they are the same sample, as in SimCLR/SupCon's two-crop setting). This only changes Eq. 3
    for an image whose label row is all zero, whose Jaccard with itself would otherwise be 0/0 := 0;
    such an image has Jaccard 0 with every other image.

    Args:
        temperature: T > 0 (paper: 0.07).
        threshold: tau in [0, 1] (paper: 0.3). Positives are pairs with Jaccard >= tau, so tau = 0 makes
            every other view a positive (with weight w_ap, possibly 0).
        gather_distributed: with torch.distributed initialised and world size W > 1, contrast the local
            anchors against the views of all ranks; see ``modan_dicom.losses`` for what each rank returns.

    Shapes:
        features: (N, V, D) projections, any float dtype (computed in float32, float64 kept).
        labels: (N, K) multi-hot (nonzero = active).
        returns: scalar, in the compute dtype.
    """

    def __init__(self, temperature: float = 0.07, threshold: float = 0.3, gather_distributed: bool = True) -> None:
        super().__init__()
        self.temperature = _core.check_temperature(temperature)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.gather_distributed = gather_distributed

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        if labels.dim() != 2:
            raise ValueError(f"labels must be (N, K) multi-hot, got shape {tuple(labels.shape)}")
        with torch.autocast(device_type=features.device.type, enabled=False):
            batch = _core.prepare(features, labels, self.gather_distributed)
            dtype = batch.z_local.dtype  # Jaccard values like 1/3 in the compute precision
            w = jaccard_matrix(batch.labels_local.to(dtype), batch.labels_all.to(dtype))
            own = _core.same_image(batch)
            w = torch.where(own, torch.ones_like(w), w)
            return _core.weighted_positive_loss(batch, w, w >= self.threshold, self.temperature)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, threshold={self.threshold}, "
                f"gather_distributed={self.gather_distributed}")
