"""Gathering a batch from all ranks with gradients (the cross-rank part of the contrastive losses)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Number of processes in the default group; 1 when ``torch.distributed`` is not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group; 0 when ``torch.distributed`` is not initialised."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_sizes(n: int, device: torch.device) -> list[int]:
    """The first dimension of every rank's batch (a collective: every rank must call it)."""
    size = torch.tensor([n], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _all_gather_cat(x: Tensor, sizes: list[int]) -> Tensor:
    # all_gather needs equal shapes: pad to the largest batch, then cut each part back to its size
    longest = max(sizes)
    if x.shape[0] < longest:
        x = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(parts, x.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradient of the gathered tensor over ranks and returns this
    rank's slice: the gradient of ``sum over ranks of each rank's loss`` w.r.t. the local input."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: tuple[int, ...]) -> Tensor:  # type: ignore[override]
        ctx.sizes = sizes
        ctx.rank = dist.get_rank()
        return _all_gather_cat(x, list(sizes))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_with_grad(x: Tensor, sizes: list[int] | None = None) -> Tensor:
    """Concatenate ``x`` (n_r, ...) from every rank in rank order, differentiably.

    Ranks may hold different n_r. The backward all-reduces (sums) the incoming gradient and returns this
    rank's slice, so every rank must run backward through it. Without an initialised process group (or
    with one process) this returns ``x`` unchanged.
    """
    if world_size() == 1:
        return x
    if sizes is None:
        sizes = gather_sizes(x.shape[0], x.device)
    return _GatherWithGrad.apply(x, tuple(sizes))


def gather_no_grad(x: Tensor, sizes: list[int]) -> Tensor:
    """Concatenate ``x`` (n_r, ...) from every rank in rank order (labels: no gradient)."""
    if world_size() == 1:
        return x
    if x.dtype == torch.bool:  # gloo has no bool all_gather
        return _all_gather_cat(x.to(torch.uint8), sizes).bool()
    return _all_gather_cat(x, sizes)
