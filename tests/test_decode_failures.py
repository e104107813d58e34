"""Hostile pixel data in pretraining: each bad image is isolated and listed, the run goes on or stops in one line;
the MONAI cache holds no path text."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from hostile_pixels import KINDS, make_hostile, native_ok_rows
from modan_dicom.cli import main
from modan_dicom.data.bank import build_bank
from modan_dicom.data.decode import IsolatedDecoder, scrub
from modan_dicom.data.targets import build_targets
from modan_dicom.data.transforms import resize_unit_image
from modan_dicom.errors import ConfigError, UndecodableError
from modan_dicom.imaging import load_image
from modan_dicom.ingest import build_index, read_index
from modan_dicom.synth import synth_export
from modan_dicom.train import pretrain
from modan_dicom.vocab import Vocabulary

TINY = dict(epochs=1, batch_size=16, image_size=32, stem="torchvision", warmup_epochs=0, workers=2)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(export, index, {kind: relative path}): a small export whose `ok` rows include one file of each kind."""
    root = tmp_path_factory.mktemp("hostile")
    manifest = synth_export(root / "export", seed=3, n_patients=4, image_size=32)
    chosen = make_hostile(root / "export", manifest)
    build_index(root / "export", root / "index.parquet", salt="test-salt")
    return root / "export", root / "index.parquet", chosen


