"""The synthetic PACS export: plan a patient/study/series tree, write it as DICOM, and describe it.

`plan_export` decides every file up front (deterministic from the seed): which catalog header
variant a study uses, modality code, vendor, transfer syntax, file name, multi-frame or not, and
which files are deliberately broken. `write_export` renders the phantoms (`pixels`), builds the
headers, encodes (`encode.set_pixels`) and writes the files. The returned manifest is the ground
truth the indexer and image loader are tested against; it holds no PHI (the fake PHI values go to
`phi.json`, the list of strings that must never appear in any output).

Layout: ``PAT0001/STUDY01/SER001/IM0001.dcm`` (and names without extension, SOP-instance-UID
names, non-ASCII names, raw datasets without preamble), SR / presentation state / RT structure
set objects beside the images, a DICOMDIR, a few truncated files and a few files that are not DICOM.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import warnings
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from ..atomic import atomic_open, claim_folder
from ..errors import OutputError
from . import catalog
from .catalog import HeaderVariant
from .encode import LOSSY, MAX_BITS, TRANSFER_SYNTAXES, set_pixels
from .pixels import Look, PixelImage, synth_pixels

Progress = Callable[[int, int | None], None]

# ---- the manifest contract ----------------------------------------------------------------------

STATUSES = ("ok", "unmapped", "non_image", "not_dicom", "error")
MANIFEST_COLUMNS = (
    "path",  # relative to the export root, POSIX separators
    "status",  # expected index status with the `radimagenet` profile
    "status_full",  # expected index status with the `full` profile
    # image | sr | presentation_state | rtstruct | dicomdir | truncated | text | jpeg | junk | png | manifest | phi
    "kind",
    "modality_code",  # DICOM Modality written (CT, MR, US, CR, DX, RF, SR, PR, RTSTRUCT; "" when none)
    "modality",  # expected modality id (CT, MR, US, XR); "" unless status is ok/unmapped
    "modality_axis",  # `radimagenet` profile modality axis ("" for XR)
    "anatomy",  # expected most specific full-vocabulary anatomy id ("" when none)
    "anatomy_source",  # deciding field: AnatomicRegion, BodyPartExamined, SeriesDescription, ... or "folder"
    "anatomy_axis",  # `radimagenet` profile anatomy axis ("" when none)
    "label",  # RadImageNet 165-class label (class folder path), radimagenet layout only
    "region",  # what the pixels show (a catalog region), whatever the header says
    "variant",  # catalog variant "region/index", "NO_ANATOMY" or ""
    "body_part",  # header values written (for reading failures; none of them is PHI)
    "series_description",
    "protocol_name",
    "study_description",
    "laterality",
    "manufacturer",
    "sop_class",
    "syntax",  # transfer syntax short name (encode.TRANSFER_SYNTAXES), "" when not DICOM
    "preamble",  # 1: 128-byte preamble + DICM + file meta; 0: raw implicit VR dataset
    "photometric",
    "bits_stored",
    "n_frames",
    "rows",
    "columns",
    "patient",  # group keys (1-based indexes, not PHI): same patient / study / series
    "study",
    "series",
    "instance",
)
MANIFEST_NAME = "manifest.csv"
PHI_NAME = "phi.json"
_MANIFEST_HEADER = ",".join(MANIFEST_COLUMNS)

# ---- fixed vocabulary of the export --------------------------------------------------------------

SOP = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "US_MF": "1.2.840.10008.5.1.4.1.1.3.1",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "RF": "1.2.840.10008.5.1.4.1.1.12.2",
    "SR": "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "PR": "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "RTSTRUCT": "1.2.840.10008.5.1.4.1.1.481.3",
    "DICOMDIR": "1.2.840.10008.1.3.10",  # Media Storage Directory
}
MODALITY_ID = {"CT": "CT", "MR": "MR", "US": "US", "CR": "XR", "DX": "XR", "RF": "XR"}
PROFILE_MODALITIES = ("CT", "MR", "US")  # the `radimagenet` profile's modality axes

# SNOMED CT codes for the Anatomic Region Sequence (a few series carry one; it decides the anatomy)
SNOMED = {
    "knee": ("72696002", "Knee"), "brain": ("12738006", "Brain"), "shoulder": ("16982005", "Shoulder"),
    "hip": ("24136001", "Hip joint"), "lumbar_spine": ("122496007", "Lumbar spine"),
    "cervical_spine": ("122494005", "Cervical spine"), "thyroid": ("69748006", "Thyroid"),
    "lung": ("39607008", "Lung"), "abdomen": ("818981001", "Abdomen"), "ankle": ("70258002", "Ankle joint"),
}
ARS = "AnatomicRegion"  # the `anatomy_source` name the label resolver uses for the Anatomic Region Sequence


@dataclass(frozen=True)
class Vendor:
    """A scanner; its private block is (group, creator) with elements xx08 CS, xx09 LO, xx10 OB (only
    "SIEMENS CSA HEADER" is a real creator, whose dictionary entries match; the others are made up
    so that no reader applies a real vendor's private dictionary to them)."""

    manufacturer: str
    model: str
    software: str
    private_group: int
    private_creator: str


VENDORS: dict[str, tuple[Vendor, ...]] = {
    "CT": (Vendor("SIEMENS", "SOMATOM Definition AS+", "syngo CT VA48A", 0x0029, "SIEMENS CSA HEADER"),
           Vendor("GE MEDICAL SYSTEMS", "Revolution CT", "revo_ct_22BC.46", 0x0043, "GEMS_ZZSYNTH_01"),
           Vendor("Philips", "Brilliance 64", "4.1.6", 0x01F1, "ELSCINT_ZZSYNTH"),
           Vendor("TOSHIBA", "Aquilion ONE", "V8.3SP0001", 0x7005, "TOSHIBA_ZZSYNTH")),
    "MR": (Vendor("SIEMENS", "Skyra", "syngo MR E11", 0x0029, "SIEMENS CSA HEADER"),
           Vendor("GE MEDICAL SYSTEMS", "SIGNA Premier", "29\\LX\\MR Software release:RX29.1", 0x0043,
                  "GEMS_ZZSYNTH_01"),
           Vendor("Philips Medical Systems", "Ingenia", "5.4.1\\5.4.1.0", 0x2005, "Philips ZZSYNTH MR 001")),
    "US": (Vendor("GE Healthcare", "LOGIQE9", "R6.1.5", 0x7FE1, "GEMS_ZZSYNTH_US_01"),
           Vendor("Philips Medical Systems", "EPIQ 7G", "5.0.2", 0x200D, "Philips ZZSYNTH US 001"),
           Vendor("SIEMENS", "ACUSON S2000", "4.0.00", 0x0019, "SIEMENS ZZSYNTH US")),
    "XR": (Vendor("Carestream Health", "DRX-Evolution", "5.7.412", 0x0019, "CARESTREAM ZZSYNTH"),
           Vendor("Agfa", "CR 85-X", "NX 3.0.9100", 0x0019, "AGFA ZZSYNTH"),
           Vendor("FUJIFILM Corporation", "FCR CAPSULA XLII", "A09", 0x0009, "FDMS ZZSYNTH"),
           Vendor("Philips Medical Systems", "DigitalDiagnost", "4.3.5", 0x2001, "Philips ZZSYNTH DD 001")),
    "RF": (Vendor("SIEMENS", "Luminos dRF Max", "VF10C", 0x0029, "SIEMENS CSA HEADER"),
           Vendor("Philips Medical Systems", "CombiDiagnost R90", "1.1.2", 0x2001, "Philips ZZSYNTH DD 001")),
}

# a non-ASCII file name for the first image of the first series of each region
LOCAL_NAMES = {
    "lung": "Thorax_Lunge_ü.dcm", "knee": "膝.dcm", "brain": "Gehirn_Schädel.dcm", "spine": "Wirbelsäule.dcm",
    "abdomen": "腹部_Bauch.dcm", "shoulder": "Épaule_droite.dcm", "hip": "Hüfte.dcm", "ankle_foot": "足首.dcm",
    "thyroid": "Schilddrüse.dcm",
}
_NAMING = ("ext", "ext", "noext", "ext", "uid", "ext", "ge")
_SURNAMES = ("MUELLER", "SCHMIDT", "DOE", "ROE", "ROSSI", "DUBOIS", "NOVAK", "SILVA", "TANAKA", "KOWALSKI",
             "JANSEN", "BERG", "LINDQVIST", "MURPHY", "GARCIA", "PETROV")
_GIVEN = ("ANNA", "JAN", "MARIA", "PETER", "LENA", "TOM", "EVA", "PAUL", "SARA", "MAX", "IDA", "LEO")
_US_CINE_FRAMES = 8
_RF_FRAMES = 6
_EXPLICIT_SHARE = 0.5  # share of images left in explicit VR little endian (the most common syntax)
_UID_ROOT = "modan-dicom-synth"


# ---- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    index: int  # 1-based
    name: str
    patient_id: str
    birth_date: str
    sex: str
    address: str
    other_name: str
    other_id: str
    phone: str
    charset: str


@dataclass(frozen=True)
class Study:
    patient: Patient
    index: int  # 1-based within the patient
    region: str  # what the pixels show
    variant: HeaderVariant
    variant_key: str
    modality_code: str
    vendor: Vendor
    date: str
    time: str
    accession: str
    uid: str
    institution: str
    institution_address: str
    referrer: str
    operator: str

    @property
    def modality(self) -> str:
        return MODALITY_ID[self.modality_code]

    @property
    def folder(self) -> str:
        return f"PAT{self.patient.index:04d}/STUDY{self.index:02d}"


@dataclass(frozen=True)
class Series:
    study: Study
    index: int  # 1-based within the study (the folder number)
    number: int  # Series Number
    uid: str
    frame_uid: str
    look: Look
    naming: str  # ext | noext | uid | ge
    preamble: bool
    anatomic_region: tuple[str, str] | None  # (code, meaning) when an Anatomic Region Sequence is written
    laterality: str
    cine_first: bool  # US: the first instance is a cine clip

    @property
    def folder(self) -> str:
        return f"{self.study.folder}/SER{self.index:03d}"


@dataclass
class Item:
    """One file of the export."""

    path: str
    kind: str
    status: str
    series: Series | None = None
    instance: int = 0  # 1-based
    n_instances: int = 0
    sop_uid: str = ""
    syntax: str = ""
    photometric: str = ""
    bits_stored: int = 0
    frames: int = 0
    rows: int = 0
    columns: int = 0
    study: Study | None = None  # for non-image objects
    cut: str = ""  # truncated files: "length" (inside a sequence length) or "value" (inside a long value)


@dataclass
class ExportPlan:
    seed: int
    image_size: int
    config: dict[str, int] = field(default_factory=dict)  # the resolved arguments (written to EXPORT_NOTES.txt)
    patients: list[Patient] = field(default_factory=list)
    studies: list[Study] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)

    def phi_values(self) -> list[str]:
        """Every fake PHI string written into the files, sorted."""
        values: set[str] = set()
        for p in self.patients:
            values |= {p.name, p.patient_id, p.birth_date, p.address, p.other_name, p.other_id, p.phone}
        for s in self.studies:
            values |= {s.accession, s.institution, s.institution_address, s.referrer, s.operator}
        return sorted(values)


