"""Seconds per pretraining epoch, achieved TFLOP/s, and where the time goes (issue 3, "Measured", on a GPU).

    python benchmarks/bench_pretrain_epoch.py --device cuda                      # 16,222 images, 224², batch 256
    python benchmarks/bench_pretrain_epoch.py --device cpu --patients 6 --image-size 32 --batch-size 32   # a smoke run

1. A synthetic export big enough for --images usable images (`synth_export`, --workers processes), its index
   (`build_index`), then `pretrain` (MulSupCon, the paper's 3×3/1 stem, bf16 autocast and channels_last on a GPU,
   --compile optional) for --epochs epochs on exactly --images rows; the last epoch's seconds come from the run's
   metrics.csv (the first one includes warm-up: cudnn autotuning, compilation).
2. FLOPs of one training step (`torch.utils.flop_counter` over forward + backward of the model on 2 views of a
   batch): TFLOP/s = FLOPs per image × images / epoch seconds.
3. Where the time goes: the same step split into its parts and timed alone (synchronised), per batch —
   gathering the batch and the two views (`TwoViewAugment`), forward + loss, backward, optimiser step.

Target (issue 3): ≤ 10 s per epoch on one H100 for 16,222 images at 224², batch 256 (paper: ~600 s on a
Quadro RTX 8000).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modan_dicom.data.augment import TwoViewAugment  # noqa: E402
from modan_dicom.ingest import build_index, read_index, subset_index  # noqa: E402
from modan_dicom.losses import MulSupConLoss  # noqa: E402
from modan_dicom.models import PretrainModel, build_encoder, build_head  # noqa: E402
from modan_dicom.synth import synth_export  # noqa: E402
from modan_dicom.train import pretrain, read_metrics  # noqa: E402

IMAGES_PER_PATIENT = 13  # usable (status ok) images per synthetic patient, about


def make_index(work: Path, images: int, patients: int | None, export_size: int, workers: int) -> Path:
    """An index of exactly `images` usable rows (fewer when the export has fewer)."""
    export = work / "export"
    n_patients = patients or max(2, images // IMAGES_PER_PATIENT + 1)
    synth_export(export, seed=0, n_patients=n_patients, image_size=export_size, workers=workers)
    full = work / "full.parquet"
    build_index(export, full, salt="bench-epoch", workers=workers)
    frame = read_index(full)
    ok = np.flatnonzero((frame["status"] == "ok").to_numpy())[:images]
    keep = np.zeros(len(frame), bool)
    keep[ok] = True
    index = work / "index.parquet"
    subset_index(full, keep, index)  # keeps the index metadata and its local file (paths, root)
    return index


def step_flops(model: torch.nn.Module, batch: int, size: int, device: torch.device) -> float:
    """FLOPs of forward + backward on (batch × 2 views) images."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(batch * 2, 1, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def phases(model: torch.nn.Module, bank: torch.Tensor, batch: int, size: int, device: torch.device,
           steps: int) -> dict[str, float]:
    """Milliseconds per batch of each part of a training step, each timed alone (synchronised)."""
    cuda = device.type == "cuda"
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    augment = TwoViewAugment(size, seed=0, device=device)
    loss_fn = MulSupConLoss(temperature=0.07, threshold=0.3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    labels = (torch.rand(batch, 12, device=device) < 0.2).float()
    picker = torch.Generator(device=device).manual_seed(0)
    times: dict[str, list[float]] = {"batch + two views": [], "forward + loss": [], "backward": [], "optimiser step": []}
    views = None

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for step in range(steps + 2):
        sync()
        t0 = time.perf_counter()
        index = torch.randint(0, bank.shape[0], (batch,), generator=picker, device=device)
        views = augment(bank[index], out=views)
        flat = views.flatten(0, 1)
        if cuda:
            flat = flat.contiguous(memory_format=torch.channels_last)
        sync()
        t1 = time.perf_counter()
        with amp:
            features = model(flat).float().unflatten(0, (batch, 2))
            loss = loss_fn(features, labels)
        sync()
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync()
        t3 = time.perf_counter()
        optimizer.step()
        sync()
        t4 = time.perf_counter()
        if step >= 2:  # the first steps warm up (allocator, cudnn autotuning)
            for name, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[name].append(seconds)
    return {name: 1e3 * float(np.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16_222, help="usable images per epoch (paper: 16,222)")
    parser.add_argument("--patients", type=int, default=None, help="synthetic patients (default: enough for --images)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--export-size", type=int, default=256, help="side of the synthetic DICOM images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="the last one is reported")
    parser.add_argument("--stem", choices=("paper", "torchvision"), default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="export, index and decoding processes")
    parser.add_argument("--phase-steps", type=int, default=10, help="steps timed part by part")
    parser.add_argument("--work", type=Path, default=None, help="keep the export, index and run here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-epoch-"))
    work.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    index = work / "index.parquet"
    if not index.exists():
        index = make_index(work, args.images, args.patients, args.export_size, args.workers)
    images = len(read_index(index))
    prepared = time.perf_counter() - started
    print(f"{images} usable images ready in {prepared:.0f} s (export + index)", flush=True)

    run = work / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    pretrain({"index": str(index), "out": str(run), "method": "mulsupcon", "epochs": args.epochs,
              "batch_size": args.batch_size, "image_size": args.image_size, "stem": args.stem,
              "device": str(device), "compile": args.compile, "workers": args.workers,
              "cache_dir": str(work / "cache"), "checkpoint_every": 10_000, "seed": 0})
    metrics = read_metrics(run / "metrics.csv")
    epoch_s = float(metrics[-1]["seconds"])

    model = PretrainModel(build_encoder(args.stem), build_head("mlp")).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    flops_per_image = step_flops(model, 2, args.image_size, device) / 2  # per image: its two views
    tflops = flops_per_image * images / epoch_s / 1e12
    bank = torch.randint(0, 256, (min(images, 4 * args.batch_size), 1, args.image_size, args.image_size),
                         dtype=torch.uint8, device=device)
    parts = phases(model, bank, args.batch_size, args.image_size, device, args.phase_steps)
    steps = -(-images // args.batch_size)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"\n{name}, torch {torch.__version__}; {images} images at {args.image_size}², batch {args.batch_size}, "
          f"{args.stem} stem, bf16 + channels_last: {device.type == 'cuda'}, compile: {args.compile}")
    print("seconds per epoch: " + ", ".join(f"{float(m['seconds']):.2f}" for m in metrics)
          + f" -> last {epoch_s:.2f} s ({images / epoch_s:,.0f} images/s)")
    print(f"forward + backward: {flops_per_image / 1e9:.1f} GFLOP per image (2 views), "
          f"{flops_per_image * images / 1e15:.2f} PFLOP per epoch -> {tflops:.1f} TFLOP/s achieved")
    total = sum(parts.values())
    print(f"one step alone, ms per batch ({steps} batches per epoch; {total * steps / 1e3:.2f} s per epoch by parts):")
    for part, ms in parts.items():
        print(f"  {part:<20} {ms:8.1f}  ({100 * ms / total:.0f} %)")
    if args.json:
        args.json.write_text(json.dumps({
            "device": name, "images": images, "image_size": args.image_size, "batch_size": args.batch_size,
            "stem": args.stem, "compile": args.compile, "epoch_seconds": [float(m["seconds"]) for m in metrics],
            "flops_per_image": flops_per_image, "tflops": tflops, "parts_ms": parts, "steps": steps}, indent=1))


if __name__ == "__main__":
    main()
