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


def _need_orthanc() -> None:
    """Skip (on a developer's machine) or fail (under CI=true) when Orthanc cannot run here."""
    from modan_dicom.pacs.orthanc import orthanc_missing

    reason = orthanc_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: under CI the PACS tests must run (.ci/run installs it from .ci/system-packages)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pacs(small_export: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real Orthanc holding `small_export` (DICOMweb and DIMSE; called AE title checked). Read-only."""
    _need_orthanc()
    from modan_dicom.pacs.orthanc import LocalOrthanc

    with LocalOrthanc(tmp_path_factory.mktemp("orthanc")) as server:
        assert server.upload(small_export) > 100
        yield server


@pytest.fixture(scope="session")
def capped_pacs(small_export: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real Orthanc holding `small_export` that stops every query at 40 matches (LimitFindResults)."""
    _need_orthanc()
    from modan_dicom.pacs.orthanc import LocalOrthanc

    with LocalOrthanc(tmp_path_factory.mktemp("orthanc-capped"), limit_find_results=40,
                      limit_find_instances=40) as server:
        server.upload(small_export)
        yield server
