"""The pretraining loop: index.parquet → runs/NAME/encoder.pt.

Read top to bottom like torchvision's reference `train.py`: set up (distributed, device, data bank,
model, optimiser), maybe resume, then epochs of steps; each step draws a batch of indices, builds two
augmented views on the device, and minimises the method's loss. Checkpoints are atomic and hold
everything needed to continue bit-for-bit (per-epoch random streams are derived from the seed, so no
generator state has to be saved).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from . import atomic
from .config import PretrainConfig, check_run_folder, differing_keys
from .data.augment import TwoViewAugment
from .data.bank import ImageBank, build_bank, check_failures, write_failures
from .data.targets import build_targets
from .errors import ConfigError, DatasetError, SourceError
from .devices import resolve_device
from .ingest import read_index, resolve_index_root
from .losses import MulSupConLoss, NTXentLoss, SupConLoss
from .models import PretrainModel, build_encoder, build_head, save_encoder
from .vocab import Vocabulary

METRIC_FIELDS = ("epoch", "loss", "lr", "images_per_s", "seconds")
FAILURES_FILE = "decode_failures.csv"  # the images that could not be decoded: index row, keys, reason


@dataclass(frozen=True)
class EpochStats:
    """What one finished epoch reports (rank 0)."""

    epoch: int
    epochs: int
    loss: float
    lr: float
    images_per_s: float
    seconds: float


# ---- set-up ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_runtime(device: str) -> Runtime:
    """Join the process group when launched by torchrun; pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device, local_rank)
    if chosen.type == "cuda":
        if chosen.index is None:
            chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Runtime(chosen, rank, world_size)


def make_loss(config: PretrainConfig) -> nn.Module:
    if config.method == "mulsupcon":
        return MulSupConLoss(temperature=config.temperature, threshold=config.threshold)
    if config.method == "supcon":
        return SupConLoss(temperature=config.temperature)
    if config.method == "simclr":
        return NTXentLoss(temperature=config.temperature)
    return nn.CrossEntropyLoss()


