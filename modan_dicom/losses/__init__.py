"""Contrastive losses for pretraining: MulSupCon (the paper's Eq. 3), SupCon (Eq. 2), NT-Xent (SimCLR).

Every loss takes ``features: (N, V, D)`` — N images, V augmented views each, D-dimensional projections
(normalised inside) — and returns a scalar. Logits and log-sum-exp are computed in float32 (float64 if
given float64) with autocast switched off, so they are stable at T = 0.07 under bf16/fp16 autocast.

With ``torch.distributed`` initialised (world size W > 1) and ``gather_distributed=True``, features and
labels are gathered from all ranks with gradients. Each rank returns ``W * (sum of its local anchors'
losses) / (number of valid anchors on all ranks)``: the *mean over ranks* of these values is the loss of
one process holding the whole global batch, and DDP's gradient averaging then yields exactly that
process's gradients. To log the global loss, average a detached copy over ranks
(``dist.all_reduce(x, op=AVG)``); with equal per-rank batches every rank's value is already close to it.
"""

from __future__ import annotations

from modan_dicom.losses.distributed import gather_with_grad
from modan_dicom.losses.jaccard import jaccard_matrix
from modan_dicom.losses.mulsupcon import MulSupConLoss
from modan_dicom.losses.ntxent import NTXentLoss
from modan_dicom.losses.supcon import SupConLoss

__all__ = ["MulSupConLoss", "NTXentLoss", "SupConLoss", "gather_with_grad", "jaccard_matrix"]
