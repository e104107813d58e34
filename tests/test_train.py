"""The pretraining loop: outputs, bit-for-bit resume, configuration checks, bad input, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.config import PretrainConfig, differing_keys
from modan_dicom.errors import ConfigError, DatasetError
from modan_dicom.ingest import read_index
from modan_dicom.ingest import subset_index as write_subset
from modan_dicom.models import load_encoder
from modan_dicom.train import learning_rate, pretrain

TINY = dict(epochs=2, batch_size=32, image_size=32, stem="torchvision", warmup_epochs=1, workers=1, checkpoint_every=1)


def tiny_config(index: Path, out: Path, **overrides) -> dict:
    return {"index": str(index), "out": str(out), **TINY, **overrides}


def subset_index(index: Path, keep: pd.Series, out: Path) -> Path:
    """Copy the rows of `index` selected by the boolean `keep`, with the index metadata."""
    return write_subset(index, keep, out)  # the local file (paths) comes along


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_pretrain_writes_run_and_resume_is_bit_for_bit(small_index: Path, tmp_path: Path) -> None:
    straight = pretrain(tiny_config(small_index, tmp_path / "straight"))
    run = tmp_path / "straight"
    assert json.loads((run / "config.json").read_text())["temperature"] == 0.07
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and metrics["loss"].notna().all()
    assert (run / "checkpoints" / "epoch_0001.pt").exists() and (run / "checkpoints" / "last.pt").exists()
    assert load_encoder(straight)(torch.zeros(2, 1, 32, 32)).shape == (2, 512)

    def killed(stats) -> None:  # the process dies right after epoch 1 was checkpointed
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_config(small_index, tmp_path / "split"), on_epoch=killed)
    assert not (tmp_path / "split" / "encoder.pt").exists()
    resumed = pretrain(tiny_config(small_index, tmp_path / "split", resume=True))
    a, b = state(straight), state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert list(pd.read_csv(tmp_path / "split" / "metrics.csv")["epoch"]) == [1, 2]


def test_resume_with_other_configuration_names_the_keys(small_index: Path, tmp_path: Path) -> None:
    pretrain(tiny_config(small_index, tmp_path / "run", epochs=1, image_size=16, batch_size=64))
    with pytest.raises(ConfigError, match="lr.*threshold|threshold.*lr"):
        pretrain(tiny_config(small_index, tmp_path / "run", epochs=2, resume=True, lr=0.2, threshold=0.5,
                             image_size=16, batch_size=64))
    with pytest.raises(ConfigError, match="--resume"):
        pretrain(tiny_config(small_index, tmp_path / "run", epochs=2, image_size=16, batch_size=64))


def test_no_usable_rows_and_identical_labels(small_index: Path, tmp_path: Path) -> None:
    frame = read_index(small_index)
    only_bad = subset_index(small_index, frame["status"] != "ok", tmp_path / "bad.parquet")
    with pytest.raises(DatasetError, match="no usable rows"):
        pretrain(tiny_config(only_bad, tmp_path / "a", root=str(small_index.parent)))
    one_kind = (frame["status"] == "ok") & (frame["modality"] == "MR") & (frame["anatomy"] == "knee")
    same = subset_index(small_index, one_kind, tmp_path / "same.parquet")
    with pytest.raises(DatasetError, match="same label"):
        pretrain(tiny_config(same, tmp_path / "b"))


def test_config_defaults_follow_the_paper() -> None:
    mulsupcon = PretrainConfig(index="i", out="o").resolved()
    assert (mulsupcon.lr, mulsupcon.temperature, mulsupcon.threshold, mulsupcon.optimizer) == (0.05, 0.07, 0.3, "sgd")
    assert (mulsupcon.batch_size, mulsupcon.epochs, mulsupcon.momentum, mulsupcon.weight_decay) == (256, 1000, 0.9, 1e-4)
    assert PretrainConfig(index="i", out="o", method="simclr").resolved().temperature == 0.1
    assert PretrainConfig(index="i", out="o", method="ce").resolved().optimizer == "adam"
    other = PretrainConfig(index="i", out="o", lr=0.1, epochs=5, device="cpu").resolved()
    assert differing_keys(mulsupcon, other) == ["lr"]
    with pytest.raises(ConfigError):
        PretrainConfig(index="i", out="o", method="byol").resolved()


def test_learning_rate_schedules() -> None:
    cosine = PretrainConfig(index="i", out="o", epochs=100, warmup_epochs=10).resolved()
    assert learning_rate(cosine, 0, 10) == pytest.approx(0.05 / 100)
    assert learning_rate(cosine, 100, 10) == pytest.approx(0.05)
    assert learning_rate(cosine, 550, 10) == pytest.approx(0.025)
    step = PretrainConfig(index="i", out="o", epochs=100, schedule="step").resolved()
    assert [learning_rate(step, e * 10, 10) for e in (0, 70, 80, 90)] == pytest.approx([0.05, 0.005, 5e-4, 5e-5])


def test_cli_pretrain_and_errors(small_index: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["pretrain", "--index", str(small_index), "--out", str(tmp_path / "cli"), "--epochs", "1",
            "--batch-size", "32", "--image-size", "32", "--stem", "torchvision", "--method", "simclr", "--workers", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "encoder.pt").exists()
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["temperature"] == 0.1

    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "already holds a run" in again.output and "Traceback" not in again.output
    missing = runner.invoke(main, ["pretrain", "--index", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "nope.parquet" in missing.output


def test_torchrun_two_processes_on_cpu(small_index: Path, tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m modan_dicom pretrain ...`: gloo, each rank its shard, one encoder."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(port), "-m", "modan_dicom", "pretrain", "--index", str(small_index),
               "--out", str(out), "--epochs", "1", "--batch-size", "32", "--image-size", "32",
               "--stem", "torchvision", "--workers", "1", "--device", "cpu"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["epoch"]) == [1] and metrics["loss"].notna().all()
    assert load_encoder(out / "encoder.pt")(torch.zeros(2, 1, 32, 32)).shape == (2, 512)


def _checkpoint_then_die(path: str, flag: str) -> None:
    import time

    from modan_dicom import atomic

    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(b"\0" * (1 << 20))  # a checkpoint half written when the process is killed
        Path(flag).write_text("writing")
        time.sleep(60)


def test_temporaries_of_a_killed_run_are_removed_by_the_next(small_index: Path, tmp_path: Path) -> None:
    import multiprocessing
    import os
    import signal
    import time

    run = tmp_path / "run"  # a run killed while writing its first checkpoint
    flag = tmp_path / "flag"
    child = multiprocessing.get_context("fork").Process(
        target=_checkpoint_then_die, args=(str(run / "checkpoints" / "last.pt"), str(flag)))
    child.start()
    deadline = time.monotonic() + 20
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    older = run / ".encoder.pt.k3j4h5g6.pt.tmp"  # an earlier version's name (no pid)
    older.write_bytes(b"\0" * 1000)
    os.utime(older, (time.time() - 600, time.time() - 600))
    temps = lambda: sorted(p.name for p in run.rglob("*.tmp"))  # noqa: E731
    assert len(temps()) == 2
    pretrain(tiny_config(small_index, run, epochs=1, image_size=16, batch_size=64))  # started again
    assert temps() == []
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1
