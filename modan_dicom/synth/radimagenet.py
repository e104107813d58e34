"""The synthetic export as RadImageNet-style PNG folders.

    CT/<region>/<class>/<file>.png     region folders: lung, abd
    MR/<region>/<class>/<file>.png     region folders: af, brain, hip, knee, mriabd, shoulder, spine
    US/<organ>/<file>.png              ultrasound has no region level

Class folder names are real RadImageNet ones, verbatim (typos and trailing underscores included:
"pituatary_lesion", "achilles_pathology_", "foraminal_pathlogy", "ca++_tendinosis"). The pixels are
the same phantoms as the DICOM export (`pixels.synth_pixels`) rendered to 8-bit grey; any class
other than "normal" (and the US thyroid_nodule folder) shows a lesion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .export import MANIFEST_COLUMNS, MANIFEST_NAME, Progress, write_manifest
from .pixels import Look, display_uint8, synth_pixels


@dataclass(frozen=True)
class RadImageNetFolder:
    modality: str  # CT | MR | US (the modality folder and the expected modality id)
    region: str | None  # region folder (None for US)
    classes: tuple[str, ...]  # class folders (for US: organ folders)
    anatomy: tuple[str, ...]  # expected full-vocabulary anatomy id per class (US organs differ)
    axis: tuple[str, ...]  # expected `radimagenet` profile anatomy axis per class
    phantom: tuple[str, ...]  # the pixel region (pixels.REGIONS) per class


def _same(n: int, value: str) -> tuple[str, ...]:
    return (value,) * n


def _folder(modality: str, region: str, classes: tuple[str, ...], anatomy: str, phantom: str) -> RadImageNetFolder:
    return RadImageNetFolder(modality, region, classes, _same(len(classes), anatomy), _same(len(classes), anatomy),
                             _same(len(classes), phantom))


_US_ORGANS = (  # (organ folder, anatomy id, axis, phantom region)
    ("liver", "liver", "abdomen", "abdomen"),
    ("gb", "gallbladder", "abdomen", "abdomen"),
    ("kidney", "kidney", "abdomen", "abdomen"),
    ("spleen", "spleen", "abdomen", "abdomen"),
    ("aorta", "abdominal_aorta", "abdomen", "abdomen"),
    ("thyroid", "thyroid", "thyroid", "thyroid"),
    ("thyroid_nodule", "thyroid", "thyroid", "thyroid"),
)

FOLDERS: tuple[RadImageNetFolder, ...] = (
    _folder("CT", "lung", ("normal", "Nodule", "interstitial_lung_disease"), "lung", "lung"),
    _folder("CT", "abd", ("normal", "renal_lesion", "liver_lesion"), "abdomen", "abdomen"),
    _folder("MR", "af", ("normal", "achilles_pathology_", "osseous_disruption"), "ankle_foot", "ankle_foot"),
    _folder("MR", "brain", ("normal", "pituatary_lesion", "acute_infarct"), "brain", "brain"),
    _folder("MR", "hip", ("normal", "labral_pathology"), "hip", "hip"),
    _folder("MR", "knee", ("normal", "acl_pathology", "meniscal_abnormality"), "knee", "knee"),
    _folder("MR", "mriabd", ("normal", "bil_dil", "liver_disease_"), "abdomen", "abdomen"),
    _folder("MR", "shoulder", ("normal", "ca++_tendinosis", "supraspinatus_pathology"), "shoulder", "shoulder"),
    _folder("MR", "spine", ("normal", "disc_pathology", "foraminal_pathlogy"), "spine", "spine"),
    RadImageNetFolder("US", None, tuple(o[0] for o in _US_ORGANS), tuple(o[1] for o in _US_ORGANS),
                      tuple(o[2] for o in _US_ORGANS), tuple(o[3] for o in _US_ORGANS)),
)


_NO_LESION = frozenset({"normal", "thyroid", "liver", "gb", "kidney", "spleen", "aorta"})


def class_label(folder: RadImageNetFolder, class_folder: str) -> str:
    """The 165-class label: the class folder path relative to the layout root ("CT/lung/Nodule", "US/gb")."""
    return "/".join(p for p in (folder.modality, folder.region, class_folder) if p)


def write_radimagenet_export(root: Path, *, seed: int, images_per_class: int, image_size: int,
                             progress: Progress | None = None) -> pd.DataFrame:
    """Write the PNG tree under `root` (already prepared) and its manifest; return the manifest."""
    jobs: list[tuple[dict[str, object], str, str, Look, int]] = []
    for folder in FOLDERS:
        for c, class_folder in enumerate(folder.classes):
            label = class_label(folder, class_folder)
            tidy = class_folder.strip("_").replace("+", "")
            stem = f"{folder.region}-{tidy}" if folder.region else tidy  # e.g. lung-Nodule00001.png, gb00001.png
            for k in range(1, images_per_class + 1):
                rng = np.random.default_rng([seed, 31, len(jobs)])
                region = folder.phantom[c]
                weighting = str(rng.choice(["T1", "T2", "PD", "T2FS", "FLAIR" if region == "brain" else "STIR"]))
                look = Look(weighting=weighting,
                            lesion=class_folder not in _NO_LESION, noise_hu=float(rng.uniform(6, 16)))
                row: dict[str, object] = dict.fromkeys(MANIFEST_COLUMNS, "")
                row.update(path=f"{label}/{stem}{k:05d}.png", status="ok", status_full="ok", kind="png",
                           modality=folder.modality, modality_axis=folder.modality, anatomy=folder.anatomy[c],
                           anatomy_source="folder", anatomy_axis=folder.axis[c], label=label, region=region,
                           photometric="MONOCHROME2", bits_stored=8, n_frames=1, rows=image_size,
                           columns=image_size, preamble=0, patient=0, study=0, series=0, instance=k)
                jobs.append((row, region, folder.modality, look, len(jobs)))
    manifest: dict[str, object] = dict.fromkeys(MANIFEST_COLUMNS, "")
    manifest.update(path=MANIFEST_NAME, status="not_dicom", status_full="not_dicom", kind="manifest", preamble=0,
                    bits_stored=0, n_frames=0, rows=0, columns=0, patient=0, study=0, series=0, instance=0)
    rows = [job[0] for job in jobs] + [manifest]
    write_manifest(root, rows)  # claims the folder before the long part
    for done, (row, region, modality, look, n) in enumerate(jobs, 1):
        key = [seed, 32, n]
        img = synth_pixels(region, modality, image_size, image_size,
                           series_seed=int(np.random.SeedSequence(key + [1]).generate_state(1)[0]),
                           seed=int(np.random.SeedSequence(key + [2]).generate_state(1)[0]),
                           z=float(np.random.default_rng(key).uniform(-0.6, 0.6)), look=look)
        target = root / str(row["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(display_uint8(img), mode="L").save(target, format="PNG")
        if progress is not None:
            progress(done, len(rows))
    frame = write_manifest(root, rows)
    if progress is not None:
        progress(len(rows), len(rows))
    return frame
