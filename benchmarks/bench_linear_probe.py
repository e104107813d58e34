"""Linear probing with cached features vs running the frozen encoder every epoch; and a full linear-probe sweep.

(1) default: the same cells (thyroid replica, one repeat, ``--folds`` folds, the paper's recipe) trained two ways:

- cached (ours): the frozen encoder (eval mode) encodes every image once (`probe_features`), then each fold trains a
  512 -> 1 head on the cached features (`linear_cell`);
- per-epoch: what a plain training loop does — every mini-batch of every epoch, and the test images at scoring,
  go through the frozen encoder (eval mode, no gradients), then the head.

Both give the same scores (checked); the script prints both times and the ratio (target >= 20x at 224 px).

(2) ``--sweep``: `benchmark` of one init (scratch) in linear mode, ``--repeats`` x 5 folds, on the thyroid replica
(349 images): wall time, decoding and report included.

    python benchmarks/bench_linear_probe.py --image-size 224
    python benchmarks/bench_linear_probe.py --sweep --image-size 224 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modan_dicom.atomic import write_text  # noqa: E402
from modan_dicom.devices import resolve_device  # noqa: E402
from modan_dicom.evaluate.benchmark import benchmark, cell_seed, decode_bank  # noqa: E402
from modan_dicom.evaluate.embed import load_init  # noqa: E402
from modan_dicom.evaluate.finetune import Recipe, new_head, train_and_score  # noqa: E402
from modan_dicom.evaluate.linear import linear_cell, probe_features  # noqa: E402
from modan_dicom.evaluate.tasks import load_task  # noqa: E402
from modan_dicom.synth.tasks import synth_task  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_epoch_cell(encoder: nn.Module, bank: torch.Tensor, labels: torch.Tensor, train: np.ndarray,
                   test: np.ndarray, *, seed: int, recipe: Recipe) -> np.ndarray:
    """The baseline: the frozen encoder runs on every batch of every epoch (same head, seed and batches)."""
    frozen = encoder.requires_grad_(False)
    model = nn.Sequential(frozen, new_head(seed).to(bank.device))

    def train_mode(m: nn.Module) -> None:
        m.train()
        m[0].eval()  # frozen encoder: BatchNorm on its running statistics, as in the cached probe

    return train_and_score(model, bank, labels, train, test, seed=seed, recipe=recipe, train_mode=train_mode)


def compare(args: argparse.Namespace, data: Path, device: torch.device) -> dict:
    task = load_task("thyroid", data)
    bank = decode_bank(task, args.image_size, workers=2).to(device)
    labels = torch.tensor(task.labels, device=device)
    encoder = load_init("scratch", seed=0, stem=args.stem)[0].to(device)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size)
    folds = task.folds[: args.folds]

    _sync(device)
    start = time.perf_counter()
    features = probe_features(encoder, bank)
    cached = [linear_cell(features, labels, f.train, f.test, seed=cell_seed(0, 0, f.number), recipe=recipe)
              for f in folds]
    _sync(device)
    t_cached = time.perf_counter() - start

    start = time.perf_counter()
    baseline = [per_epoch_cell(encoder, bank, labels, f.train, f.test, seed=cell_seed(0, 0, f.number), recipe=recipe)
                for f in folds]
    _sync(device)
    t_epoch = time.perf_counter() - start
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(cached, baseline))
    return {"images": len(task.items), "image_size": args.image_size, "folds": len(folds), "epochs": args.epochs,
            "device": str(device), "cached_s": t_cached, "per_epoch_s": t_epoch, "speedup": t_epoch / t_cached,
            "max_score_difference": worst}


def sweep(args: argparse.Namespace, data: Path, work: Path, device: torch.device) -> dict:
    start = time.perf_counter()
    out = benchmark(["thyroid"], data, {"scratch": "scratch"}, work / "sweep", modes=("linear",),
                    repeats=args.repeats, epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size,
                    device=device, stem=args.stem, workers=2)
    seconds = time.perf_counter() - start
    import pandas as pd

    runs = pd.read_csv(out / "runs.csv")
    return {"images": args.n_images, "image_size": args.image_size, "repeats": args.repeats, "cells": len(runs),
            "device": str(device), "wall_s": seconds, "cell_seconds_sum": float(runs["seconds"].sum()),
            "mean_auc": float(runs["auc"].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true", help="Time the full linear-probe sweep instead.")
    parser.add_argument("--image-size", type=int, default=None, help="Default 64 (comparison) / 224 (sweep).")
    parser.add_argument("--n-images", type=int, default=349, help="Thyroid replica size (paper: 349).")
    parser.add_argument("--folds", type=int, default=5, help="Folds of the comparison (one repeat).")
    parser.add_argument("--repeats", type=int, default=10, help="Repeats of the sweep.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--stem", choices=("paper", "torchvision"), default="paper")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    args = parser.parse_args()
    if args.image_size is None:
        args.image_size = 224 if args.sweep else 64
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth_task("thyroid", work / "data", image_size=args.image_size, n_images=args.n_images)
        result = sweep(args, work / "data", work, device) if args.sweep else compare(args, work / "data", device)
    if args.sweep:
        print(f"linear-probe sweep: {result['cells']} cells ({args.repeats} repeats x 5 folds), {result['images']} "
              f"images at {args.image_size} px on {result['device']}: {result['wall_s']:.1f} s wall "
              f"({result['cell_seconds_sum']:.1f} s in cells), mean AUC {result['mean_auc']:.3f}")
    else:
        print(f"linear probe, {result['folds']} folds x {result['epochs']} epochs, {result['images']} images at "
              f"{args.image_size} px on {result['device']}: cached features {result['cached_s']:.2f} s, encoder every "
              f"epoch {result['per_epoch_s']:.2f} s -> {result['speedup']:.1f}x "
              f"(max score difference {result['max_score_difference']:.2e})")
    if args.json is not None:
        write_text(args.json, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