def _uid(seed: int, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=[_UID_ROOT, str(seed), *map(str, parts)]))


def _round8(x: float) -> int:
    return max(16, int(round(x / 8.0)) * 8)


def image_shape(modality_code: str, region: str, size: int) -> tuple[int, int]:
    """(rows, columns) of an image: realistic aspect per modality, scaled by `size`."""
    if modality_code == "US":
        return _round8(0.75 * size), _round8(size)
    if modality_code in ("CR", "DX"):
        return (_round8(1.125 * size), _round8(size)) if region == "lung" else (_round8(1.25 * size), _round8(size))
    if modality_code == "MR" and region == "spine":
        return _round8(size), _round8(0.75 * size)
    return _round8(size), _round8(size)


def _modality_hint(v: HeaderVariant) -> str | None:
    """The modality a variant's text implies (its study description first), if any."""
    words = f"{v.study_description} {v.series_description} {v.protocol_name}".upper().replace("/", " ").split()
    first = v.study_description.upper().split()[:1]
    table = {"MRI": "MR", "MR": "MR", "CT": "CT", "XR": "XR", "US": "US"}
    if first and first[0] in table:
        return table[first[0]]
    if any(w in ("T1", "T2", "PD", "FS", "STIR", "FLAIR", "DWI", "GRE") for w in words):
        return "MR"
    if any(w.endswith(("B30F", "B70F", "H30S")) or w == "HRCT" for w in words):
        return "CT"
    if "LONG" in words or "TRV" in words:
        return "US"
    if words == ["PA"]:
        return "XR"
    return None


def schedule() -> list[tuple[str, str, str]]:
    """The study sequence (region, variant key, modality id): every catalog variant once, interleaved
    over regions; each region x listed modality at least once (early); NO_ANATOMY three times."""
    regions = list(catalog.REGIONS.values())
    rounds: list[list[tuple[str, str, str]]] = []
    used: dict[tuple[str, str], int] = {(r.name, m): 0 for r in regions for m in r.modalities}
    for round_ in range(max(len(r.variants) for r in regions)):
        this = []
        for r in regions:
            if round_ >= len(r.variants):
                continue
            mod = _modality_hint(r.variants[round_])
            if mod not in r.modalities:  # no hint: the modality this region has had least so far
                mod = min(r.modalities, key=lambda m: used[(r.name, m)])
            used[(r.name, mod)] += 1
            this.append((r.name, f"{r.name}/{round_}", mod))
        rounds.append(this)
    extras = []
    for r in regions:
        for mod in r.modalities:
            if used[(r.name, mod)] == 0:
                # the variant least tied to another modality, preferring body-part-decided ones
                best = min(range(len(r.variants)), key=lambda i: (_modality_hint(r.variants[i]) is not None,
                                                                     r.variants[i].source != "BodyPartExamined", i))
                extras.append((r.name, f"{r.name}/{best}", mod))
    no_anatomy = [("knee", "NO_ANATOMY", "MR"), ("abdomen", "NO_ANATOMY", "CT"), ("lung", "NO_ANATOMY", "XR")]
    out = rounds[0] + rounds[1] + extras + no_anatomy[:1] + rounds[2] + no_anatomy[1:2]
    for this in rounds[3:]:
        out += this
    return out + no_anatomy[2:]