def make_optimizer(config: PretrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=0.0)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def learning_rate(config: PretrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at global `step` (warm-up then cosine, the authors' step decay, or constant)."""
    epoch = step / max(1, steps_per_epoch)
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        drops = sum(epoch >= fraction * config.epochs for fraction in (0.7, 0.8, 0.9))
        return config.lr * (0.1**drops)
    warmup = min(config.warmup_epochs, max(0, config.epochs - 1))
    if epoch < warmup:
        return config.lr * (step + 1) / (warmup * steps_per_epoch)
    progress = (epoch - warmup) / max(1e-9, config.epochs - warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def epoch_batches(n: int, batch_size: int, steps: int, seed: int, epoch: int, rank: int) -> Iterator[torch.Tensor]:
    """`steps` index batches of one epoch over a shard of `n` samples (a fresh permutation per epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7_919 + rank)
    order = torch.randperm(n, generator=generator)
    for step in range(steps):
        yield order[step * batch_size : (step + 1) * batch_size]


def epoch_plan(shard_size: int, batch_size: int, runtime: Runtime) -> tuple[int, int]:
    """(batch size, steps) that every rank can do: the smallest shard decides, the last partial batch is dropped."""
    smallest = torch.tensor([shard_size], dtype=torch.int64)
    if runtime.world_size > 1:
        smallest = smallest.to(runtime.device)
        dist.all_reduce(smallest, op=dist.ReduceOp.MIN)
    size = min(batch_size, int(smallest.item()))
    return size, max(1, int(smallest.item()) // size)


# ---- checkpoints ----------------------------------------------------------------------------------


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, config: PretrainConfig) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "config": config.to_dict(),
    }
    with atomic.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise SourceError(f"cannot read checkpoint {path}: {exc}") from exc


def write_metrics(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---- the loop -------------------------------------------------------------------------------------


def _load_bank(config: PretrainConfig, runtime: Runtime, progress) -> ImageBank:
    """This rank's bank; the failures of every rank go to `decode_failures.csv` (rank 0) and are counted together."""
    if runtime.is_main and not config.resume:  # first, so that a run stopped here leaves a folder known as a run
        atomic.write_text(Path(config.out) / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    index_path = Path(config.index)
    frame = read_index(index_path)
    root = resolve_index_root(index_path, config.root)
    vocab = Vocabulary.load(config.profile)
    targets = build_targets(frame, vocab, config.label_axes)
    shard = targets.shard(runtime.rank, runtime.world_size)
    bank = build_bank(
        frame, shard, root, config.image_size, device=runtime.device,
        cache_dir=config.cache_dir, workers=config.workers, progress=progress,
    )
    failures, sizes = list(bank.failures), [len(bank)]
    if runtime.world_size > 1:
        gathered: list = [None] * runtime.world_size
        dist.all_gather_object(gathered, (bank.failures, len(bank)))
        failures = [f for rank_failures, _ in gathered for f in rank_failures]
        sizes = [size for _, size in gathered]
    listed = Path(config.out) / FAILURES_FILE
    if runtime.is_main:
        write_failures(listed, frame, failures)
    check_failures(len(failures), len(targets.rows), config.max_decode_failures, listed)
    if min(sizes) == 0:
        raise DatasetError("a rank has no decodable image in its shard: use fewer processes")
    return bank


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def pretrain(
    config: PretrainConfig | dict,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_bank: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Pretrain an encoder as configured and return the path of the exported `encoder.pt`.

    Writes under `config.out`: `config.json` (resolved), `decode_failures.csv` (the images that could not be
    decoded, left out of the bank: index row, instance and series keys, reason), `metrics.csv` (one row per epoch),
    `checkpoints/epoch_NNNN.pt` every `checkpoint_every` epochs, `checkpoints/last.pt`, `encoder.pt`.
    Launched by `torchrun`, every rank trains on its shard of the bank; rank 0 writes the files.

    Raises:
        ConfigError: inconsistent options, an existing run without `resume`, a resume whose
            configuration differs (the message names the keys), or a batch that does not fit in memory.
        DatasetError: no usable rows in the index, or labels that are all identical.
        UndecodableError: more than `max_decode_failures` of the images cannot be decoded (a DatasetError).
    """
    config = (config if isinstance(config, PretrainConfig) else PretrainConfig.from_dict(config)).resolved()
    runtime = start_runtime(config.device)
    out = Path(config.out)
    checkpoints = out / "checkpoints"
    last = checkpoints / "last.pt"
    check_run_folder(config)
    if runtime.is_main:
        atomic.prepare_parent(out / "config.json")
        for folder in (out, checkpoints):  # what killed runs left half-written
            atomic.remove_stale_temps(folder)

    torch.manual_seed(config.seed)
    bank = _load_bank(config, runtime, on_bank if runtime.is_main else None)
    cuda = runtime.device.type == "cuda"
    amp = config.amp if config.amp is not None else cuda
    channels_last = config.channels_last if config.channels_last is not None else cuda

    encoder = build_encoder(config.stem)
    n_out = len(bank.class_names) if config.method == "ce" else None
    model = PretrainModel(encoder, build_head(config.head, n_classes=n_out)).to(runtime.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model)
    start_epoch, metrics = 0, []
    if config.resume:
        state = load_checkpoint(last, runtime.device)
        saved = PretrainConfig.from_dict(state["config"])
        differ = differing_keys(saved, config)
        if differ:
            raise ConfigError(f"--resume with a different configuration: {', '.join(differ)} differ from {out}/config.json")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        metrics = [row for row in read_metrics(out / "metrics.csv") if int(row["epoch"]) <= start_epoch]
    if runtime.is_main:
        atomic.write_text(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")

    step_model: nn.Module = model
    if runtime.world_size > 1:
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[runtime.device.index] if cuda else None)
    if config.compile:
        step_model = torch.compile(step_model)
    loss_fn = make_loss(config).to(runtime.device)
    batch_size, steps = epoch_plan(len(bank), max(1, config.batch_size // runtime.world_size), runtime)

    for epoch in range(start_epoch, config.epochs):
        model.train()
        augment = TwoViewAugment(
            config.image_size, scale=config.crop_scale,
            seed=config.seed * 1_000_003 + epoch * 7_919 + runtime.rank, device=runtime.device,
        )
        started, seen, total = time.perf_counter(), 0, torch.zeros((), device=runtime.device)
        views_buffers: dict[int, torch.Tensor] = {}
        for step, batch in enumerate(epoch_batches(len(bank), batch_size, steps, config.seed, epoch, runtime.rank)):
            lr = learning_rate(config, epoch * steps + step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = batch.to(runtime.device)
            try:
                # (B, V, 1, S, S) float in [0, 1], into one buffer per batch size: used up within the step
                views = augment(bank.images[batch], out=views_buffers.get(len(batch)))
                views_buffers[len(batch)] = views
                flat = views.flatten(0, 1)
                if channels_last:
                    flat = flat.contiguous(memory_format=torch.channels_last)
                autocast = torch.autocast(runtime.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
                with autocast:
                    if config.method == "ce":
                        logits = step_model(views[:, 0])
                        loss = loss_fn(logits.float(), bank.classes[batch])
                    else:
                        features = step_model(flat).float().unflatten(0, (len(batch), views.shape[1]))
                        if config.method == "mulsupcon":
                            loss = loss_fn(features, bank.multi_hot[batch])
                        elif config.method == "supcon":
                            loss = loss_fn(features, bank.classes[batch])
                        else:
                            loss = loss_fn(features)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            except RuntimeError as exc:
                if _out_of_memory(exc):
                    raise ConfigError(
                        f"out of memory on {runtime.device} at batch size {config.batch_size} and image size "
                        f"{config.image_size}: lower --batch-size or --image-size"
                    ) from exc
                raise
            total += loss.detach()
            seen += len(batch)
        mean_loss = float(total) / steps
        if runtime.world_size > 1:
            reduced = torch.tensor([mean_loss, float(seen)], device=runtime.device)
            dist.all_reduce(reduced)
            mean_loss, seen = float(reduced[0]) / runtime.world_size, int(reduced[1])
        seconds = time.perf_counter() - started
        stats = EpochStats(epoch + 1, config.epochs, mean_loss, lr, seen / max(seconds, 1e-9), seconds)
        if runtime.is_main:
            metrics.append({k: getattr(stats, k) for k in METRIC_FIELDS})
            write_metrics(out / "metrics.csv", metrics)
            done = epoch + 1
            if done % config.checkpoint_every == 0 or done == config.epochs:
                save_checkpoint(checkpoints / f"epoch_{done:04d}.pt", model, optimizer, done, config)
            save_checkpoint(last, model, optimizer, done, config)
            if on_epoch is not None:
                on_epoch(stats)

    encoder_path = out / "encoder.pt"
    if runtime.is_main:
        save_encoder(
            model.encoder, encoder_path,
            {"method": config.method, "stem": config.stem, "axes": bank.axes, "config": config.to_dict()},
        )
    if runtime.world_size > 1:
        dist.barrier()
    return encoder_path

