"""Does pretraining learn? Synthetic PACS export -> index -> pretrain -> k-NN on held-out patients.

The protocol of docs/does-it-learn.md, longer than the test (tests/test_learn.py):

1. `synth_export`: a synthetic archive whose pixels vary like a real one (field of view, rotation,
   position, build, slice level, window, noise, kernel, coil, burned-in text, CT table);
2. `build_index`, then the index split by `patient_key` into train (3/4 of the patients) and
   held-out (1/4) parquet files, keeping the index metadata;
3. `pretrain` on train only;
4. k-NN (k = 5, cosine) with the train images' encoder features as the reference set and the
   held-out images as queries: accuracy of the projected modality and anatomy, for the trained
   encoder and for `build_encoder(stem)` at random initialisation (the same architecture untrained).

    python examples/pretrain_synthetic.py --out /tmp/learn --patients 60 --epochs 60
    python examples/pretrain_synthetic.py --out /tmp/learn --method mulsupcon --method simclr

Runs on a CPU in minutes; `--device cuda` when there is a GPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modan_dicom.data.bank import build_bank
from modan_dicom.data.targets import build_targets
from modan_dicom.evaluate.features import encode_images
from modan_dicom.evaluate.knn import knn_accuracy
from modan_dicom.ingest import build_index, read_index, subset_index
from modan_dicom.models import build_encoder, load_encoder
from modan_dicom.synth import synth_export
from modan_dicom.train import pretrain
from modan_dicom.vocab import Vocabulary

# The short-budget settings measured in docs/does-it-learn.md (every one a PretrainConfig option).
TRAINING = {
    "stem": "torchvision",
    "batch_size": 64,
    "lr": 0.1,
    "warmup_epochs": 1,
    "workers": 1,
    "checkpoint_every": 10_000,
}


def split_by_patient(index: Path, out: Path, held_out: float = 0.25, seed: int = 0) -> tuple[Path, Path]:
    """Write `out/train.parquet` and `out/held_out.parquet`: the rows of `index` split by patient_key.

    A held-out patient contributes no image to training. `subset_index` keeps the index's metadata
    and its local file (the paths and the export root), so both files remain valid indexes.
    """
    frame = read_index(index)
    patients = sorted(frame["patient_key"].dropna().unique())
    chosen = set(np.random.default_rng(seed).choice(patients, max(1, round(held_out * len(patients))), replace=False))
    paths = []
    for name, keep in (("train", ~frame["patient_key"].isin(chosen)), ("held_out", frame["patient_key"].isin(chosen))):
        paths.append(subset_index(index, keep.to_numpy(), out / f"{name}.parquet"))
    return paths[0], paths[1]


def features_and_labels(encoder: torch.nn.Module, index: Path, root: Path, image_size: int,
                        vocab: Vocabulary) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Encoder features (N, 512) of the usable rows of `index`, with their projected modality and anatomy."""
    frame = read_index(index)
    targets = build_targets(frame, vocab)
    bank = build_bank(frame, targets, root, image_size, workers=1)
    rows = frame.iloc[targets.rows]
    modality = np.array([vocab.project_modality(m) for m in rows["modality"]])
    anatomy = np.array([vocab.project_anatomy(a) for a in rows["anatomy"]])
    return encode_images(encoder, bank.images), modality, anatomy


def knn_table(encoder: torch.nn.Module, train: Path, held_out: Path, root: Path, image_size: int,
              vocab: Vocabulary, k: int = 5) -> dict[str, float]:
    """k-NN accuracy of held-out images against the train images: {"modality": .., "anatomy": ..}."""
    f_train, m_train, a_train = features_and_labels(encoder, train, root, image_size, vocab)
    f_query, m_query, a_query = features_and_labels(encoder, held_out, root, image_size, vocab)
    return {
        "modality": knn_accuracy(f_train, m_train, f_query, m_query, k),
        "anatomy": knn_accuracy(f_train, a_train, f_query, a_query, k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the export, index and runs")
    parser.add_argument("--patients", type=int, default=60, help="synthetic patients (18 images each)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--image-size", type=int, default=32, help="training image side in pixels")
    parser.add_argument("--export-size", type=int, default=64, help="side of the exported DICOM images")
    parser.add_argument("--variation", type=float, default=1.0,
                        help="archive-like variation of the export in [0, 1] (the test uses 0.8)")
    parser.add_argument("--method", action="append", choices=("mulsupcon", "supcon", "simclr", "ce"),
                        help="repeat for several (default: mulsupcon)")
    parser.add_argument("--lr", type=float, default=TRAINING["lr"])
    parser.add_argument("--batch-size", type=int, default=TRAINING["batch_size"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    methods = args.method or ["mulsupcon"]

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    export = args.out / "export"
    synth_export(export, seed=args.seed, n_patients=args.patients, image_size=args.export_size,
                 variation=args.variation)
    index = args.out / "index.parquet"
    build_index(export, index, salt=f"example-{args.seed}")
    train, held_out = split_by_patient(index, args.out, seed=args.seed)
    print(f"export + index: {time.perf_counter() - started:.0f} s; "
          f"{len(read_index(train))} train rows, {len(read_index(held_out))} held-out rows")

    vocab = Vocabulary.load("radimagenet")
    torch.manual_seed(args.seed)
    results = {("random init", "-"): knn_table(build_encoder(TRAINING["stem"]), train, held_out, export,
                                               args.image_size, vocab)}
    for method in methods:
        run = args.out / "runs" / method
        config = {**TRAINING, "index": str(train), "out": str(run), "root": str(export), "method": method,
                  "epochs": args.epochs, "image_size": args.image_size, "lr": args.lr,
                  "batch_size": args.batch_size, "device": args.device, "seed": args.seed}
        if method == "ce":
            config.pop("lr")  # Adam at its default learning rate
        t0 = time.perf_counter()
        encoder = pretrain(config, on_epoch=lambda s: print(f"  {method} epoch {s.epoch}/{s.epochs} "
                                                            f"loss {s.loss:.3f} {s.images_per_s:.0f} img/s",
                                                            flush=True))
        seconds = time.perf_counter() - t0
        results[(method, f"{seconds:.0f} s")] = knn_table(load_encoder(encoder), train, held_out, export,
                                                          args.image_size, vocab)
    table = pd.DataFrame([{"encoder": name, "training": took, **accuracy}
                          for (name, took), accuracy in results.items()])
    print(f"\nk-NN (k=5, cosine), held-out patients, {args.image_size} px:")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