def _variant(key: str) -> HeaderVariant:
    if key == "NO_ANATOMY":
        return catalog.NO_ANATOMY
    region, index = key.split("/")
    return catalog.REGIONS[region].variants[int(index)]


def _laterality(v: HeaderVariant, region: str, rng: np.random.Generator) -> str:
    words = f" {v.study_description} {v.series_description} {v.protocol_name} ".upper().replace(",", " ")
    if any(t in words for t in (" LEFT ", " LT ", " L ")):
        return "L"
    if any(t in words for t in (" RIGHT ", " RT ", " R ")):
        return "R"
    return str(rng.choice(["L", "R"])) if region in ("knee", "hip", "shoulder", "ankle_foot") else ""


def _weighting(v: HeaderVariant, rng: np.random.Generator) -> str:
    text = f" {v.series_description} {v.protocol_name} ".upper()
    for key, weighting in (("FLAIR", "FLAIR"), ("STIR", "STIR"), ("DWI", "DWI"), ("PD FS", "PDFS"), ("T2 FS", "T2FS"),
                           ("T1", "T1"), ("T2", "T2"), (" PD", "PD"), ("GRE", "T1")):
        if key in text:
            return weighting
    return str(rng.choice(["T1", "T2", "PD", "T2FS"]))


def _patient(index: int, rng: np.random.Generator) -> Patient:
    surname = _SURNAMES[int(rng.integers(len(_SURNAMES)))]
    given = _GIVEN[int(rng.integers(len(_GIVEN)))]
    charset = "ISO_IR 100"
    if index % 5 == 3:  # some names need UTF-8
        surname, given, charset = "MÜLLER", "JÖRG", "ISO_IR 192"
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=int(rng.integers(0, 45 * 365)))
    tag = f"ZZPHI{index:04d}"
    return Patient(
        index=index,
        name=f"{surname}-{tag}^{given}",
        patient_id=f"{tag}{int(rng.integers(10000, 99999))}",
        birth_date=birth.strftime("%Y%m%d"),
        sex=str(rng.choice(["F", "M"])),
        address=f"{int(rng.integers(1, 200))} {tag} Fake Street, Testtown",
        other_name=f"{surname}-{tag}^MAIDEN",
        other_id=f"{tag}ALT{int(rng.integers(100, 999))}",
        phone=f"555-{tag}",
        charset=charset,
    )


def plan_export(*, seed: int = 0, n_patients: int = 16, studies_per_patient: int = 3, series_per_study: int = 2,
                instances_per_series: int = 3, image_size: int = 128, variation: float = 1.0) -> ExportPlan:
    """Decide every file of a synthetic export (nothing is rendered or written); `variation` in [0, 1]
    scales how much the series vary between patients, scanners and sites (`pixels.Variation`)."""
    if not 0.0 <= float(variation) <= 1.0:
        raise ValueError(f"variation must be between 0 and 1, not {variation}")
    for name, value, low in (("n_patients", n_patients, 1), ("studies_per_patient", studies_per_patient, 1),
                             ("series_per_study", series_per_study, 1),
                             ("instances_per_series", instances_per_series, 1), ("image_size", image_size, 16)):
        if int(value) < low:
            raise ValueError(f"{name} must be at least {low}, not {value}")
    plan = ExportPlan(seed, image_size, dict(
        seed=seed, n_patients=n_patients, studies_per_patient=studies_per_patient, series_per_study=series_per_study,
        instances_per_series=instances_per_series, image_size=image_size))
    if variation != 1.0:
        plan.config["variation"] = float(variation)  # type: ignore[assignment]
    sched = schedule()
    rng = np.random.default_rng([seed, 1])
    institutions = [(f"ZZPHI{k} General Hospital", f"{k + 1} ZZPHI Hospital Road, Testtown") for k in range(3)]
    xr_counter = 0
    ars_counter = 0
    series_counter = 0
    first_series_of_region: set[str] = set()
    images: list[Item] = []
    for p in range(1, n_patients + 1):
        patient = _patient(p, rng)
        plan.patients.append(patient)
        day0 = dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 4 * 365)))
        for s in range(1, studies_per_patient + 1):
            g = len(plan.studies)
            region, key, mod = sched[g % len(sched)]
            variant = _variant(key)
            if mod == "XR":
                code = ("DX", "CR")[xr_counter % 2] if region == "lung" else ("DX", "RF", "CR")[xr_counter % 3]
                xr_counter += 1
            else:
                code = mod
            vendors = VENDORS[code if code == "RF" else "XR" if mod == "XR" else mod]
            vendor = vendors[int(rng.integers(len(vendors)))]
            inst = institutions[int(rng.integers(len(institutions)))]
            date = day0 + dt.timedelta(days=int(rng.integers(0, 400)) + 30 * (s - 1))
            study = Study(
                patient=patient, index=s, region=region, variant=variant, variant_key=key, modality_code=code,
                vendor=vendor, date=date.strftime("%Y%m%d"),
                time=f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
                accession=f"ZZPHI{p:04d}{s:02d}{int(rng.integers(100, 999))}",
                uid=_uid(seed, "study", p, s), institution=inst[0], institution_address=inst[1],
                referrer=f"ZZPHIDR{int(rng.integers(1, 40)):02d}^REFERRER",
                operator=f"ZZPHIOP{int(rng.integers(1, 40)):02d}^TECH",
            )
            plan.studies.append(study)
            for k in range(1, series_per_study + 1):
                srng = np.random.default_rng([seed, 2, p, s, k])
                ars = None
                if variant.source == "BodyPartExamined" and variant.anatomy in SNOMED:
                    ars_counter += 1
                    if ars_counter % 3 == 1:
                        ars = SNOMED[variant.anatomy]
                weighting = _weighting(variant, srng) if code == "MR" else "T2"
                look = Look(
                    weighting=weighting,
                    bits=int(srng.choice([12, 12, 16])) if code == "MR" else int(srng.choice([12, 14, 16])),
                    monochrome1=code == "CR" or (code == "DX" and srng.random() < 0.25),
                    collimate=bool(srng.random() < 0.5), fluoro=code == "RF", colour=bool(srng.random() < 0.5),
                    doppler=bool(srng.random() < 0.5),
                    noise_hu=float(srng.uniform(4, 7) if region == "brain" else srng.uniform(9, 20)),
                    lesion=bool(srng.random() < 0.35),
                    vary=float(variation),  # archive-like field of view, pose, build, window, noise (pixels.Variation)
                )
                series = Series(
                    study=study, index=k, number=k if code != "MR" else 100 * k + 1, uid=_uid(seed, "series", p, s, k),
                    frame_uid=_uid(seed, "frame", p, s, k), look=look, naming=_NAMING[series_counter % len(_NAMING)],
                    preamble=series_counter % 9 != 4, anatomic_region=ars,
                    laterality=_laterality(variant, region, srng), cine_first=code == "US" and series_counter % 2 == 0,
                )
                series_counter += 1
                rows, cols = image_shape(code, region, image_size)
                for i in range(1, instances_per_series + 1):
                    frames = _RF_FRAMES if code == "RF" else _US_CINE_FRAMES if (series.cine_first and i == 1) else 1
                    sop = _uid(seed, "image", p, s, k, i)
                    name = {"ext": f"IM{i:04d}.dcm", "noext": f"IM{i:04d}", "uid": f"{sop}.dcm",
                            "ge": f"I{i:07d}"}[series.naming]
                    if i == 1 and series.preamble and region not in first_series_of_region and key != "NO_ANATOMY":
                        first_series_of_region.add(region)
                        name = LOCAL_NAMES[region]
                    item = Item(path=f"{series.folder}/{name}", kind="image", status="", series=series, instance=i,
                                n_instances=instances_per_series, sop_uid=sop, frames=frames, rows=rows, columns=cols)
                    images.append(item)
    _mark_truncated(images)
    _assign_syntaxes(images, rng)
    plan.items.extend(images)
    plan.items.extend(_non_image_items(plan))
    plan.items.extend(_other_files(plan))
    for item in plan.items:
        if not item.status:
            item.status = _expected_status(item)
    return plan


