"""Does pretraining learn? Two checks on synthetic exports (docs/does-it-learn.md).

- The fast check (default run, seconds): a few epochs of MulSupCon on a tiny export; the training loss
  falls, and the trained network's MulSupCon loss on fixed augmented views of every image is clearly
  below the same network's at random initialisation. It shows that the engine optimises the objective,
  not that the features generalise.
- The learning check (`pytest -m slow`, ~3 min alone on 2 cores, much longer under load): the protocol
  of docs/does-it-learn.md. A synthetic archive whose pixels vary like a real one's (field of view,
  rotation, position, build, window, noise, ...), its index split by patient, MulSupCon on the train
  patients, then k-NN (k = 5, cosine) of held-out images against the train images, on the encoder's
  512-d features. The same architecture at random initialisation is the baseline: on these images raw
  layout and brightness do not tell modality or anatomy, so it must stay clearly lower.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modan_dicom.data.augment import TwoViewAugment
from modan_dicom.data.bank import build_bank
from modan_dicom.data.targets import build_targets
from modan_dicom.evaluate.features import encode_images
from modan_dicom.evaluate.knn import knn_accuracy
from modan_dicom.imaging import load_image
from modan_dicom.ingest import build_index, read_index, subset_index
from modan_dicom.losses import MulSupConLoss
from modan_dicom.models import PretrainModel, build_encoder, build_head, load_encoder
from modan_dicom.synth import synth_export
from modan_dicom.train import load_checkpoint, pretrain
from modan_dicom.vocab import Vocabulary

# variation 0.8: series still differ in field of view, pose, build, window and noise (a random network's
# k-NN stays well below), but a 2-core CPU can learn the rest in a few minutes.
EXPORT = dict(seed=0, n_patients=80, image_size=48, variation=0.8)
# Short-budget settings (docs/does-it-learn.md), all PretrainConfig options.
TRAINING = dict(method="mulsupcon", epochs=60, batch_size=64, image_size=32, stem="torchvision", lr=0.1,
                temperature=0.1, threshold=0.5, warmup_epochs=1, seed=0, workers=1, checkpoint_every=1000)
TRAINED_AT_LEAST = 0.9
MARGIN = 0.1  # trained minus random init, on the mean of modality and anatomy


def split_by_patient(index: Path, folder: Path) -> tuple[Path, Path]:
    """train.parquet / held_out.parquet: a quarter of the patients held out, index metadata kept."""
    frame = read_index(index)
    patients = sorted(frame["patient_key"].dropna().unique())
    held = set(np.random.default_rng(0).choice(patients, len(patients) // 4, replace=False))
    paths = []
    for name, keep in (("train", ~frame["patient_key"].isin(held)), ("held_out", frame["patient_key"].isin(held))):
        paths.append(subset_index(index, keep.to_numpy(), folder / f"{name}.parquet"))
    return paths[0], paths[1]


def labelled_bank(index: Path, root: Path, size: int, vocab: Vocabulary) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(N, 1, S, S) uint8 images of the usable rows, with their projected modality and anatomy."""
    frame = read_index(index)
    targets = build_targets(frame, vocab)
    rows = frame.iloc[targets.rows]
    images = build_bank(frame, targets, root, size, workers=1).images
    return (images, np.array([vocab.project_modality(m) for m in rows["modality"]]),
            np.array([vocab.project_anatomy(a) for a in rows["anatomy"]]))


def knn_scores(encoder: torch.nn.Module, train: tuple, held_out: tuple) -> dict[str, float]:
    reference, queries = encode_images(encoder, train[0]), encode_images(encoder, held_out[0])
    return {"modality": knn_accuracy(reference, train[1], queries, held_out[1], k=5),
            "anatomy": knn_accuracy(reference, train[2], queries, held_out[2], k=5)}


# The fast check: ~100 usable images at 16 px, 3 steps an epoch.
FAST_EXPORT = dict(seed=0, n_patients=6, image_size=32)
FAST_TRAINING = dict(method="mulsupcon", epochs=8, batch_size=32, image_size=16, stem="torchvision", lr=0.1,
                     temperature=0.1, threshold=0.5, warmup_epochs=1, seed=0, workers=1, checkpoint_every=1000)
