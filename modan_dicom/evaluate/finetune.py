"""One downstream cell's training: the shared recipe loop and fine-tuning (all layers + a linear head).

The recipe is the paper's Table 3 for both modes: `epochs` epochs of shuffled mini-batches, Adam(lr),
StepLR(step_size, gamma) stepped once per epoch, BCE with logits on a linear head 512 → 1; the weights
after the last epoch are scored (no selection on the validation part). Scores are the head's logits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models import FEATURE_DIM


@dataclass(frozen=True)
class Recipe:
    """The downstream optimisation recipe (paper Table 3)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    step_size: int = 5
    gamma: float = 0.1


def new_head(seed: int, in_dim: int = FEATURE_DIM) -> nn.Linear:
    """A linear head in_dim → 1, initialised from `seed` (torch's default init, global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(in_dim, 1)


def _as_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images → float [0, 1]; float inputs (features) pass through."""
    return batch.float() / 255.0 if batch.dtype == torch.uint8 else batch


def train_and_score(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, train: np.ndarray,
                    test: np.ndarray, *, seed: int, recipe: Recipe,
                    train_mode: Callable[[nn.Module], None] | None = None) -> np.ndarray:
    """Train `model` (output (B, 1) logits) on `inputs[train]`, return its logits on `inputs[test]`.

    inputs: (N, ...) uint8 images or float features, on the model's device; labels: (N,) 0/1 on that device;
    train / test: int positions. Batches are drawn from a CPU generator seeded with `seed`. A trailing batch of
    a single sample is skipped (BatchNorm cannot train on one sample). `train_mode(model)` puts the model in
    its training mode (default ``model.train()``); scoring is always in eval mode.
    Returns (len(test),) float64 logits.
    """
    device = inputs.device
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=recipe.step_size, gamma=recipe.gamma)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(int(seed))
    train_pos = torch.as_tensor(np.asarray(train, np.int64))
    targets = labels.float()
    for _ in range(recipe.epochs):
        (train_mode or nn.Module.train)(model)
        order = train_pos[torch.randperm(len(train_pos), generator=generator)].to(device)
        for start in range(0, len(order), recipe.batch_size):
            batch = order[start:start + recipe.batch_size]
            if len(batch) < 2:
                continue
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(_as_input(inputs[batch])).squeeze(1), targets[batch])
            loss.backward()
            optimiser.step()
        scheduler.step()
    return score(model, inputs, test)


@torch.no_grad()
def score(model: nn.Module, inputs: torch.Tensor, positions: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(len(positions),) float64 logits of `model` in eval mode."""
    model.eval()
    index = torch.as_tensor(np.asarray(positions, np.int64), device=inputs.device)
    chunks = [model(_as_input(inputs[index[s:s + batch_size]])).squeeze(1).double().cpu()
              for s in range(0, len(index), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.empty(0)


def finetune_cell(encoder: nn.Module, bank: torch.Tensor, labels: torch.Tensor, train: np.ndarray,
                  test: np.ndarray, *, seed: int, recipe: Recipe) -> np.ndarray:
    """Fine-tune a copy of `encoder` (all layers) + `new_head(seed)`; return logits on `test`.

    encoder: (B, 1, S, S) float → (B, 512), on bank's device (left untouched: a deep copy is trained);
    bank: (N, 1, S, S) uint8; labels: (N,) on the same device.
    """
    model = nn.Sequential(copy.deepcopy(encoder), new_head(seed).to(bank.device))
    return train_and_score(model, bank, labels, train, test, seed=seed, recipe=recipe)
