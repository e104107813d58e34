"""Synthetic data, deterministic by seed: PACS-like DICOM exports and RadImageNet-style PNG folders.

    synth_export(out, seed=0)                         # DICOM export + out/manifest.csv + out/phi.json
    synth_export(out, layout="radimagenet")           # CT|MR/<region>/<class>/*.png, US/<organ>/*.png
    synth_export(out, n_patients=patients_for_files(10_000), image_size=256)   # a benchmark-sized export

The manifest (one row per file in `out`, manifest and phi.json included) is the ground truth the
indexer and the image loader are tested against; `export.MANIFEST_COLUMNS` documents its columns.
`phi.json` lists every fake PHI value written into the files (each contains "ZZPHI" except birth
dates): none of them may appear in any output of the pipeline.
"""

from __future__ import annotations

import math
import os

import pandas as pd

from ..errors import ConfigError
from .export import (MANIFEST_COLUMNS, MANIFEST_NAME, PHI_NAME, STATUSES, Progress, plan_export, prepare_output,
                     write_export)

__all__ = ["MANIFEST_COLUMNS", "MANIFEST_NAME", "PHI_NAME", "STATUSES", "LAYOUTS", "synth_export", "patients_for_files"]

LAYOUTS = ("dicom", "radimagenet")


def patients_for_files(n_files: int, *, studies_per_patient: int = 3, series_per_study: int = 2,
                       instances_per_series: int = 3) -> int:
    """The `n_patients` that gives about `n_files` image files (plus a few percent of other files)."""
    per_patient = studies_per_patient * series_per_study * instances_per_series
    return max(1, math.ceil(n_files / per_patient))


def synth_export(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    layout: str = "dicom",
    n_patients: int = 16,
    studies_per_patient: int = 3,
    series_per_study: int = 2,
    instances_per_series: int = 3,
    image_size: int = 128,
    images_per_class: int = 4,
    workers: int = 1,
    variation: float = 1.0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Write a synthetic export under `out` and return its manifest (also written as out/manifest.csv).

    layout "dicom": PAT####/STUDY##/SER###/ files for n_patients x studies_per_patient x
        series_per_study x instances_per_series images (the defaults cover every catalog header
        variant, every region x modality of the catalog and every transfer syntax), plus SR reports,
        a presentation state, an RT structure set, a DICOMDIR, truncated files and non-DICOM files.
    layout "radimagenet": CT|MR/<region>/<class>/*.png and US/<organ>/*.png, images_per_class each.
    image_size: the base edge in pixels (CT/MR image_size^2; US 3/4 x 1; XR 5/4 x 1; PNGs square).
    workers: processes that render and write the DICOM layout (the bytes do not depend on it).
    variation: in [0, 1], how much series vary like a real archive's (field of view, pose, build,
        window, noise, kernel...; `pixels.Variation`): 1 the full ranges, 0 the canonical phantoms.
    progress(done, total) is called as files are written.

    `out` must be missing, empty, or a previous synth export (whose files are replaced); anything
    else raises OutputError. The same arguments give byte-identical files.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    counts = {"n_patients": n_patients, "studies_per_patient": studies_per_patient,
              "series_per_study": series_per_study, "instances_per_series": instances_per_series,
              "images_per_class": images_per_class, "workers": workers}
    for name, value in counts.items():
        if int(value) < 1:
            raise ConfigError(f"{name} must be at least 1, not {value}")
    if not 16 <= int(image_size) <= 4096:
        raise ConfigError(f"image_size must be between 16 and 4096, not {image_size}")
    if not 0.0 <= float(variation) <= 1.0:
        raise ConfigError(f"variation must be between 0 and 1, not {variation}")
    if layout == "radimagenet":
        from .radimagenet import write_radimagenet_export

        root = prepare_output(out)
        return write_radimagenet_export(root, seed=seed, images_per_class=images_per_class, image_size=image_size,
                                        progress=progress)
    plan = plan_export(seed=seed, n_patients=n_patients, studies_per_patient=studies_per_patient,
                       series_per_study=series_per_study, instances_per_series=instances_per_series,
                       image_size=image_size, variation=variation)
    root = prepare_output(out)
    return write_export(plan, root, progress, workers=workers)