def test_each_hostile_image_costs_itself_only(hostile: tuple[Path, Path, dict[str, str]]) -> None:
    export, index, chosen = hostile
    frame = read_index(index)
    rows = {kind: int(np.flatnonzero(frame["path"] == path)[0]) for kind, path in chosen.items()}
    assert all(frame["status"].iat[r] == "ok" for r in rows.values())  # headers are fine: the index says ok
    targets = build_targets(frame, Vocabulary.load("radimagenet"))
    bank = build_bank(frame, targets, export, 24, workers=2)

    reasons = {f.row: f.reason for f in bank.failures}
    assert sorted(reasons) == sorted(rows.values())
    assert reasons[rows["rle_panic"]].startswith("PanicException: ")  # a BaseException, not an Exception
    assert reasons[rows["rle_no_segments"]] == "the decoder crashed (SIGFPE)"
    assert reasons[rows["j2k_garbage"]] == "the decoder crashed (SIGABRT)"
    assert reasons[rows["unknown_syntax"]].startswith("ValueError: ")
    for path in chosen.values():
        for reason in reasons.values():
            assert path not in reason and Path(path).name not in reason and str(export) not in reason

    # the bank is the rest, with its targets re-aligned
    kept = ~np.isin(targets.rows, list(rows.values()))
    assert len(bank) == kept.sum() == len(targets.rows) - len(KINDS)
    assert np.array_equal(bank.rows, targets.rows[kept])
    assert torch.equal(bank.multi_hot, torch.as_tensor(targets.multi_hot[kept]))
    assert torch.equal(bank.classes, torch.as_tensor(targets.classes[kept]))
    for i in (0, len(bank) // 2, len(bank) - 1):
        expected = resize_unit_image(load_image(export / frame["path"].iat[bank.rows[i]]), 24)
        assert torch.equal(bank.images[i], expected)


def test_pretrain_goes_on_and_lists_the_failures(hostile: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    export, index, chosen = hostile
    out = tmp_path / "run"
    encoder = pretrain({"index": str(index), "out": str(out), **TINY, "max_decode_failures": 0.2})
    assert encoder.is_file()
    listed = pd.read_csv(out / "decode_failures.csv")
    frame = read_index(index)
    assert list(listed.columns) == ["index_row", "instance_key", "series_key", "reason"]
    assert sorted(frame["path"].iloc[listed["index_row"]]) == sorted(chosen.values())
    assert list(listed["instance_key"]) == list(frame["instance_key"].iloc[listed["index_row"]])
    text = (out / "decode_failures.csv").read_text()
    assert not any(Path(p).name in text or p in text for p in chosen.values())
    assert json.loads((out / "config.json").read_text())["max_decode_failures"] == 0.2


def test_more_failures_than_allowed_stop_the_run_in_one_line(
    hostile: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, index, chosen = hostile
    n_usable = len(build_targets(read_index(index), Vocabulary.load("radimagenet")).rows)
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["pretrain", "--index", str(index), "--out", str(out), "--epochs", "1",
                                       "--batch-size", "16", "--image-size", "32", "--stem", "torchvision"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert f"{len(chosen)} of {n_usable} images cannot be decoded" in line and "decode_failures.csv" in line
    assert len(pd.read_csv(out / "decode_failures.csv")) == len(chosen)
    assert not (out / "encoder.pt").exists()
    # the stopped run's folder is a run: the same command with a larger share goes on in it
    assert pretrain({"index": str(index), "out": str(out), **TINY, "max_decode_failures": 0.2}).is_file()
    with pytest.raises(UndecodableError):
        pretrain({"index": str(index), "out": str(tmp_path / "api"), **TINY, "max_decode_failures": 0.05})
    with pytest.raises(ConfigError):
        pretrain({"index": str(index), "out": str(tmp_path / "bad"), **TINY, "max_decode_failures": 1.5})


def test_a_decoder_that_never_returns_times_out(small_index: Path, small_export: Path, tmp_path: Path) -> None:
    frame = read_index(small_index)
    targets = build_targets(frame, Vocabulary.load("radimagenet"))
    export = tmp_path / "export"
    shutil.copytree(small_export, export)
    victim = export / frame["path"].iat[targets.rows[1]]
    victim.unlink()
    os.mkfifo(victim)  # opening it blocks until a writer comes: none will
    bank = build_bank(frame, targets, export, 16, workers=2, timeout_s=3)
    assert [(f.row, f.reason) for f in bank.failures] == [(int(targets.rows[1]), "decoding took longer than 3 s")]
    assert len(bank) == len(targets.rows) - 1


def test_the_decoder_survives_its_workers(hostile: tuple[Path, Path, dict[str, str]]) -> None:
    export, _, chosen = hostile
    good = str(export / native_ok_rows(pd.read_csv(export / "manifest.csv"))["path"].iloc[1])
    with IsolatedDecoder(16, workers=1) as decoder:
        for kind in ("rle_no_segments", "j2k_garbage", "rle_panic"):
            with pytest.raises(Exception, match="crashed|PanicException"):
                decoder(export / chosen[kind])
            assert decoder(good).shape == (1, 16, 16)  # a fresh worker took the dead one's place


def test_reasons_name_no_file_or_uid() -> None:
    path = "/data/export/DOE^JANE/1.2.826.0.1.3680043.8.498.123456789/IM1.dcm"
    tail = "DOE^JANE/1.2.826.0.1.3680043.8.498.123456789/IM1.dcm"
    text = f"{path}: cannot decode; ITK: cannot read {tail} (1.2.840.10008.1.2.5)"
    cleaned = scrub(text, path)
    assert "DOE" not in cleaned and "498.123456789" not in cleaned and "IM1" not in cleaned
    assert "1.2.840.10008.1.2.5" in cleaned and cleaned.startswith("cannot decode")


def test_the_cache_holds_no_path_text(tmp_path: Path) -> None:
    """File and folder names carry a (fake) patient name; neither cache file names nor their bytes do."""
    name = "ZZQUIXOTE^DULCINEA"
    export = tmp_path / "export"
    synth_export(export, seed=5, n_patients=2, image_size=32)
    (export / "manifest.csv").unlink()
    for path in sorted(export.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rename(path.with_name(f"{name}_{path.name}"))
    build_index(export, tmp_path / "index.parquet", salt="test-salt")
    frame = read_index(tmp_path / "index.parquet")
    targets = build_targets(frame, Vocabulary.load("radimagenet"))
    assert all(name in p for p in frame["path"].iloc[targets.rows])
    cache = tmp_path / "cache"
    first = build_bank(frame, targets, export, 16, cache_dir=cache, workers=1)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert len(files) == len(first) > 0
    for path in files:
        assert name not in str(path.relative_to(tmp_path))
        data = path.read_bytes()
        assert name.encode() not in data and name.encode("utf-16-le") not in data and b"export" not in data
    second = build_bank(frame, targets, export, 16, cache_dir=cache, workers=1)
    assert torch.equal(first.images, second.images)


def test_embed_leaves_out_and_lists_what_it_cannot_decode(
    hostile: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from modan_dicom.evaluate.embed import embed, usable_rows

    _, index, chosen = hostile
    frame = read_index(index)
    n_usable = len(usable_rows(frame, Vocabulary.load("radimagenet"))[0])
    out = embed(index, {"a": "scratch"}, tmp_path / "emb.parquet", image_size=32, stem="torchvision",
                workers=2, max_decode_failures=0.2)
    table = pq.read_table(out).to_pandas()
    chosen_keys = set(frame.set_index("path").loc[list(chosen.values()), "file_key"])  # embeddings hold no path
    assert len(table) == n_usable - len(chosen) and not chosen_keys & set(table["file_key"])
    listed = pd.read_csv(tmp_path / "emb.decode_failures.csv")
    assert sorted(frame["path"].iloc[listed["index_row"]]) == sorted(chosen.values())
    with pytest.raises(UndecodableError, match=f"{len(chosen)} of {n_usable} images"):
        embed(index, {"a": "scratch"}, tmp_path / "strict.parquet", image_size=32, stem="torchvision")


def test_benchmark_decoding_fails_in_one_line(tmp_path: Path) -> None:
    from modan_dicom.errors import DatasetError
    from modan_dicom.evaluate.benchmark import decode_bank
    from modan_dicom.evaluate.tasks import load_task
    from modan_dicom.synth.tasks import synth_task

    synth_task("thyroid", tmp_path, image_size=32, n_images=20, seed=3)
    task = load_task("thyroid", tmp_path)
    assert decode_bank(task, 16, workers=2).shape == (20, 1, 16, 16)
    victim = Path(task.items["path"].iloc[4])
    victim.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    first = r"^task thyroid: 1 of 20 images cannot be decoded \(the first is item 4: "
    with pytest.raises(DatasetError, match=first) as caught:
        decode_bank(task, 16, workers=2)
    assert victim.name not in str(caught.value)
