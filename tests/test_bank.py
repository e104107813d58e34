"""The image bank: MONAI caches, decoded values, targets under another profile, sharding."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modan_dicom.data.bank import build_bank
from modan_dicom.data.targets import build_targets
from modan_dicom.data.transforms import resize_unit_image
from modan_dicom.errors import ConfigError
from modan_dicom.imaging import load_image
from modan_dicom.ingest import read_index
from modan_dicom.vocab import Vocabulary


def test_bank_holds_the_decoded_resized_images(small_index: Path, small_export: Path) -> None:
    frame = read_index(small_index)
    targets = build_targets(frame, Vocabulary.load("radimagenet"))
    bank = build_bank(frame, targets, small_export, 24, workers=2)
    assert bank.images.shape == (len(targets.rows), 1, 24, 24) and bank.images.dtype == torch.uint8
    for i in (0, len(bank) // 2, len(bank) - 1):
        expected = resize_unit_image(load_image(small_export / frame["path"].iat[targets.rows[i]]), 24)
        assert torch.equal(bank.images[i], expected)
    assert torch.equal(bank.multi_hot, torch.as_tensor(targets.multi_hot))
    assert bank.multi_hot.shape[1] == 12 and torch.all(bank.multi_hot.sum(1) == 2)


def test_persistent_cache_means_the_second_run_decodes_nothing(small_index: Path, small_export: Path, tmp_path: Path) -> None:
    frame = read_index(small_index)
    targets = build_targets(frame, Vocabulary.load("radimagenet"))
    first = build_bank(frame, targets, small_export, 16, cache_dir=tmp_path / "cache", workers=0)
    assert len(list((tmp_path / "cache").iterdir())) == len(targets.rows)
    # Without the source files only the cache can answer: the second run must not decode anything.
    moved = tmp_path / "moved"
    shutil.copytree(small_export, moved)
    second = build_bank(frame, targets, moved, 16, cache_dir=tmp_path / "cache", workers=0)
    for path in moved.rglob("*"):
        if path.is_file():
            path.write_bytes(b"")  # destroy every source image
    third = build_bank(frame, targets, moved, 16, cache_dir=tmp_path / "cache", workers=0)
    assert torch.equal(first.images, second.images) and torch.equal(first.images, third.images)


def test_targets_under_another_profile_and_extra_axes(small_index: Path) -> None:
    frame = read_index(small_index)
    full = build_targets(frame, Vocabulary.load("full"), ("modality", "anatomy", "laterality", "manufacturer"))
    radimagenet = build_targets(frame, Vocabulary.load("radimagenet"))
    assert len(full.rows) > len(radimagenet.rows)  # XR and head are usable under `full`
    assert any(a.startswith("manufacturer:") for a in full.axes)
    lateral = [j for j, a in enumerate(full.axes) if a.startswith("laterality:")]
    rows = frame.iloc[full.rows]
    expected = rows["Laterality"].isin(["L", "R", "B"]).to_numpy()
    assert np.array_equal(full.multi_hot[:, lateral].sum(1) == 1, expected)
    only_anatomy = build_targets(frame, Vocabulary.load("radimagenet"), ("anatomy",))
    assert only_anatomy.axes == radimagenet.axes[3:]
    with pytest.raises(ConfigError):
        build_targets(frame, Vocabulary.load("radimagenet"), ("colour",))


def test_shards_partition_the_targets(small_index: Path) -> None:
    targets = build_targets(read_index(small_index), Vocabulary.load("radimagenet"))
    shards = [targets.shard(r, 3) for r in range(3)]
    assert sorted(np.concatenate([s.rows for s in shards]).tolist()) == sorted(targets.rows.tolist())
    assert all(s.axes == targets.axes for s in shards)


def test_an_undecodable_image_is_left_out_and_listed(small_index: Path, small_export: Path, tmp_path: Path) -> None:
    frame = read_index(small_index)
    targets = build_targets(frame, Vocabulary.load("radimagenet"))
    broken = tmp_path / "export"
    shutil.copytree(small_export, broken)
    victim = frame["path"].iat[targets.rows[0]]
    (broken / victim).write_bytes(b"DICM but not really")
    bank = build_bank(frame, targets, broken, 16, workers=1)
    assert [f.row for f in bank.failures] == [int(targets.rows[0])]
    assert victim not in bank.failures[0].reason and Path(victim).name not in bank.failures[0].reason
    assert len(bank) == len(targets.rows) - 1 and np.array_equal(bank.rows, targets.rows[1:])
