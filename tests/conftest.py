"""Shared fixtures: one small synthetic export and its index per test session (both read-only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests must not fight over the 2 cores: one intra-op thread per test process.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default-content synthetic DICOM export (small images). Do not modify it."""
    from modan_dicom.synth import synth_export

    root = tmp_path_factory.mktemp("export")
    synth_export(root, seed=11, n_patients=24, image_size=48)
    return root


@pytest.fixture(scope="session")
def small_index(small_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`index.parquet` of `small_export` (radimagenet profile). Do not modify it."""
    from modan_dicom.ingest import build_index

    out = tmp_path_factory.mktemp("index") / "index.parquet"
    build_index(small_export, out, salt="test-salt")
    return out
