"""The downstream benchmark on a tiny thyroid replica: cached linear-probe features against a direct forward,
stored predictions against recomputed cells and sklearn's AUC, shared seeds, resume, errors and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from modan_dicom.cli import main
from modan_dicom.data.transforms import LoadResized
from modan_dicom.errors import ConfigError, SourceError
from modan_dicom.evaluate.benchmark import RUNS_COLUMNS, benchmark, cell_seed, decode_bank
from modan_dicom.evaluate.finetune import Recipe, finetune_cell
from modan_dicom.evaluate.linear import linear_cell, probe_features
from modan_dicom.evaluate.report import PREDICTION_COLUMNS
from modan_dicom.evaluate.tasks import load_task
from modan_dicom.models import build_encoder, load_encoder, save_encoder
from modan_dicom.synth.tasks import synth_task

SIZE = 32
# one optimiser step per fine-tuning cell: a ResNet-18 step costs ~0.5 s on the loaded test machine
OPTIONS = dict(modes=("finetune", "linear"), repeats=2, epochs=1, batch_size=32, image_size=SIZE, device="cpu",
               seed=5, stem="torchvision", workers=1)
RECIPE = Recipe(epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder with a 40-image thyroid replica, an encoder file with trained-looking BatchNorm stats)."""
    root = tmp_path_factory.mktemp("bench-data")
    synth_task("thyroid", root, image_size=SIZE, n_images=40, seed=3)
    torch.manual_seed(1)
    net = build_encoder("torchvision")
    with torch.no_grad():  # non-trivial running statistics: eval and train mode then differ
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = save_encoder(net, root / "enc.pt", {"method": "test"})
    return root, path


@pytest.fixture(scope="module")
def full_run(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, enc = data
    out = tmp_path_factory.mktemp("bench-run") / "results"
    return benchmark(["thyroid"], root, {"enc": str(enc), "scratch": "scratch"}, out, **OPTIONS)


def test_runs_table_one_row_per_cell(full_run: Path) -> None:
    runs = pd.read_csv(full_run / "runs.csv")
    assert tuple(runs.columns) == RUNS_COLUMNS
    assert len(runs) == 2 * 2 * 2 * 5
    assert not runs.duplicated(["task", "init", "mode", "repeat", "fold"]).any()
    assert set(runs["mode"]) == {"finetune", "linear"} and set(runs["init"]) == {"enc", "scratch"}
    assert runs["auc"].between(0, 1).all()
    assert (runs["n_train"] + runs["n_val"] + runs["n_test"] == 40).all()
    assert (full_run / "config.json").is_file()


def test_auc_is_sklearn_on_stored_predictions(full_run: Path, data: tuple[Path, Path]) -> None:
    runs = pd.read_csv(full_run / "runs.csv")
    preds = pd.read_parquet(full_run / "predictions.parquet")
    assert tuple(preds.columns) == PREDICTION_COLUMNS
    task = load_task("thyroid", data[0])
    for row in runs.itertuples():
        cell = preds[(preds["init"] == row.init) & (preds["mode"] == row.mode) & (preds["repeat"] == row.repeat)
                     & (preds["fold"] == row.fold)]
        assert list(cell["id"]) == list(task.split(row.fold, "test")["id"])
        assert list(cell["label"]) == list(task.split(row.fold, "test")["label"])
        assert row.auc == pytest.approx(roc_auc_score(cell["label"], cell["score"]), abs=1e-12)


def test_seeds_shared_by_inits_and_modes(full_run: Path) -> None:
    runs = pd.read_csv(full_run / "runs.csv")
    per_cell = runs.groupby(["repeat", "fold"])["seed"].nunique()
    assert (per_cell == 1).all()
    seeds = runs.groupby(["repeat", "fold"])["seed"].first()
    assert seeds.nunique() == len(seeds)  # every (repeat, fold) its own seed
    assert seeds[(1, 3)] == cell_seed(5, 1, 3)


def test_linear_probe_features_equal_direct_forward(data: tuple[Path, Path], full_run: Path) -> None:
    root, enc = data
    task = load_task("thyroid", root)
    bank = decode_bank(task, SIZE, workers=1)
    loader = LoadResized(SIZE)
    assert torch.equal(bank[7], loader(task.items["path"][7]))
    encoder = load_encoder(enc)
    features = probe_features(encoder, bank)
    encoder.eval()
    with torch.no_grad():
        direct = encoder(bank.float() / 255.0)
    assert features.shape == (40, 512)
    torch.testing.assert_close(features, direct, atol=1e-5, rtol=1e-5)
    encoder.train()
    with torch.no_grad():  # train-mode BatchNorm would give other features: the probe really is in eval mode
        assert not torch.allclose(encoder(bank.float() / 255.0), direct, atol=1e-3)
    # the stored linear-probe scores of a cell = a head trained on the direct forward's features
    fold = task.fold(2)
    labels = torch.tensor(task.labels)
    scores = linear_cell(direct, labels, fold.train, fold.test, seed=cell_seed(5, 1, 2), recipe=RECIPE)
    preds = pd.read_parquet(full_run / "predictions.parquet")
    stored = preds.query("init == 'enc' and mode == 'linear' and repeat == 1 and fold == 2")["score"].to_numpy()
    np.testing.assert_allclose(stored, scores, atol=1e-5)


def test_finetune_cell_recomputes_and_leaves_encoder(data: tuple[Path, Path], full_run: Path) -> None:
    root, enc = data
    task = load_task("thyroid", root)
    bank = decode_bank(task, SIZE, workers=1)
    encoder = load_encoder(enc)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    fold = task.fold(4)
    scores = finetune_cell(encoder, bank, torch.tensor(task.labels), fold.train, fold.test,
                           seed=cell_seed(5, 0, 4), recipe=RECIPE)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    preds = pd.read_parquet(full_run / "predictions.parquet")
    stored = preds.query("init == 'enc' and mode == 'finetune' and repeat == 0 and fold == 4")["score"].to_numpy()
    np.testing.assert_allclose(stored, scores, atol=1e-6)
    linear = preds.query("init == 'enc' and mode == 'linear' and repeat == 0 and fold == 4")["score"].to_numpy()
    assert not np.allclose(linear, scores)


def test_resume_gives_the_uninterrupted_runs(data: tuple[Path, Path], full_run: Path, tmp_path: Path) -> None:
    """Interrupted after 3 cells, resumed: the runs equal the uninterrupted run's (here: its scratch init, linear
    mode and first repeat, which also shows that a cell does not depend on which other inits, modes or repeats
    run). Linear only: fine-tuning cells cost seconds each here, and resuming does not depend on the mode."""
    root, _ = data
    out = tmp_path / "resumed"
    inits = {"scratch": "scratch"}
    options = {**OPTIONS, "repeats": 1, "modes": ("linear",)}

    def stop_after_three(done: int, total: int | None) -> None:
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        benchmark(["thyroid"], root, inits, out, progress=stop_after_three, **options)
    assert len(pd.read_csv(out / "runs.csv")) == 3
    with pytest.raises(ConfigError, match="not empty"):
        benchmark(["thyroid"], root, inits, out, **options)
    with pytest.raises(ConfigError, match="epochs"):
        benchmark(["thyroid"], root, inits, out, resume=True, **{**options, "epochs": 3})
    seen: list[int] = []
    benchmark(["thyroid"], root, inits, out, resume=True, progress=lambda d, t: seen.append(d), **options)
    assert seen[0] == 3 and seen[-1] == 5
    resumed = pd.read_csv(out / "runs.csv").drop(columns="seconds")
    expected = pd.read_csv(full_run / "runs.csv").drop(columns="seconds")
    expected = expected.query("init == 'scratch' and mode == 'linear' and repeat == 0").reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed, expected)
    assert (out / "summary.md").is_file()
    assert len(pd.read_parquet(out / "predictions.parquet")) == 40  # every image scored once per repeat


