"""What the synthetic export writes in its headers, and the labels the vocabulary must resolve from it.

This table is the contract between `modan_dicom.synth` (which writes these values into DICOM headers)
and `modan_dicom.vocab` / `modan_dicom.ingest.labels` (which must read them back): `anatomy` is the
most specific full-vocabulary term, `source` the field that decides it, and `axis` the `radimagenet`
profile axis it projects to (None: no place in that profile, the row is `unmapped`).

Header variants follow what real archives hold: Body Part Examined filled, blank with only a
description, or junk; abbreviations; phrases that mention another part ("history of").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeaderVariant:
    """One way a series of a region is described in its DICOM header."""

    body_part: str  # Body Part Examined (0018,0015); "" = blank
    series_description: str
    protocol_name: str
    study_description: str
    anatomy: str  # expected most-specific full-vocabulary anatomy id
    source: str  # the DICOM keyword that decides `anatomy`
    axis: str | None  # expected `radimagenet` profile anatomy axis


@dataclass(frozen=True)
class Region:
    """A RadImageNet region (or an extra one) with the modalities that image it."""

    name: str
    modalities: tuple[str, ...]  # DICOM Modality codes used for this region
    variants: tuple[HeaderVariant, ...]


def _v(bp: str, sd: str, pn: str, std: str, anatomy: str, source: str, axis: str | None) -> HeaderVariant:
    return HeaderVariant(bp, sd, pn, std, anatomy, source, axis)


BPE, SD, PN, STD = "BodyPartExamined", "SeriesDescription", "ProtocolName", "StudyDescription"

REGIONS: dict[str, Region] = {
    "abdomen": Region("abdomen", ("CT", "MR", "US"), (
        _v("ABDOMEN", "AX PORTAL VENOUS 5mm", "ABD ROUTINE", "CT ABDOMEN WITH CONTRAST", "abdomen", BPE, "abdomen"),
        _v("", "ABD/PELVIS 3.0 B30f", "", "CT ABD PELVIS W CON", "abdomen_pelvis", SD, "abdomen"),
        _v("", "", "LIVER 3 PHASE", "", "liver", PN, "abdomen"),
        _v("ABDOMENPELVIS", "Recon 2", "", "", "abdomen_pelvis", BPE, "abdomen"),
        _v("", "", "", "US ABDOMEN COMPLETE", "abdomen", STD, "abdomen"),
        _v("KIDNEY", "RT KIDNEY LONG", "", "", "kidney", BPE, "abdomen"),
    )),
    "lung": Region("lung", ("CT", "XR"), (
        _v("CHEST", "Lung 1.0 B70f", "CHEST ROUTINE", "CT CHEST WO CONTRAST", "chest", BPE, "lung"),
        _v("", "AX LUNG 1.25", "", "", "lung", SD, "lung"),
        _v("", "", "THORAX HRCT", "", "chest", PN, "lung"),
        _v("LUNG", "", "", "", "lung", BPE, "lung"),
        _v("", "PA", "", "XR CHEST 2 VIEWS", "chest", STD, "lung"),
    )),
    "ankle_foot": Region("ankle_foot", ("MR", "XR", "CT"), (
        _v("ANKLE", "SAG PD FS", "ANKLE ROUTINE", "MRI ANKLE RIGHT", "ankle", BPE, "ankle_foot"),
        _v("FOOT", "COR T1", "", "", "foot", BPE, "ankle_foot"),
        _v("", "AX T2 FS L FOOT", "", "", "foot", SD, "ankle_foot"),
        _v("", "", "", "MR ANKLE W/O CONTRAST", "ankle", STD, "ankle_foot"),
        _v("LEG", "", "", "XR ANKLE 3 VIEWS", "lower_leg", BPE, None),
    )),
    "brain": Region("brain", ("MR", "CT"), (
        _v("BRAIN", "AX T2 FLAIR", "BRAIN ROUTINE", "MRI BRAIN W/WO CONTRAST", "brain", BPE, "brain"),
        _v("", "AX DWI BRAIN", "", "", "brain", SD, "brain"),
        _v("", "", "NEURO^BRAIN", "", "brain", PN, "brain"),
        _v("HEAD", "Head 5.0 H30s", "", "CT HEAD WO CONTRAST", "head", BPE, "brain"),
        _v("XXXXX", "", "", "MR BRAIN STROKE PROTOCOL", "brain", STD, "brain"),
    )),
    "hip": Region("hip", ("MR", "XR", "CT"), (
        _v("HIP", "COR STIR", "HIP ROUTINE", "MRI HIP LEFT", "hip", BPE, "hip"),
        _v("", "AX T1 R HIP", "", "", "hip", SD, "hip"),
        _v("", "", "", "XR HIP 2 VIEWS LT", "hip", STD, "hip"),
    )),
    "knee": Region("knee", ("MR", "XR", "CT"), (
        _v("KNEE", "SAG PD FS", "KNEE ROUTINE", "MRI KNEE LEFT", "knee", BPE, "knee"),
        _v("", "COR T1 L KNEE", "", "", "knee", SD, "knee"),
        _v("", "", "", "MR KNEE W/O CONTRAST, history of hip replacement", "knee", STD, "knee"),
        _v("", "AX PD knee", "", "", "knee", SD, "knee"),
        _v("KNEE", "", "", "", "knee", BPE, "knee"),
    )),
    "shoulder": Region("shoulder", ("MR", "XR"), (
        _v("SHOULDER", "COR PD FS", "SHOULDER ROUTINE", "MRI SHOULDER RIGHT", "shoulder", BPE, "shoulder"),
        _v("", "AX GRE SHOULDER", "", "", "shoulder", SD, "shoulder"),
        _v("ARM", "", "", "XR SHOULDER 2 VIEWS", "upper_arm", BPE, None),
    )),
    "spine": Region("spine", ("MR", "CT", "XR"), (
        _v("LSPINE", "SAG T2", "L-SPINE ROUTINE", "MRI LUMBAR SPINE WO", "lumbar_spine", BPE, "spine"),
        _v("CSPINE", "SAG T1", "", "", "cervical_spine", BPE, "spine"),
        _v("", "SAG STIR C-SPINE", "", "", "cervical_spine", SD, "spine"),
        _v("", "", "L SPINE", "", "lumbar_spine", PN, "spine"),
        _v("SPINE", "", "", "", "spine", BPE, "spine"),
        _v("TSPINE", "AX T2", "", "", "thoracic_spine", BPE, "spine"),
    )),
    "thyroid": Region("thyroid", ("US",), (
        _v("THYROID", "THYROID RT LOBE TRV", "", "US THYROID", "thyroid", BPE, "thyroid"),
        _v("", "", "", "US THYROID AND NECK", "thyroid", STD, "thyroid"),
        _v("NECK", "LT THYROID NODULE", "", "", "neck", BPE, None),
        _v("", "THYROID LONG", "", "", "thyroid", SD, "thyroid"),
    )),
}

# Series whose headers give no anatomy at all: index status `unmapped`, anatomy None.
NO_ANATOMY = HeaderVariant("", "Series 3", "", "", "", "", None)