def _mark_truncated(images: list[Item]) -> None:
    """A few files cut in the middle of the header (from series with more than one instance)."""
    candidates = [it for it in images if it.n_instances > 1 and it.instance == it.n_instances and it.series.preamble]
    n = min(len(candidates), max(3, len(images) // 300))
    if n == 0:
        return
    for k, j in enumerate(np.linspace(0, len(candidates) - 1, n + 2)[1:-1].round().astype(int)):
        candidates[int(j)].kind = "truncated"
        candidates[int(j)].status = "error"
        candidates[int(j)].cut = "value" if k % 3 == 2 else "length"


def _pixel_kind(item: Item) -> tuple[bool, bool, int]:
    """(8-bit, colour, bits stored) of an image item."""
    s = item.series
    code = s.study.modality_code
    if code == "US":
        return True, s.look.colour, 8
    if code == "RF":
        return True, False, 8
    if code == "CT":
        return False, False, 12
    return False, False, s.look.bits


def _compatible(syntax: str, item: Item) -> bool:
    eight, colour, bits = _pixel_kind(item)
    if not item.series.preamble:
        return syntax == "implicit_le"
    frames = item.frames if item.frames > 1 else 0
    return _encodable(syntax, item.rows, item.columns, frames, eight, colour, bits)


@lru_cache(maxsize=None)
def _encodable(syntax: str, rows: int, columns: int, frames: int, eight: bool, colour: bool, bits: int) -> bool:
    """Whether `encode.set_pixels` accepts such an image in `syntax` (asked once per kind of image)."""
    if bits > MAX_BITS.get(syntax, 16):
        return False
    shape = ((frames,) if frames else ()) + (rows, columns) + ((3,) if colour else ())
    probe = Dataset()
    probe.SOPClassUID, probe.SOPInstanceUID = SOP["CT"], "1.2.3"
    try:
        set_pixels(probe, np.zeros(shape, np.uint8 if eight else np.uint16), syntax,
                   bits_stored=None if eight else bits)
    except ValueError:
        return False
    return True


def _assign_syntaxes(images: list[Item], rng: np.random.Generator) -> None:
    """Spread the transfer syntaxes over the images; every syntax is used at least once when possible."""
    names = list(TRANSFER_SYNTAXES)
    others = [n for n in names if n != "explicit_le"]
    for it in images:
        if not it.series.preamble:
            it.syntax = "implicit_le"
            continue
        if it.kind == "truncated":  # cut by `truncate`, which looks for little-endian sequence items
            it.syntax = "explicit_le"
            continue
        if rng.random() < _EXPLICIT_SHARE:
            it.syntax = "explicit_le"
            continue
        options = [n for n in others if _compatible(n, it)]
        it.syntax = str(options[int(rng.integers(len(options)))])
    readable = [it for it in images if it.kind == "image"]
    used = {it.syntax for it in readable}
    for name in names:
        if name in used:
            continue
        for it in readable:
            if it.syntax == "explicit_le" and _compatible(name, it):
                it.syntax = name
                used.add(name)
                break
    for it in images:
        eight, colour, bits = _pixel_kind(it)
        it.bits_stored = bits
        if colour:
            native = it.syntax in ("explicit_le", "implicit_le", "explicit_be", "deflate", "rle")
            it.photometric = "YBR_FULL_422" if it.syntax == "jpeg_baseline" else (
                "YBR_FULL" if native and it.instance % 3 == 2 else "RGB")
        else:
            it.photometric = "MONOCHROME1" if it.series.look.monochrome1 else "MONOCHROME2"


def _non_image_items(plan: ExportPlan) -> list[Item]:
    """SR reports (every sixth study), one presentation state, one RT structure set."""
    items: list[Item] = []
    for g, study in enumerate(plan.studies):
        if g % 6 == 5:
            items.append(Item(path=f"{study.folder}/SER099/SR0001.dcm", kind="sr", status="non_image", study=study,
                              sop_uid=_uid(plan.seed, "sr", study.uid), syntax="explicit_le"))
    xr = next((s for s in plan.studies if s.modality_code in ("DX", "CR")), None)
    ct = next((s for s in plan.studies if s.modality_code == "CT"), None)
    if xr is not None:
        items.append(Item(path=f"{xr.folder}/SER098/PR0001.dcm", kind="presentation_state", status="non_image",
                          study=xr, sop_uid=_uid(plan.seed, "pr", xr.uid), syntax="explicit_le"))
    if ct is not None:
        items.append(Item(path=f"{ct.folder}/SER097/RS0001", kind="rtstruct", status="non_image", study=ct,
                          sop_uid=_uid(plan.seed, "rt", ct.uid), syntax="implicit_le"))
    return items


def _other_files(plan: ExportPlan) -> list[Item]:
    second = plan.patients[1].index if len(plan.patients) > 1 else plan.patients[0].index
    return [
        Item(path="DICOMDIR", kind="dicomdir", status="non_image", syntax="explicit_le",
             sop_uid=_uid(plan.seed, "dicomdir")),
        Item(path="EXPORT_NOTES.txt", kind="text", status="not_dicom"),
        Item(path=f"PAT{plan.patients[0].index:04d}/preview.jpg", kind="jpeg", status="not_dicom"),
        Item(path=f"PAT{second:04d}/LOCKFILE", kind="junk", status="not_dicom"),
        Item(path=MANIFEST_NAME, kind="manifest", status="not_dicom"),
        Item(path=PHI_NAME, kind="phi", status="not_dicom"),
    ]


def _expected_status(item: Item) -> str:
    v = item.series.study.variant
    modality = item.series.study.modality
    return "ok" if v.axis is not None and modality in PROFILE_MODALITIES else "unmapped"


def manifest_rows(plan: ExportPlan) -> list[dict[str, object]]:
    """One manifest row per planned file (see MANIFEST_COLUMNS)."""
    rows = []
    for it in plan.items:
        row: dict[str, object] = {c: "" for c in MANIFEST_COLUMNS}
        dicom = it.kind not in ("text", "jpeg", "junk", "manifest", "phi")
        row.update(path=it.path, status=it.status, status_full=it.status, kind=it.kind, syntax=it.syntax,
                   n_frames=0, rows=0, columns=0, bits_stored=0, patient=0, study=0, series=0, instance=0,
                   preamble=int(dicom and (it.series is None or it.series.preamble)))
        study = it.series.study if it.series is not None else it.study
        if study is not None:
            v = study.variant
            row.update(patient=study.patient.index, study=study.index, region=study.region,
                       manufacturer=study.vendor.manufacturer, study_description=v.study_description)
        if it.series is not None:
            s, v = it.series, study.variant
            row.update(modality_code=study.modality_code, variant=study.variant_key, body_part=v.body_part,
                       series_description=v.series_description, protocol_name=v.protocol_name,
                       laterality=s.laterality, series=s.index, instance=it.instance,
                       sop_class=_image_sop(it), photometric=it.photometric, bits_stored=it.bits_stored,
                       n_frames=it.frames, rows=it.rows, columns=it.columns)
            if it.kind == "image":
                row.update(modality=study.modality,
                           modality_axis=study.modality if study.modality in PROFILE_MODALITIES else "",
                           anatomy=v.anatomy, anatomy_source=ARS if s.anatomic_region else v.source,
                           anatomy_axis=v.axis or "", status_full="ok" if v.anatomy else "unmapped")
        elif it.kind in ("sr", "presentation_state", "rtstruct", "dicomdir"):
            row.update(sop_class=SOP[{"sr": "SR", "presentation_state": "PR", "rtstruct": "RTSTRUCT",
                                      "dicomdir": "DICOMDIR"}[it.kind]],
                       modality_code={"sr": "SR", "presentation_state": "PR", "rtstruct": "RTSTRUCT"}.get(it.kind, ""))
        rows.append(row)
    return rows


def _image_sop(item: Item) -> str:
    code = item.series.study.modality_code
    if code == "US":
        return SOP["US_MF"] if item.frames > 1 else SOP["US"]
    return SOP[code]


# ---- headers --------------------------------------------------------------------------------------


def _age(birth: str, on: str) -> str:
    b, d = dt.datetime.strptime(birth, "%Y%m%d").date(), dt.datetime.strptime(on, "%Y%m%d").date()
    years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return f"{years:03d}Y"


def _patient_study_module(ds: Dataset, study: Study) -> None:
    p = study.patient
    ds.SpecificCharacterSet = p.charset
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.time
    ds.AccessionNumber = study.accession
    ds.InstitutionName = study.institution
    ds.InstitutionAddress = study.institution_address
    ds.ReferringPhysicianName = study.referrer
    ds.StudyDescription = study.variant.study_description
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    ds.IssuerOfPatientID = "ZZSYNTH-HIS"
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    other = Dataset()
    other.PatientID = p.other_id
    other.IssuerOfPatientID = "ZZSYNTH-OLD-HIS"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.OtherPatientNames = p.other_name
    ds.PatientAge = _age(p.birth_date, study.date)
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    ds.StudyInstanceUID = study.uid
    ds.StudyID = str(study.index)


def _private_block(ds: Dataset, vendor: Vendor, rng: np.random.Generator, size: int) -> None:
    block = ds.private_block(vendor.private_group, vendor.private_creator, create=True)
    block.add_new(0x08, "CS", "IMAGE NUM 4")
    block.add_new(0x09, "LO", f"{vendor.model} {vendor.software}"[:64])
    blob = b"SV10\x04\x03\x02\x01" + rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    block.add_new(0x10, "OB", blob + (b"\x00" if len(blob) % 2 else b""))


def _image_dataset(item: Item, seed: int) -> Dataset:
    s = item.series
    study = s.study
    v = study.variant
    code = study.modality_code
    rng = np.random.default_rng([seed, 3, study.patient.index, study.index, s.index, item.instance])
    ds = Dataset()
    _patient_study_module(ds, study)
    ds.ImageType = ["ORIGINAL", "PRIMARY", {"CT": "AXIAL", "MR": "M", "US": "ABDOMINAL"}.get(code, "")]
    ds.InstanceCreationDate = study.date
    ds.InstanceCreationTime = study.time
    ds.SOPClassUID = _image_sop(item)
    ds.SOPInstanceUID = item.sop_uid
    ds.AcquisitionDate = study.date
    ds.AcquisitionTime = study.time
    ds.Modality = code
    ds.Manufacturer = study.vendor.manufacturer
    ds.StationName = f"{code}{study.patient.index % 3 + 1:02d}"
    if v.series_description:
        ds.SeriesDescription = v.series_description
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = study.operator
    ds.OperatorsName = study.operator
    ds.ManufacturerModelName = study.vendor.model
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = _uid(seed, "localizer", s.uid) if item.instance == 1 else _uid(
        seed, "image", study.patient.index, study.index, s.index, item.instance - 1)
    ds.ReferencedImageSequence = Sequence([ref])
    if s.anatomic_region:
        code_item = Dataset()
        code_item.CodeValue, code_item.CodeMeaning = s.anatomic_region
        code_item.CodingSchemeDesignator = "SCT"
        ds.AnatomicRegionSequence = Sequence([code_item])
    # Body Part Examined: filled, present but empty, or absent (both occur in archives)
    if v.body_part or s.index % 2 == 0:
        ds.BodyPartExamined = v.body_part
    if v.protocol_name:
        ds.ProtocolName = v.protocol_name
    ds.DeviceSerialNumber = f"SN{zlib.crc32(study.vendor.model.encode()) % 1000000:06d}"
    ds.SoftwareVersions = study.vendor.software
    ds.SeriesInstanceUID = s.uid
    ds.SeriesNumber = s.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = item.instance
    if s.laterality:
        ds.Laterality = s.laterality
    n = item.n_instances
    z = (item.instance - (n + 1) / 2.0) * 5.0
    spacing = round(float({"CT": 400, "MR": 240}.get(code, 350)) / item.columns, 6)
    if code in ("CT", "MR"):
        ds.PatientPosition = "HFS" if study.region in ("brain", "lung", "abdomen", "spine", "thyroid") else "FFS"
        ds.ImagePositionPatient = [-spacing * item.columns / 2, -spacing * item.rows / 2, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = s.frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = z
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = 5.0 if code == "CT" else 4.0
    if code == "CT":
        ds.KVP = int(rng.choice([100, 120, 140]))
        ds.DataCollectionDiameter = 500.0
        ds.ReconstructionDiameter = round(spacing * item.columns, 2)
        ds.GantryDetectorTilt = 0.0
        ds.TableHeight = 150.0
        ds.RotationDirection = "CW"
        ds.ExposureTime = int(rng.integers(500, 1000))
        ds.XRayTubeCurrent = int(rng.integers(80, 400))
        ds.Exposure = int(rng.integers(50, 300))
        ds.FilterType = "BODY FILTER"
        ds.GeneratorPower = 48
        ds.FocalSpots = 1.2
        ds.ConvolutionKernel = "B30f" if study.region != "lung" else "B70f"
        ds.CTDIvol = round(float(rng.uniform(3, 60)), 2)
        ds.RescaleType = "HU"
    elif code == "MR":
        w = s.look.weighting
        ds.ScanningSequence = ["SE", "IR"] if w in ("FLAIR", "STIR") else ["SE"]
        ds.SequenceVariant = ["SK", "SP"]
        ds.ScanOptions = ["FS"] if w.endswith("FS") else ["PFP"]
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = {"T1": "*tse2d1_3", "T2": "*tse2d1_15", "PD": "*tse2d1_9"}.get(w, "*tir2d1_16")
        ds.RepetitionTime = {"T1": 600.0, "FLAIR": 9000.0, "STIR": 4500.0, "DWI": 5000.0}.get(w, 3500.0)
        ds.EchoTime = {"T1": 12.0, "PD": 30.0, "PDFS": 30.0, "DWI": 80.0}.get(w, 95.0)
        if w in ("FLAIR", "STIR"):
            ds.InversionTime = 2500.0 if w == "FLAIR" else 160.0
        ds.NumberOfAverages = 1.0
        ds.ImagingFrequency = 123.2
        ds.ImagedNucleus = "1H"
        ds.MagneticFieldStrength = 3.0 if study.vendor.model in ("Skyra", "SIGNA Premier") else 1.5
        ds.SpacingBetweenSlices = 4.4
        ds.EchoTrainLength = 15
        ds.FlipAngle = 150.0
        ds.ReceiveCoilName = {"brain": "HeadNeck_20", "knee": "Knee_18", "shoulder": "Shoulder_16"}.get(
            study.region, "Body_18")
        ds.TransmitCoilName = "Body"
        ds.AcquisitionMatrix = [0, item.columns, item.rows, 0]
        ds.InPlanePhaseEncodingDirection = "ROW"
        ds.SAR = round(float(rng.uniform(0.5, 3)), 3)
    elif code == "US":
        region = Dataset()
        region.RegionSpatialFormat = 1
        region.RegionDataType = 1
        region.RegionFlags = 2
        region.RegionLocationMinX0 = 0
        region.RegionLocationMinY0 = 0
        region.RegionLocationMaxX1 = item.columns - 1
        region.RegionLocationMaxY1 = item.rows - 1
        region.PhysicalUnitsXDirection = 3
        region.PhysicalUnitsYDirection = 3
        region.PhysicalDeltaX = 0.03
        region.PhysicalDeltaY = 0.03
        ds.SequenceOfUltrasoundRegions = Sequence([region])
        ds.TransducerData = ["C1-6" if study.region != "thyroid" else "ML6-15", "", ""]
        ds.ProcessingFunction = "ABDOMEN" if study.region != "thyroid" else "SMALL PARTS"
        if item.frames > 1:
            ds.FrameTime = 33.3
            ds.CineRate = 30
            ds.RecommendedDisplayFrameRate = 30
            ds.FrameIncrementPointer = 0x00181063
    else:  # CR / DX / RF
        ds.KVP = int(rng.choice([60, 70, 81, 110, 125]))
        ds.ExposureTime = int(rng.integers(5, 60))
        ds.XRayTubeCurrent = int(rng.integers(100, 500))
        ds.Exposure = int(rng.integers(2, 30))
        ds.DistanceSourceToDetector = 1800.0 if study.region == "lung" else 1150.0
        ds.ImagerPixelSpacing = [0.139, 0.139]
        ds.PixelSpacing = [0.139, 0.139]
        ds.ViewPosition = ("PA" if item.instance == 1 else "LL") if study.region == "lung" else (
            "AP" if item.instance % 2 else "LAT")
        ds.PatientOrientation = ["L", "F"] if ds.ViewPosition in ("PA", "AP") else ["A", "F"]
        ds.BodyPartThickness = int(rng.integers(40, 250))
        if code == "DX":
            ds.PresentationIntentType = "FOR PRESENTATION"
            ds.DetectorType = "SCINTILLATOR"
            ds.ImageLaterality = s.laterality or "U"
        if code == "RF":
            ds.FrameTime = 66.7
            ds.FrameIncrementPointer = 0x00181063
            ds.FieldOfViewShape = "ROUND"
            ds.DistanceSourceToPatient = 900.0
        if code == "CR":
            ds.PlateType = "ST-VI"
    _private_block(ds, study.vendor, rng, {"MR": 4096, "CT": 2048}.get(code, 1024) + int(rng.integers(0, 512)))
    return ds


def _encode_image(item: Item, seed: int) -> bytes:
    """The file bytes of one image item (rendered, encoded; truncated when the plan says so)."""
    s = item.series
    study = s.study
    n = item.n_instances
    z = 0.0 if n == 1 else -0.8 + 1.6 * (item.instance - 1) / (n - 1)
    if study.modality in ("US", "XR"):
        z *= 0.3
    img = synth_pixels(study.region, study.modality, item.rows, item.columns,
                       series_seed=int(np.random.SeedSequence([seed, 4, study.patient.index, study.index, s.index])
                                       .generate_state(1)[0]),
                       seed=int(np.random.SeedSequence([seed, 5, study.patient.index, study.index, s.index,
                                                        item.instance]).generate_state(1)[0]),
                       z=z, frames=item.frames, look=s.look)
    ds = _image_dataset(item, seed)
    _pixel_module(ds, img, item)
    data = _to_bytes(ds, s.preamble)
    if item.kind == "truncated":
        data = truncate(data, inside_value=item.cut == "value")
    return data


def _pixel_module(ds: Dataset, img: PixelImage, item: Item) -> None:
    photometric = item.photometric
    if photometric == "YBR_FULL_422" and item.syntax != "jpeg_baseline":
        photometric = "RGB"
    set_pixels(ds, img.pixels, item.syntax, photometric=photometric if photometric != "YBR_FULL_422" else None,
               bits_stored=img.bits_stored if img.pixels.dtype != np.uint8 else None)
    if img.rescale is not None:
        ds.RescaleIntercept = img.rescale[1]
        ds.RescaleSlope = img.rescale[0]
        if img.rescale_type and "RescaleType" not in ds:
            ds.RescaleType = img.rescale_type
    if img.windows and item.series.study.modality_code != "US":
        ds.WindowCenter = [round(c, 1) for c, _ in img.windows] if len(img.windows) > 1 else round(img.windows[0][0], 1)
        ds.WindowWidth = [round(w, 1) for _, w in img.windows] if len(img.windows) > 1 else round(img.windows[0][1], 1)
        ds.VOILUTFunction = "LINEAR"
    if item.syntax not in LOSSY:
        ds.LossyImageCompression = "00"


def _to_bytes(ds: Dataset, preamble: bool) -> bytes:
    buffer = io.BytesIO()
    if preamble:
        meta = ds.file_meta
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
        meta.ImplementationVersionName = "MODAN_SYNTH_1"
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    else:  # a raw dataset: no preamble, no "DICM", no file meta; implicit VR little endian
        if hasattr(ds, "file_meta"):
            del ds.file_meta
        pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def truncate(data: bytes, *, inside_value: bool = False) -> bytes:
    """Cut a little-endian DICOM file in the middle of its header (deterministic).

    Default: inside the 4-byte length of the sequence nearest the middle of the header, which
    `pydicom.dcmread` reports as an error. `inside_value`: in the middle of the longest value
    before the pixel data (the private block), which pydicom reads silently as a short dataset
    without Pixel Data; a header walker sees a value running past the end of the file.
    Either way the file ends before Pixel Data, so a full read (pixels included) fails.
    """
    end = data.find(b"\xe0\x7f\x10\x00")  # Pixel Data tag
    end = end if end > 0 else len(data)
    if inside_value:
        ob = data.rfind(b"OB\x00\x00", 0, end)
        if ob > 0:
            length = int.from_bytes(data[ob + 4: ob + 8], "little")
            return data[: ob + 8 + length // 2]
    mid = (end + (132 if data[128:132] == b"DICM" else 0)) // 2
    items, pos = [], data.find(_ITEM_TAG, 0, end)
    while pos >= 0:
        items.append(pos)
        pos = data.find(_ITEM_TAG, pos + 1, end)
    for pos in sorted(items, key=lambda p: (abs(p - mid), p)):
        for offset in (-2, -3, -1, -4):
            if _unreadable(data[: pos + offset]):
                return data[: pos + offset]
    raise ValueError("no sequence to cut inside")


_ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000) little endian


def _unreadable(data: bytes) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmread(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - any failure is what we look for
        return True
    return False


# ---- non-image objects --------------------------------------------------------------------------


def _series_header(ds: Dataset, study: Study, modality: str, sop_class: str, sop_uid: str, series_uid: str,
                   number: int, description: str) -> None:
    _patient_study_module(ds, study)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.Manufacturer = "ZZSYNTH Reporting"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.InstanceNumber = 1
    ds.SeriesDescription = description


def _sr_bytes(item: Item, seed: int) -> bytes:
    study = item.study
    ds = Dataset()
    _series_header(ds, study, "SR", SOP["SR"], item.sop_uid, _uid(seed, "sr-series", study.uid), 99, "Radiology Report")
    ds.ValueType = "CONTAINER"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "18748-4", "LN", "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = Sequence([title])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    content = []
    for code, meaning, text in (
        ("121060", "History", f"Report for {study.patient.name}: follow-up."),
        ("121071", "Finding", "No acute abnormality. Synthetic report text."),
        ("121076", "Conclusion", "Normal study."),
    ):
        node = Dataset()
        node.RelationshipType = "CONTAINS"
        node.ValueType = "TEXT"
        name = Dataset()
        name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = code, "DCM", meaning
        node.ConceptNameCodeSequence = Sequence([name])
        node.TextValue = text
        content.append(node)
    ds.ContentSequence = Sequence(content)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return _to_bytes(ds, True)


def _pr_bytes(item: Item, seed: int, plan: ExportPlan) -> bytes:
    study = item.study
    ds = Dataset()
    _series_header(ds, study, "PR", SOP["PR"], item.sop_uid, _uid(seed, "pr-series", study.uid), 98, "Annotations")
    ds.ContentLabel = "ANNOTATION"
    ds.ContentDescription = "Key image annotation"
    ds.PresentationCreationDate = study.date
    ds.PresentationCreationTime = study.time
    ds.ContentCreatorName = study.operator
    target = next(it for it in plan.items if it.series is not None and it.series.study is study and it.kind == "image")
    ref_image = Dataset()
    ref_image.ReferencedSOPClassUID = _image_sop(target)
    ref_image.ReferencedSOPInstanceUID = target.sop_uid
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = target.series.uid
    ref_series.ReferencedImageSequence = Sequence([ref_image])
    ds.ReferencedSeriesSequence = Sequence([ref_series])
    area = Dataset()
    area.ReferencedImageSequence = Sequence([ref_image])
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [target.columns, target.rows]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelSpacing = [0.139, 0.139]
    ds.DisplayedAreaSelectionSequence = Sequence([area])
    ds.PresentationLUTShape = "IDENTITY"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return _to_bytes(ds, True)


def _rt_bytes(item: Item, seed: int, plan: ExportPlan) -> bytes:
    study = item.study
    target = next(it for it in plan.items if it.series is not None and it.series.study is study and it.kind == "image")
    ds = Dataset()
    _series_header(ds, study, "RTSTRUCT", SOP["RTSTRUCT"], item.sop_uid, _uid(seed, "rt-series", study.uid), 97,
                   "RT Structures")
    ds.StructureSetLabel = "GTV"
    ds.StructureSetDate = study.date
    ds.StructureSetTime = study.time
    frame = Dataset()
    frame.FrameOfReferenceUID = target.series.frame_uid
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = target.series.frame_uid
    roi.ROIName = "GTV"
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = Sequence([roi])
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    points = np.stack([20 * np.cos(angles), 20 * np.sin(angles), np.zeros_like(angles)], 1).round(2).ravel()
    contour.NumberOfContourPoints = len(angles)
    contour.ContourData = [float(x) for x in points]
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ROIDisplayColor = [255, 0, 0]
    roi_contour.ContourSequence = Sequence([contour])
    ds.ROIContourSequence = Sequence([roi_contour])
    obs = Dataset()
    obs.ObservationNumber = 1
    obs.ReferencedROINumber = 1
    obs.RTROIInterpretedType = "GTV"
    obs.ROIInterpreter = ""
    ds.RTROIObservationsSequence = Sequence([obs])
    ds.ApprovalStatus = "UNAPPROVED"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return _to_bytes(ds, True)


_FILE_ID = re.compile(r"[A-Z0-9_]{1,8}")


def _dicomdir_bytes(item: Item, plan: ExportPlan) -> bytes:
    """A DICOMDIR-like directory of the first patient's images (record offsets left at 0)."""
    ds = Dataset()
    ds.SpecificCharacterSet = plan.patients[0].charset
    ds.FileSetID = "ZZSYNTH"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    records = []
    first = plan.patients[0]
    pat = Dataset()
    pat.DirectoryRecordType = "PATIENT"
    pat.PatientName, pat.PatientID = first.name, first.patient_id
    records.append(pat)
    for it in plan.items:
        if it.kind != "image" or it.series.study.patient is not first or not it.series.preamble:
            continue
        if not all(_FILE_ID.fullmatch(part) for part in it.path.split("/")):
            continue  # a File ID is up to 8 upper-case ISO 9660 characters per folder level
        rec = Dataset()
        rec.DirectoryRecordType = "IMAGE"
        rec.ReferencedFileID = it.path.split("/")
        rec.ReferencedSOPClassUIDInFile = _image_sop(it)
        rec.ReferencedSOPInstanceUIDInFile = it.sop_uid
        rec.ReferencedTransferSyntaxUIDInFile = TRANSFER_SYNTAXES[it.syntax]
        rec.InstanceNumber = it.instance
        records.append(rec)
    for rec in records:
        rec.OffsetOfTheNextDirectoryRecord = 0
        rec.RecordInUseFlag = 0xFFFF
        rec.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    ds.DirectoryRecordSequence = Sequence(records)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SOP["DICOMDIR"]
    ds.file_meta.MediaStorageSOPInstanceUID = item.sop_uid
    ds.file_meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds.file_meta.ImplementationVersionName = "MODAN_SYNTH_1"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _notes_bytes(plan: ExportPlan) -> bytes:
    settings = " ".join(f"{k}={v}" for k, v in plan.config.items())
    return (
        "Synthetic PACS export written by modan-dicom synth (layout dicom).\n"
        f"{settings}\n"
        "All names, identifiers, dates and addresses in these files are fake.\n"
    ).encode("utf-8")


def _jpeg_bytes(plan: ExportPlan) -> bytes:
    from PIL import Image

    from .pixels import display_uint8

    img = synth_pixels("knee", "XR", 64, 48, series_seed=plan.seed, seed=plan.seed)
    buffer = io.BytesIO()
    Image.fromarray(display_uint8(img)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _junk_bytes(plan: ExportPlan) -> bytes:
    rng = np.random.default_rng([plan.seed, 9])
    return b"LOCK\x00\xff" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()


# ---- the output folder ------------------------------------------------------------------------------


def _is_previous_export(out: Path) -> bool:
    try:
        with open(out / MANIFEST_NAME, encoding="utf-8") as handle:
            first = handle.readline().strip()
    except OSError:
        return False
    return first.startswith("path,status,") and "anatomy_axis" in first


def prepare_output(out: str | os.PathLike[str]) -> Path:
    """Make `out` ready for an export: a missing or empty folder, or a previous synth export (its
    files are removed). Anything else raises `OutputError`, so nothing a user owns is overwritten."""
    root = Path(out)
    if not claim_folder(root, _is_previous_export, "modan-dicom synth export"):
        return root
    with open(root / MANIFEST_NAME, encoding="utf-8", newline="") as handle:
        listed = [row["path"] for row in csv.DictReader(handle) if row.get("path")]
    inside = root.resolve()
    for rel in listed:
        target = root / rel
        if (target.is_file() or target.is_symlink()) and target.parent.resolve().is_relative_to(inside):
            target.unlink()
    for leftover in root.glob(".*.tmp"):  # temporary files of an interrupted atomic write
        if leftover.name.startswith((f".{MANIFEST_NAME}.", f".{PHI_NAME}.")):
            leftover.unlink()
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
    remaining = [p for p in root.rglob("*") if not p.is_dir()]
    if remaining:
        raise OutputError(f"{root} holds files the previous synth export did not write "
                          f"(e.g. {remaining[0].relative_to(root)}); refusing to overwrite it")
    return root


def write_manifest(root: Path, rows: Iterable[dict[str, object]]) -> pd.DataFrame:
    """Write `rows` as manifest.csv atomically (sorted by path) and return them as a DataFrame."""
    frame = pd.DataFrame(list(rows), columns=list(MANIFEST_COLUMNS))
    frame = frame.sort_values("path", kind="stable").reset_index(drop=True)
    with atomic_open(root / MANIFEST_NAME, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    return frame


def write_phi(root: Path, values: list[str]) -> None:
    with atomic_open(root / PHI_NAME, "w", encoding="utf-8") as handle:
        json.dump(values, handle, ensure_ascii=False, indent=1)
        handle.write("\n")


def write_export(plan: ExportPlan, out: str | os.PathLike[str], progress: Progress | None = None,
                 workers: int = 1) -> pd.DataFrame:
    """Write every planned file under `out` (prepared by `prepare_output`) and the manifest.

    workers > 1 renders and writes in that many processes; the files are the same bytes.
    """
    root = Path(out)
    rows = manifest_rows(plan)
    write_manifest(root, rows)  # claims the folder before the long part
    todo = [i for i, item in enumerate(plan.items) if item.kind not in ("manifest", "phi")]
    total, done = len(plan.items), 0
    if workers <= 1:
        for i in todo:
            _write_item(plan, root, i)
            done += 1
            if progress is not None:
                progress(done, total)
    else:
        chunks = [todo[k:k + 32] for k in range(0, len(todo), 32)]
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(plan, root)) as pool:
            for n in pool.map(_write_chunk, chunks):
                done += n
                if progress is not None:
                    progress(done, total)
    write_phi(root, plan.phi_values())
    frame = write_manifest(root, rows)
    if progress is not None:
        progress(total, total)
    return frame


def _write_item(plan: ExportPlan, root: Path, index: int) -> None:
    item = plan.items[index]
    target = root / item.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_item_bytes(item, plan))


_WORKER: dict[str, object] = {}


def _init_worker(plan: ExportPlan, root: Path) -> None:
    _WORKER.update(plan=plan, root=root)


def _write_chunk(indices: list[int]) -> int:
    for i in indices:
        _write_item(_WORKER["plan"], _WORKER["root"], i)  # type: ignore[arg-type]
    return len(indices)


def _item_bytes(item: Item, plan: ExportPlan) -> bytes:
    if item.kind in ("image", "truncated"):
        return _encode_image(item, plan.seed)
    if item.kind == "sr":
        return _sr_bytes(item, plan.seed)
    if item.kind == "presentation_state":
        return _pr_bytes(item, plan.seed, plan)
    if item.kind == "rtstruct":
        return _rt_bytes(item, plan.seed, plan)
    if item.kind == "dicomdir":
        return _dicomdir_bytes(item, plan)
    if item.kind == "text":
        return _notes_bytes(plan)
    if item.kind == "jpeg":
        return _jpeg_bytes(plan)
    if item.kind == "junk":
        return _junk_bytes(plan)
    raise ValueError(f"unknown item kind {item.kind!r}")