def test_report_files_written(full_run: Path) -> None:
    for name in ("summary.md", "summary.csv", "folds.csv", "ci.csv", "roc_thyroid.png", "predictions.parquet"):
        assert (full_run / name).is_file(), name
    text = (full_run / "summary.md").read_text()
    assert "enc" in text and "scratch" in text
    assert len(list((full_run / "parts").glob("*.parquet"))) == 40


def test_bad_init_is_a_one_line_error(data: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        benchmark(["thyroid"], data[0], {"x": str(tmp_path / "missing.pt")}, tmp_path / "o", **OPTIONS)
    with pytest.raises(ConfigError, match="reference"):
        benchmark(["thyroid"], data[0], {"s": "scratch"}, tmp_path / "o", reference="nope", **OPTIONS)


def test_cli(data: tuple[Path, Path], tmp_path: Path) -> None:
    root, enc = data
    runner = CliRunner()
    result = runner.invoke(main, ["benchmark", "--tasks", "thyroid", "--data", str(root), "--init", f"enc={enc}",
                                  "--init", "scratch", "--mode", "linear", "--repeats", "1", "--epochs", "1",
                                  "--image-size", str(SIZE), "--stem", "torchvision", "--device", "cpu",
                                  "-o", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "cli" / "runs.csv")) == 2 * 5
    assert (tmp_path / "cli" / "summary.md").is_file() and (tmp_path / "cli" / "predictions.parquet").is_file()
    missing = runner.invoke(main, ["benchmark", "--tasks", "thyroid", "--data", str(tmp_path / "nope"),
                                   "--init", "scratch", "-o", str(tmp_path / "cli2")])
    assert missing.exit_code == 2


def test_live_table_shows_each_group_with_its_mean_auc(full_run: Path) -> None:
    from rich.console import Console

    from modan_dicom.cli import CellTable

    runs = pd.read_csv(full_run / "runs.csv")
    table = CellTable()
    table.done, table.total = len(runs), len(runs)
    for row in runs.to_dict("records"):
        table.add(row)
    console = Console(record=True, width=160)
    console.print(table.render())
    text = console.export_text()
    assert f"cells {len(runs)}/{len(runs)}" in text
    for (task, init, mode), group in runs.groupby(["task", "init", "mode"], sort=False):
        line = next(l for l in text.splitlines() if f" {init} " in l and f" {mode} " in l)
        assert f"{group['auc'].mean():.3f}" in line and f"{group['auc'].iloc[-1]:.3f}" in line
        assert f" {len(group)} " in line
