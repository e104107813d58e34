"""Two-view augmented batches per second: the batched on-device augmentation vs the authors' per-sample pipeline.

Both sides make the same thing from the same uint8 images: batches of ``--batch-size`` images, two views each,
RandomResizedCrop(S, scale=(0.2, 1)) + horizontal flip + ColorJitter with p = 0.8 (+ RandomGrayscale), at
``--image-size`` S.

- ours: a uint8 bank ``(N, 1, side, side)`` on ``--device``; a step draws random indices, gathers the batch from the
  bank and calls `TwoViewAugment` -> ``(B, 2, 1, S, S)`` float in [0, 1], into one output buffer reused from
  step to step, as the trainer (`train.py`) does.
- authors: their pipeline as described in the issue — the images as PNG files on disk, a Dataset that scans a
  pandas table for every sample (``df[df.idx == i]``), opens the PNG with PIL and converts it to RGB, then the
  TwoCropTransform of Compose([RandomResizedCrop(S, scale=(0.2, 1)), RandomHorizontalFlip(),
  RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(p=0.2), ToTensor()]), a shuffling
  DataLoader with ``--workers`` processes.
- lean PIL: a stronger baseline than theirs — the same transforms on in-memory grey PIL images (no disk, no table
  scan, one channel), to show what batching alone buys.

Both are timed in steady state: the first ``--warmup`` batches (worker start-up, allocator warm-up) are not counted,
which favours the baseline (the authors' loader restarts its workers every epoch).

    python benchmarks/bench_augment.py --images 2048 --image-size 224 --batch-size 256 --batches 20 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modan_dicom.atomic import write_text  # noqa: E402
from modan_dicom.data.augment import TwoViewAugment  # noqa: E402


def make_arrays(n: int, side: int, seed: int) -> np.ndarray:
    """``(n, side, side)`` uint8 images: smooth random blobs plus noise (content does not change either cost)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    out = np.empty((n, side, side), dtype=np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(0.2, 0.8, 3)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.2 * r))
        image = 200 * blob + rng.normal(0, 10, (side, side))
        out[i] = np.clip(image, 0, 255).astype(np.uint8)
    return out


class TwoCropTransform:
    """The authors' wrapper: the same random transform applied twice."""

    def __init__(self, transform: T.Compose) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        return [self.transform(image), self.transform(image)]


class AuthorsDataset(Dataset):
    """PNG files listed in a pandas table that is scanned for every sample, opened as RGB (the authors' shape)."""

    def __init__(self, table, transform: TwoCropTransform) -> None:
        self.table = table
        self.transform = transform

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        row = self.table[self.table["idx"] == i].iloc[0]
        with Image.open(row["path"]) as image:
            return self.transform(image.convert("RGB"))


class PilImages(Dataset):
    def __init__(self, arrays: np.ndarray, transform: TwoCropTransform) -> None:
        self.images = [Image.fromarray(a) for a in arrays]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        return self.transform(self.images[i])


def write_pngs(arrays: np.ndarray, folder: Path):
    """The arrays as PNG files, and the pandas table listing them (idx, path, label)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, array in enumerate(arrays):
        path = folder / f"img_{i:06d}.png"
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return pd.DataFrame({"idx": range(len(paths)), "path": paths, "label": [i % 165 for i in range(len(paths))]})


def time_baseline(arrays: np.ndarray, size: int, batch: int, batches: int, warmup: int, workers: int,
                  table=None) -> float:
    """Seconds per batch of a per-sample PIL + torchvision DataLoader pipeline (authors' when `table` is given)."""
    transform = TwoCropTransform(
        T.Compose(
            [
                T.RandomResizedCrop(size, scale=(0.2, 1.0)),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.ToTensor(),
            ]
        )
    )
    dataset = AuthorsDataset(table, transform) if table is not None else PilImages(arrays, transform)
    channels = 3 if table is not None else 1
    loader = DataLoader(
        dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0,
    )
    done, start = 0, None
    while done < warmup + batches:
        for views in loader:
            assert views[0].shape == (batch, channels, size, size)
            done += 1
            if done == warmup:
                start = time.perf_counter()
            if done == warmup + batches:
                break
    return (time.perf_counter() - start) / batches


def time_batched(arrays: np.ndarray, size: int, batch: int, batches: int, warmup: int, device: torch.device) -> float:
    """Seconds per batch of bank gather + `TwoViewAugment` on ``device``."""
    bank = torch.from_numpy(arrays)[:, None].to(device)
    augment = TwoViewAugment(size, seed=0, device=device)
    picker = torch.Generator(device=device).manual_seed(1)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    start = None
    for step in range(warmup + batches):
        if step == warmup:
            sync()
            start = time.perf_counter()
        index = torch.randint(0, bank.shape[0], (batch,), generator=picker, device=device)
        views = augment(bank[index], out=views if step else None)  # one output buffer, as the trainer does
    sync()
    assert views.shape == (batch, 2, 1, size, size)
    return (time.perf_counter() - start) / batches


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048, help="images in the bank / dataset")
    parser.add_argument("--bank-side", type=int, default=256, help="side of the stored images in pixels")
    parser.add_argument("--image-size", type=int, default=224, help="side of the views in pixels")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per pipeline")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="baseline DataLoader workers")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.images < args.batch_size:
        parser.error("--images must be at least --batch-size")

    device = torch.device(args.device)
    arrays = make_arrays(args.images, args.bank_side, seed=0)
    ours = time_batched(arrays, args.image_size, args.batch_size, args.batches, args.warmup, device)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = write_pngs(arrays, Path(tmp))
        authors = time_baseline(arrays, args.image_size, args.batch_size, args.batches, args.warmup, args.workers, table)
    base = time_baseline(arrays, args.image_size, args.batch_size, args.batches, args.warmup, args.workers)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    result = {
        "images": args.images, "bank_side": args.bank_side, "image_size": args.image_size,
        "batch_size": args.batch_size, "batches": args.batches, "device": name, "workers": args.workers,
        "cpu_count": os.cpu_count(), "batched_batches_per_s": 1 / ours, "authors_batches_per_s": 1 / authors,
        "lean_pil_batches_per_s": 1 / base, "ratio_vs_authors": authors / ours, "ratio_vs_lean_pil": base / ours,
    }
    print(f"two-view batches of {args.batch_size} at {args.image_size}x{args.image_size} "
          f"from {args.images} images of {args.bank_side}x{args.bank_side}")
    print(f"batched on {name}: {1 / ours:8.2f} batches/s  ({args.batch_size / ours:9.0f} images/s)")
    for label, seconds in (("authors' pipeline", authors), ("lean grey PIL", base)):
        rate = f"{1 / seconds:8.2f} batches/s  ({args.batch_size / seconds:9.0f} images/s)"
        print(f"{label}, {args.workers} workers: {rate}   ratio {seconds / ours:.1f}x")
    if args.json:
        write_text(args.json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
