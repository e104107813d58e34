"""Synthetic task replicas: layout, class balance, determinism, the CLI, and a learnable signal."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modan_dicom.cli import main
from modan_dicom.errors import ConfigError, OutputError
from modan_dicom.evaluate.tasks import load_task
from modan_dicom.imaging import load_image
from modan_dicom.synth.tasks import (CSV_FORMAT, DEFAULT_IMAGES, FULL_IMAGES, SEPARATION, TASKS, plan_cases,
                                     synth_task)

NAME_PATTERN = {"acl": r"\d{4}_sagittal_\d+\.000000\.png", "thyroid": r"\d+_\d\.png",
                "breast": r"(benign|malignant|normal) \(\d+\)\.png"}


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default replicas (64 px; acl 300, breast 260, thyroid 349 images) under one folder."""
    root = tmp_path_factory.mktemp("defaults")
    for task in TASKS:
        synth_task(task, root)
    return root


@pytest.mark.parametrize("task", TASKS)
def test_replica_layout_names_columns_and_balance(defaults: Path, task: str) -> None:
    folder = defaults / task
    prefix, path_col, label_col, values = CSV_FORMAT[task]
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert len(names) == DEFAULT_IMAGES[task]
    assert all(re.fullmatch(NAME_PATTERN[task], n) for n in names)
    frames = sorted(p.name for p in (folder / "dataframe").iterdir())
    assert frames == sorted(f"{prefix}{s}_fold{k}.csv" for s in ("train", "val", "test") for k in range(1, 6))
    tests: Counter[str] = Counter()
    labels: dict[str, str] = {}
    for k in range(1, 6):
        listed = []
        for split in ("train", "val", "test"):
            with open(folder / "dataframe" / f"{prefix}{split}_fold{k}.csv", newline="") as handle:
                reader = csv.reader(handle)
                assert next(reader) == [path_col, label_col]
                rows = list(reader)
            assert {r[1] for r in rows} <= set(values)
            listed += [r[0] for r in rows]
            labels.update(dict(rows))
            if split == "test":
                tests.update(r[0] for r in rows)
        assert sorted(listed) == sorted(f"images/{n}" for n in names)  # train + val + test = everything
    assert set(tests.values()) == {1} and len(tests) == len(names)
    n_pos = sum(v == values[1] for v in labels.values())
    expected_fraction = {"acl": 569 / 1021, "breast": 210 / 779, "thyroid": 288 / 349}[task]
    assert n_pos == round(len(names) * expected_fraction)
    if task == "thyroid":
        assert n_pos == 288 and len(names) - n_pos == 61  # the paper's Table 1, at the default size
    image = np.asarray(Image.open(folder / "images" / names[0]))
    assert image.shape == (64, 64) and image.dtype == np.uint8 and image.std() > 5
    pixels = load_image(folder / "images" / names[0])
    assert pixels.shape == (64, 64) and pixels.dtype == np.float32 and 0.0 <= pixels.min() < pixels.max() <= 1.0
    task_read = load_task(task, defaults)
    assert task_read.warnings == ()  # grouped folds: no exam / case in two parts of a fold


@pytest.mark.parametrize("task", TASKS)
def test_full_counts_follow_table_1(task: str) -> None:
    cases = plan_cases(task, FULL_IMAGES[task], 0, SEPARATION[task])
    counts = Counter((c.label, c.normal) for c in cases for _ in c.files)
    expected = {"acl": {(1, False): 569, (0, False): 452}, "thyroid": {(1, False): 288, (0, False): 61},
                "breast": {(1, False): 210, (0, False): 436, (0, True): 133}}[task]
    assert dict(counts) == expected
    sizes = Counter(len(c.files) for c in cases)
    assert max(sizes) <= 5 and (task == "breast") == (set(sizes) == {1})
    # the latent sign strength separates the classes well, but not perfectly
    labels = np.array([c.label for c in cases])
    auc = roc_auc_score(labels, [c.strength for c in cases])
    assert 0.9 < auc < 0.99


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    for out in ("a", "b"):
        synth_task("acl", tmp_path / out, seed=7, image_size=32, n_images=30)
    synth_task("acl", tmp_path / "c", seed=8, image_size=32, n_images=30)
    a, b, c = (_digests(tmp_path / out / "acl") for out in ("a", "b", "c"))
    assert a == b and len(a) == 30 + 15 + 1
    assert a != c
    # rewriting a replica in place replaces it; a folder that is not a replica is refused
    synth_task("acl", tmp_path / "a", seed=8, image_size=32, n_images=30)
    assert _digests(tmp_path / "a" / "acl") == c
    (tmp_path / "mine" / "acl").mkdir(parents=True)
    (tmp_path / "mine" / "acl" / "keep.txt").write_text("user data")
    with pytest.raises(OutputError):
        synth_task("acl", tmp_path / "mine")
    assert (tmp_path / "mine" / "acl" / "keep.txt").read_text() == "user data"
    with pytest.raises(ConfigError):
        synth_task("spleen", tmp_path / "x")
    with pytest.raises(ConfigError):
        synth_task("acl", tmp_path / "x", n_images=5)


def test_paper_input_size(tmp_path: Path) -> None:
    folder = synth_task("breast", tmp_path, image_size=224, n_images=20)
    shapes = {np.asarray(Image.open(p)).shape for p in (folder / "images").glob("*.png")}
    assert shapes == {(224, 224)}


def test_synth_task_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "--task", "thyroid", str(tmp_path / "cli"), "--images", "40",
                                  "--image-size", "32", "--seed", "3"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "thyroid replica written to" in result.output
    synth_task("thyroid", tmp_path / "api", seed=3, image_size=32, n_images=40)
    assert _digests(tmp_path / "cli" / "thyroid") == _digests(tmp_path / "api" / "thyroid")
    task = load_task("thyroid", tmp_path / "cli")
    assert len(task.items) == 40 and task.layout == "radimagenet"
    (tmp_path / "busy" / "acl").mkdir(parents=True)
    (tmp_path / "busy" / "acl" / "x.txt").write_text("x")
    result = runner.invoke(main, ["synth", "--task", "acl", str(tmp_path / "busy")])
    assert result.exit_code == 2 and "refusing to write into it" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # the export path is unchanged
    result = runner.invoke(main, ["synth", str(tmp_path / "export"), "--patients", "1", "--image-size", "32"])
    assert result.exit_code == 0, result.output + result.stderr
    assert (tmp_path / "export" / "manifest.csv").is_file()


@pytest.mark.parametrize("task", TASKS)
def test_a_linear_model_learns_the_replica(defaults: Path, task: str) -> None:
    """Logistic regression on 16 x 16 downsampled pixels, fold 1 of the default replica: AUC > 0.7."""
    loaded = load_task(task, defaults)
    images = np.stack([np.asarray(Image.open(p), np.float32) / 255.0 for p in loaded.items["path"]])
    n, size = images.shape[:2]
    features = images.reshape(n, 16, size // 16, 16, size // 16).mean(axis=(2, 4)).reshape(n, -1)
    fold = loaded.fold(1)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000))
    model.fit(features[fold.train], loaded.labels[fold.train])
    auc = roc_auc_score(loaded.labels[fold.test], model.predict_proba(features[fold.test])[:, 1])
    assert auc > 0.7, auc
