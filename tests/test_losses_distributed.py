"""Two gloo processes on CPU, each with part of a fixed batch, against one process with all of it.

What DDP does with the rank losses: each rank back-propagates its own value and the parameter gradients
are averaged over ranks. So the single-process loss must equal the mean of the rank values, and the
single-process gradient w.r.t. the features of rank r's images must equal rank r's gradient / W.
A real DDP-wrapped linear head is checked too.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from modan_dicom.losses import MulSupConLoss, NTXentLoss, SupConLoss

WORLD = 2
SPLITS = {"equal": (6, 6), "unequal": (7, 5)}


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    n = 12
    features = torch.randn(n, 2, 16, generator=g, dtype=torch.float64)
    multi_hot = (torch.rand(n, 6, generator=g) < 0.4).float()
    multi_hot[3] = 0
    classes = torch.randint(0, 4, (n,), generator=g)
    inputs = torch.randn(n, 2, 10, generator=g)
    return features, multi_hot, classes, inputs


def _cases() -> dict[str, tuple[torch.nn.Module, str]]:
    return {
        "mulsupcon": (MulSupConLoss(0.07, threshold=0.3), "multi_hot"),
        "supcon": (SupConLoss(0.07), "classes"),
        "simclr-supcon": (SupConLoss(0.1), "none"),
        "ntxent": (NTXentLoss(0.1), "none"),
    }


def _labels(kind: str, multi_hot: torch.Tensor, classes: torch.Tensor, rows: slice) -> list[torch.Tensor]:
    return {"multi_hot": [multi_hot[rows]], "classes": [classes[rows]], "none": []}[kind]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        features, multi_hot, classes, inputs = _data()
        results = {}
        for split_name, sizes in SPLITS.items():
            start = sum(sizes[:rank])
            rows = slice(start, start + sizes[rank])
            for name, (loss_fn, kind) in _cases().items():
                x = features[rows].clone().requires_grad_(True)
                loss = loss_fn(x, *_labels(kind, multi_hot, classes, rows))
                loss.backward()
                results[split_name, name] = (loss.detach(), x.grad)
                local_fn = type(loss_fn)(loss_fn.temperature, gather_distributed=False)
                if isinstance(loss_fn, MulSupConLoss):
                    local_fn.threshold = loss_fn.threshold
                results[split_name, name, "local"] = local_fn(features[rows], *_labels(kind, multi_hot, classes, rows))
            # a real DDP step through a shared linear head
            torch.manual_seed(0)
            head = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(10, 8))
            loss = MulSupConLoss(0.07)(head(inputs[rows]), multi_hot[rows])
            loss.backward()
            results[split_name, "ddp"] = (loss.detach(), head.module.weight.grad.clone())
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("name", list(_cases()))
def test_two_ranks_equal_one_process(rank_results: list[dict], split: str, name: str) -> None:
    features, multi_hot, classes, _ = _data()
    loss_fn, kind = _cases()[name]
    x = features.clone().requires_grad_(True)
    expected = loss_fn(x, *_labels(kind, multi_hot, classes, slice(None)))
    expected.backward()

    losses = [r[split, name][0] for r in rank_results]
    grads = torch.cat([r[split, name][1] for r in rank_results])
    assert abs(sum(losses).item() / WORLD - expected.item()) < 1e-5
    torch.testing.assert_close(grads / WORLD, x.grad, atol=1e-5, rtol=0)
    # each rank did contrast against the other rank's views: its gradient is not the local one
    sizes = SPLITS[split]
    local = [r[split, name, "local"].item() for r in rank_results]
    single = [loss_fn(features[:sizes[0]], *_labels(kind, multi_hot, classes, slice(0, sizes[0]))).item()]
    assert abs(local[0] - single[0]) < 1e-9  # gather_distributed=False is the plain local loss
    assert any(abs(a.item() - b) > 1e-3 for a, b in zip(losses, local))


@pytest.mark.parametrize("split", list(SPLITS))
def test_ddp_parameter_gradients_match_one_process(rank_results: list[dict], split: str) -> None:
    _, multi_hot, _, inputs = _data()
    torch.manual_seed(0)
    head = torch.nn.Linear(10, 8)
    expected = MulSupConLoss(0.07)(head(inputs), multi_hot)
    expected.backward()
    losses = [r[split, "ddp"][0] for r in rank_results]
    assert abs(sum(losses).item() / WORLD - expected.item()) < 1e-5
    for r in rank_results:  # DDP leaves the averaged gradient on every rank
        torch.testing.assert_close(r[split, "ddp"][1], head.weight.grad, atol=1e-5, rtol=0)
