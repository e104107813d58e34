"""`modan-dicom benchmark`: fine-tune and linear-probe every init on every task, 5 folds × R repeats.

    benchmark(["thyroid"], "data/", {"mulsupcon": "runs/a/encoder.pt", "scratch": "scratch"}, "results/a")

Per task the images are decoded once, in worker processes, into a uint8 bank (N, 1, S, S) on the device
(`LoadResized`: grey, [0, 1], resized to `image_size`, no normalisation, no augmentation — the authors'
input). A *cell* is (task, init, mode, repeat, fold): train on the fold's train part, score its test
part, AUC. The val
part is not used: like the authors, the weights after the last epoch are scored (no model selection).

- finetune: a copy of the encoder + a linear head 512 → 1, all layers trained, train mode while
  training, eval mode for scoring (`finetune.py`).
- linear: the encoder frozen in eval mode; its features are computed once per (task, init) for all
  images (`linear.py`), so it never runs twice on one image; a 512 → 1 head trains on them.
- Recipe (both modes, paper Table 3): `epochs` epochs, batch 32, Adam(1e-4), StepLR(5, 0.1), BCE with logits.
- Seeds: each (repeat, fold) gets `cell_seed(seed, repeat, fold)`, shared by every init and mode (head
  init and batch order), so repeats pair by seed across inits. Deterministic on the CPU.

Where we differ from the authors' code (docs/paper-differences.md): they fed the encoder's 512 features to
the loss as logits (no head) when fine-tuning, and probed at lr 1e-3 with BatchNorm in train mode; we add
the head, keep the recipe's lr 1e-4 and freeze BatchNorm. Their runs were unseeded.

Outputs under `out`: `config.json`; `runs.csv` (task, init, mode, repeat, fold, auc, n_train, n_val,
n_test, seconds, seed) rewritten atomically after every cell; each cell's test predictions in
`parts/<cell>.parquet` (written before its runs.csv row), merged into `predictions.parquet` (task, init,
mode, repeat, fold, id, group, label, score = logit) at the end; then `write_report`'s files. A killed
sweep loses at most the cell in progress; `resume=True` skips the cells runs.csv lists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from ..atomic import atomic_open, atomic_path, write_text
from ..devices import resolve_device
from ..errors import ConfigError, DatasetError
from .embed import load_init
from .finetune import Recipe, finetune_cell
from .linear import linear_cell, probe_features
from .options import MODES, check_benchmark_options
from .report import PREDICTION_COLUMNS, write_report
from .tasks import Task, load_task

RUNS_COLUMNS = ("task", "init", "mode", "repeat", "fold", "auc", "n_train", "n_val", "n_test", "seconds", "seed")
CELL_KEYS = ("task", "init", "mode", "repeat", "fold")
# arguments a resumed run must share with the run it continues
RESUME_KEYS = ("epochs", "batch_size", "lr", "step_size", "gamma", "image_size", "seed", "stem", "layout")

Progress = Callable[[int, "int | None"], None]


def cell_seed(seed: int, repeat: int, fold: int) -> int:
    """The seed of one (repeat, fold), the same for every init and mode: a 31-bit int from (seed, repeat, fold)."""
    return int(np.random.SeedSequence([int(seed), int(repeat), int(fold)]).generate_state(1)[0] & 0x7FFFFFFF)


def decode_bank(task: Task, image_size: int, workers: int = 2) -> torch.Tensor:
    """Every image of `task` decoded once: (N, 1, S, S) uint8 on the CPU, in `task.items` order.

    Decoded in worker processes (`IsolatedDecoder`): a file whose decoder raises, crashes or hangs
    never stops the sweep silently or takes it down. The folds need every image, so any failure is a
    `DatasetError` (one line: how many, the first one's position in the task and its reason).
    """
    from ..data.decode import IsolatedDecoder

    paths = [str(p) for p in task.items["path"]]
    images: list[torch.Tensor] = []
    failures: list[tuple[int, str]] = []
    with IsolatedDecoder(image_size, workers) as decoder:
        for i, result in decoder.map(lambda i: decoder(paths[i]), paths):
            if isinstance(result, str):
                failures.append((i, result))
            else:
                images.append(result)
    if failures:
        first, reason = failures[0]
        raise DatasetError(
            f"task {task.name}: {len(failures)} of {len(paths)} images cannot be decoded "
            f"(the first is item {first}: {reason})"
        )
    return torch.stack(images) if images else torch.empty(0, 1, image_size, image_size, dtype=torch.uint8)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else float("nan")


def _cell_name(task: str, init: str, mode: str, repeat: int, fold: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{task}__{init}")
    return f"{safe}__{mode}__r{repeat}__f{fold}.parquet"


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False)
    else:
        with atomic_path(path, suffix=".parquet") as tmp:
            frame.to_parquet(tmp, index=False)


def _prepare_out(out: Path, config: dict[str, Any], resume: bool) -> pd.DataFrame:
    """Check `out` (empty, or a run to resume with the same recipe); return the runs already done."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise ConfigError(f"{out} is not empty: pass resume=True (--resume) to continue it, or choose a new folder")
    runs_csv = out / "runs.csv"
    if not resume or not runs_csv.is_file():
        return pd.DataFrame(columns=list(RUNS_COLUMNS))
    old_path = out / "config.json"
    if old_path.is_file():
        old = json.loads(old_path.read_text(encoding="utf-8"))
        changed = [k for k in RESUME_KEYS if k in old and old[k] != config[k]]
        changed += [f"init {n}" for n, s in config["inits"].items() if n in old.get("inits", {}) and old["inits"][n] != s]
        if changed:
            raise ConfigError(f"cannot resume {out}: {', '.join(changed)} differ from its config.json")
    return pd.read_csv(runs_csv)


def benchmark(tasks: Sequence[str], data_dir: str | os.PathLike[str], inits: Mapping[str, str],
              out: str | os.PathLike[str], *, modes: Sequence[str] = MODES, repeats: int = 10, epochs: int = 10,
              batch_size: int = 32, lr: float = 1e-4, step_size: int = 5, gamma: float = 0.1,
              image_size: int = 224, device: str | torch.device = "auto", seed: int = 0, resume: bool = False,
              reference: str | None = None, imagenet_weights: str | os.PathLike[str] | None = None,
              stem: str = "paper", workers: int = 2, layout: str = "auto", progress: Progress | None = None,
              on_cell: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Run the downstream sweep and write runs.csv, predictions.parquet, config.json and the report; return `out`.

    tasks: names ("acl", "breast", "thyroid") or paths for `load_task(name, data_dir, layout=layout)`;
    inits: {name: spec}, spec a path to an encoder file, "scratch[:SEED]" or "imagenet" (`load_init`);
    modes: "finetune" and/or "linear"; image_size: bank side in pixels; stem: conv1 of scratch encoders.
    progress(done, total) is called after every finished cell (and once at the start), `on_cell(row)` with
    its runs.csv row. reference: the init the report tests the others against (default the first).
    Raises ConfigError (bad arguments, non-empty `out` without `resume`), DatasetError (task data),
    SourceError (encoder files, ImageNet weights).
    """
    modes = tuple(dict.fromkeys(modes))
    check_benchmark_options(tasks, inits, out, modes=modes, resume=resume, reference=reference)
    if min(repeats, epochs, batch_size, image_size, step_size) < 1 or lr <= 0:
        raise ConfigError("repeats, epochs, batch_size, image_size and step_size must be >= 1 and lr > 0")
    reference = reference or next(iter(inits))
    if reference not in inits:
        raise ConfigError(f"reference {reference!r} is not one of the inits ({', '.join(inits)})")
    recipe = Recipe(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), step_size=int(step_size),
                    gamma=float(gamma))
    dev = resolve_device(device)
    out = Path(out)
    config = {"tasks": list(tasks), "data_dir": str(Path(data_dir).resolve()), "inits": dict(inits),
              "modes": list(modes), "repeats": int(repeats), **asdict(recipe), "image_size": int(image_size),
              "device": str(dev), "seed": int(seed), "reference": reference,
              "imagenet_weights": str(imagenet_weights) if imagenet_weights else None, "stem": stem,
              "layout": layout, "head": "linear 512->1, BCE with logits", "score": "logit of the last-epoch weights",
              "selection": "none (val part unused)"}
    done_rows = _prepare_out(out, config, resume)
    loaded = [load_task(name, data_dir, layout=layout) for name in tasks]  # data errors before any work
    encoders = {name: load_init(spec, seed=seed, stem=stem, imagenet_weights=imagenet_weights)[0]
                for name, spec in inits.items()}
    write_text(out / "config.json", json.dumps(config, indent=2) + "\n")

    plan = [(t.name, i, m, r, f.number) for t in loaded for i in inits for m in modes for r in range(repeats)
            for f in t.folds]
    order = {key: k for k, key in enumerate(plan)}
    done_keys = {(str(r.task), str(r.init), str(r.mode), int(r.repeat), int(r.fold)) for r in done_rows.itertuples()}
    rows = done_rows.to_dict("records")
    finished = sum(key in done_keys for key in plan)
    if progress is not None:
        progress(finished, len(plan))

    def save_runs() -> None:
        frame = pd.DataFrame(rows, columns=list(RUNS_COLUMNS))
        rank = [order.get((str(r.task), str(r.init), str(r.mode), int(r.repeat), int(r.fold)), len(order))
                for r in frame.itertuples()]
        _write_frame(frame.iloc[np.argsort(rank, kind="stable")], out / "runs.csv")

    for task in loaded:
        pending = [key for key in plan if key[0] == task.name and key not in done_keys]
        if not pending:
            continue
        bank = decode_bank(task, image_size, workers).to(dev)
        labels = torch.tensor(task.labels, device=dev)
        features = None
        for init in inits:
            todo = [key for key in pending if key[1] == init]
            if not todo:
                continue
            encoder = encoders[init].to(dev)
            features = probe_features(encoder, bank) if any(k[2] == "linear" for k in todo) else None
            for _, _, mode, repeat, number in todo:
                fold = task.fold(number)
                cseed = cell_seed(seed, repeat, number)
                start = time.perf_counter()
                if mode == "finetune":
                    scores = finetune_cell(encoder, bank, labels, fold.train, fold.test, seed=cseed, recipe=recipe)
                else:
                    scores = linear_cell(features, labels, fold.train, fold.test, seed=cseed, recipe=recipe)
                seconds = time.perf_counter() - start
                test = task.items.iloc[fold.test]
                truth = test["label"].to_numpy(np.int64)
                part = pd.DataFrame({"task": task.name, "init": init, "mode": mode, "repeat": repeat, "fold": number,
                                     "id": test["id"].to_numpy(), "group": test["group"].to_numpy(),
                                     "label": truth, "score": scores}, columns=list(PREDICTION_COLUMNS))
                _write_frame(part, out / "parts" / _cell_name(task.name, init, mode, repeat, number))
                row = {"task": task.name, "init": init, "mode": mode, "repeat": repeat, "fold": number,
                       "auc": _auc(truth, scores), "n_train": len(fold.train), "n_val": len(fold.val),
                       "n_test": len(fold.test), "seconds": round(seconds, 4), "seed": cseed}
                rows.append(row)
                save_runs()
                finished += 1
                if on_cell is not None:
                    on_cell(row)
                if progress is not None:
                    progress(finished, len(plan))
            encoders[init] = encoder.cpu()
        del bank, features

    runs = pd.read_csv(out / "runs.csv")
    parts = [pd.read_parquet(out / "parts" / _cell_name(r.task, r.init, r.mode, int(r.repeat), int(r.fold)))
             for r in runs.itertuples()]
    predictions = pd.concat(parts, ignore_index=True)
    _write_frame(predictions, out / "predictions.parquet")
    write_report(runs, out, reference=reference, predictions=predictions)
    return out
