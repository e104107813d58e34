"""MulSupCon forward+backward: our vectorised loss against an authors'-style loss whose Jaccard matrix
is built with a Python double loop over the batch (issue 3, "Measured").

    python benchmarks/bench_loss.py [--repeats 5] [--device cpu] [--n 256 --views 2 --dim 128 --labels 12]

Prints the median time of each (after one warm-up) and the speed-up: the baseline (seconds per call) is
run --repeats times, ours (milliseconds) --repeats-fast times, so that a few slow calls caused by other
processes on a shared machine do not move the median.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from modan_dicom.losses import MulSupConLoss


def authors_style_loss(
    features: torch.Tensor, labels: torch.Tensor, temperature: float, threshold: float
) -> torch.Tensor:
    """The baseline: the Jaccard matrix filled pair by pair with scalar tensor ops (as the authors' loss
    did), then the usual masked SupCon-style math on the (V*N, V*N) view matrix."""
    n, v, _ = features.shape
    jaccard = torch.zeros(n, n, device=features.device)
    for i in range(n):
        for j in range(n):
            intersection = torch.logical_and(labels[i] > 0, labels[j] > 0).sum()
            union = torch.logical_or(labels[i] > 0, labels[j] > 0).sum()
            jaccard[i, j] = intersection / union if union > 0 else 0.0
    z = F.normalize(features, dim=-1)
    contrast = torch.cat(torch.unbind(z, dim=1))  # view-major (V*N, D)
    weights = jaccard.repeat(v, v)
    not_self = 1.0 - torch.eye(n * v, device=features.device)
    positives = (weights >= threshold).float() * not_self
    logits = contrast @ contrast.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
    per_anchor = -(weights * positives * log_prob).sum(1) / positives.sum(1).clamp_min(1)
    return per_anchor[positives.sum(1) > 0].mean()


def _time(step: Callable[[], None], repeats: int, device: torch.device) -> list[float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of the slow baseline")
    parser.add_argument("--repeats-fast", type=int, default=50, help="timed calls of our loss")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=256, help="images per batch")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--labels", type=int, default=12, help="multi-hot width K")
    parser.add_argument("--temperature", type=float, default=0.07)
    parser.add_argument("--threshold", type=float, default=0.3)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    features = torch.randn(args.n, args.views, args.dim, generator=g).to(device).requires_grad_(True)
    # one modality among 4 and one or two anatomy labels, like the paper's multi-hot
    labels = torch.zeros(args.n, args.labels)
    labels[torch.arange(args.n), torch.randint(0, 4, (args.n,), generator=g)] = 1
    for _ in range(2):
        labels[torch.arange(args.n), torch.randint(4, args.labels, (args.n,), generator=g)] = 1
    labels = labels.to(device)
    ours = MulSupConLoss(args.temperature, args.threshold)

    def run(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            features.grad = None
            loss_fn().backward()
        return step

    ours_loss = ours(features, labels)
    base_loss = authors_style_loss(features, labels, args.temperature, args.threshold)
    t_ours = statistics.median(_time(run(lambda: ours(features, labels)), args.repeats_fast, device))
    t_base = statistics.median(_time(
        run(lambda: authors_style_loss(features, labels, args.temperature, args.threshold)), args.repeats, device))

    print(f"MulSupCon forward+backward, N={args.n} V={args.views} D={args.dim} K={args.labels}, "
          f"T={args.temperature} tau={args.threshold}, device={device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"median of {args.repeats} (baseline) / {args.repeats_fast} (ours) calls")
    print(f"{'implementation':<34}{'loss':>12}{'ms':>14}")
    print(f"{'authors-style (double-loop Jaccard)':<34}{base_loss.item():>12.6f}{t_base * 1e3:>14.2f}")
    print(f"{'modan_dicom MulSupConLoss':<34}{ours_loss.item():>12.6f}{t_ours * 1e3:>14.2f}")
    print(f"speed-up: {t_base / t_ours:.0f}x  (|loss difference| {abs(base_loss.item() - ours_loss.item()):.2e})")


if __name__ == "__main__":
    main()
