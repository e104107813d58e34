"""Shared machinery of the contrastive losses: input checks, cross-rank gathering, the similarity
logits with self-similarity masked by index, the multi-positive log-likelihood and the reduction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from modan_dicom.errors import ConfigError
from modan_dicom.losses import distributed


def check_temperature(temperature: float) -> float:
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    return float(temperature)


@dataclass
class Batch:
    """The local batch and the global batch it belongs to.

    z_local: (N, V, D) L2-normalised local views in the compute dtype.
    z_all: (N_all, V, D) the same from every rank in rank order (``z_local`` itself on one process).
    labels_local / labels_all: (N, ...) / (N_all, ...) or None.
    offset: index of this rank's first image in ``z_all``.
    world: number of ranks whose anchors make up the global batch (1 when not gathering).
    """

    z_local: Tensor
    z_all: Tensor
    labels_local: Tensor | None
    labels_all: Tensor | None
    offset: int
    world: int

    @property
    def views(self) -> int:
        return self.z_local.shape[1]


def prepare(features: Tensor, labels: Tensor | None, gather: bool) -> Batch:
    """Check shapes, cast to float32 (float64 stays), L2-normalise and gather across ranks if asked.

    Must be called with autocast disabled (the losses do) so the casts are not undone.
    """
    if features.dim() != 3:
        raise ValueError(f"features must be (N, V, D), got shape {tuple(features.shape)}")
    if labels is not None and labels.shape[0] != features.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} rows but features has {features.shape[0]} images")
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    z = F.normalize(features.to(dtype), dim=-1)
    world = distributed.world_size() if gather else 1
    if world == 1:
        return Batch(z, z, labels, labels, 0, 1)
    sizes = distributed.gather_sizes(z.shape[0], z.device)
    me = distributed.rank()
    z_all = distributed.gather_with_grad(z, sizes)
    labels_all = None if labels is None else distributed.gather_no_grad(labels, sizes)
    return Batch(z, z_all, labels, labels_all, sum(sizes[:me]), world)


def logits(batch: Batch, temperature: float) -> Tensor:
    """Cosine-similarity logits z_a.z_k / T of the local views (anchors) against all views.

    Rows are the local views flattened image-major (row i*V + v is view v of local image i); columns
    the global views likewise: (N*V, N_all*V). Anchor row r sits in column offset*V + r.
    """
    n, v, d = batch.z_local.shape
    return (batch.z_local.reshape(n * v, d) / temperature) @ batch.z_all.reshape(-1, d).T


def same_image(batch: Batch) -> Tensor:
    """(N, N_all) bool: local image i is global image offset + i."""
    n, m = batch.z_local.shape[0], batch.z_all.shape[0]
    rows = torch.arange(n, device=batch.z_local.device) + batch.offset
    return rows.unsqueeze(1) == torch.arange(m, device=batch.z_local.device).unsqueeze(0)


def log_denominators(batch: Batch, temperature: float) -> Tensor:
    """(N, V) log sum_{k in A(a)} exp(z_a.z_k / T) for every local anchor view a.

    The anchor's own column is excluded by index (set to -inf inside the log-sum-exp only, which
    subtracts the row maximum in the compute dtype); nothing downstream multiplies an infinity.
    """
    n, v, _ = batch.z_local.shape
    scores = logits(batch, temperature)
    scores.diagonal(offset=batch.offset * v).fill_(float("-inf"))
    return torch.logsumexp(scores, dim=1).view(n, v)


def weighted_positive_loss(batch: Batch, weights: Tensor, positives: Tensor, temperature: float) -> Tensor:
    """The loss of Eq. 3 (Eq. 2 when all weights are 1) for the local anchors, reduced DDP-consistently.

    For anchor a (a local view): A(a) = all global views but a; P(a) = views p != a whose image pair
    is marked in ``positives``; loss_a = -(1/|P(a)|) * sum_{p in P(a)} w_ap * log softmax_{A(a)}(p).

    Since w_ap depends only on the images of a and p, the weighted sum splits into
    sum_p w_ap z_a.z_p / T - (sum_p w_ap) * log_denominator_a, and sum_p w_ap z_p is one (N, N_all) @
    (N_all, D) product with the per-image sums of the views: no (N*V, N_all*V) weight matrix is built.

    Args:
        weights: (N, N_all) w between local and global images (compute dtype).
        positives: (N, N_all) bool, the image pairs whose views are positives.
    """
    n, v, _ = batch.z_local.shape
    if batch.z_all.shape[0] * v < 2:  # A(a) is empty: nothing to contrast
        return batch.z_local.sum() * 0.0
    w = torch.where(positives, weights.to(batch.z_local.dtype), torch.zeros_like(weights, dtype=batch.z_local.dtype))
    rows = torch.arange(n, device=w.device)
    own_weight = w[rows, rows + batch.offset]  # weight of the anchor's own image, whose views include a itself
    own_positive = positives[rows, rows + batch.offset].long()
    pulled = w @ batch.z_all.sum(dim=1)  # (N, D): sum over positive images j of w_ij * sum_u z_ju
    self_dot = (batch.z_local * batch.z_local).sum(-1)  # (N, V), 1 up to rounding
    weighted_logits = ((batch.z_local * pulled.unsqueeze(1)).sum(-1) - own_weight.unsqueeze(1) * self_dot) / temperature
    weight_sum = w.sum(1) * v - own_weight  # (N,) sum of w_ap over P(a): the same for every view of image i
    n_pos = positives.sum(1) * v - own_positive  # (N,) |P(a)|
    log_prob_sum = weighted_logits - weight_sum.unsqueeze(1) * log_denominators(batch, temperature)
    per_anchor = -log_prob_sum / n_pos.clamp_min(1).unsqueeze(1)
    valid = (n_pos > 0).unsqueeze(1)
    loss_sum = torch.where(valid, per_anchor, torch.zeros_like(per_anchor)).sum()
    return reduce_over_anchors(loss_sum, valid.sum() * v, batch)


def reduce_over_anchors(loss_sum: Tensor, count: Tensor, batch: Batch) -> Tensor:
    """Mean over the valid anchors of the *global* batch, as this rank's share.

    On one process: loss_sum / count. Gathered over W ranks: W * loss_sum / (count summed over ranks),
    so that the mean over ranks (what DDP's gradient averaging differentiates) is the global mean.
    A batch without any valid anchor gives 0 (still attached to the graph).
    """
    count = count.to(loss_sum.dtype)
    if batch.world > 1:
        count = count.detach().clone()
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        return loss_sum * batch.world / count.clamp_min(1)
    return loss_sum / count.clamp_min(1)