FAST_LOSS_DROP = 0.1  # training loss, first epoch minus last
FAST_MARGIN = 0.2  # objective on fixed views: random init minus trained


def objective(model: torch.nn.Module, images: torch.Tensor, multi_hot: torch.Tensor) -> float:
    """MulSupCon loss of `model` on one fixed pair of augmented views of every image (batch statistics)."""
    views = TwoViewAugment(FAST_TRAINING["image_size"], seed=12345)(images)
    model.train()
    with torch.no_grad():
        features = model(views.flatten(0, 1)).unflatten(0, (len(images), 2))
    loss = MulSupConLoss(FAST_TRAINING["temperature"], FAST_TRAINING["threshold"], gather_distributed=False)
    return float(loss(features, multi_hot))


def test_a_few_epochs_lower_the_objective(tmp_path: Path) -> None:
    export = tmp_path / "export"
    synth_export(export, **FAST_EXPORT)
    index = tmp_path / "index.parquet"
    build_index(export, index, salt="test-learn")
    run = tmp_path / "run"
    pretrain({**FAST_TRAINING, "index": str(index), "out": str(run)})

    losses = pd.read_csv(run / "metrics.csv")["loss"].to_numpy()
    assert losses[0] - losses[-1] >= FAST_LOSS_DROP, losses
    frame = read_index(index)
    bank = build_bank(frame, build_targets(frame, Vocabulary.load("radimagenet")), export,
                      FAST_TRAINING["image_size"], workers=1)
    assert len(bank.images) >= 80
    trained = PretrainModel(build_encoder("torchvision"), build_head("mlp"))
    trained.load_state_dict(load_checkpoint(run / "checkpoints" / "last.pt", torch.device("cpu"))["model"])
    after = objective(trained, bank.images, bank.multi_hot)
    before = []
    for seed in range(3):  # the best of three random initialisations
        torch.manual_seed(seed)
        before.append(objective(PretrainModel(build_encoder("torchvision"), build_head("mlp")), bank.images,
                                bank.multi_hot))
    print(f"training loss {losses.round(3).tolist()}; objective on fixed views: random init "
          f"{[round(b, 3) for b in before]}, trained {after:.3f}")
    assert min(before) - after >= FAST_MARGIN, (before, after)


@pytest.mark.slow
def test_pretraining_learns_modality_and_anatomy_of_held_out_patients(tmp_path: Path) -> None:
    torch.manual_seed(0)
    export = tmp_path / "export"
    synth_export(export, **EXPORT)
    index = tmp_path / "index.parquet"
    build_index(export, index, salt="test-learn")
    train, held_out = split_by_patient(index, tmp_path)
    assert not set(read_index(train)["patient_key"]) & set(read_index(held_out)["patient_key"])

    encoder = pretrain({**TRAINING, "index": str(train), "out": str(tmp_path / "run"), "root": str(export)})

    vocab = Vocabulary.load("radimagenet")
    size = TRAINING["image_size"]
    train_bank, query_bank = labelled_bank(train, export, size, vocab), labelled_bank(held_out, export, size, vocab)
    assert set(query_bank[1]) == {"CT", "MR", "US"} and len(set(query_bank[2])) >= 8
    trained = knn_scores(load_encoder(encoder), train_bank, query_bank)
    random_init = knn_scores(build_encoder(TRAINING["stem"]), train_bank, query_bank)
    table = pd.DataFrame({"trained": trained, "random init": random_init}).round(3)
    print(table)
    assert min(trained.values()) >= TRAINED_AT_LEAST, table
    assert np.mean(list(trained.values())) - np.mean(list(random_init.values())) >= MARGIN, table
    assert trained["anatomy"] - random_init["anatomy"] >= MARGIN, table


@pytest.mark.parametrize("size", [16, 24, 32])
def test_small_exports_write_and_decode(tmp_path: Path, size: int) -> None:
    manifest = synth_export(tmp_path, seed=size, n_patients=2, image_size=size)
    images = manifest[manifest["kind"] == "image"]
    assert len(images) >= 20
    for row in images.itertuples():
        pixels = load_image(tmp_path / row.path)
        assert pixels.shape == (row.rows, row.columns) and 0.0 <= pixels.min() <= pixels.max() <= 1.0
