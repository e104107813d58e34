"""The vocabulary's value types: terms, profiles and axes, and the records lookups and checks return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

MULTI_REGION = ("project", "leave_out")  # what a profile does with a term whose parts cover several axes


@dataclass(frozen=True)
class ModalityTerm:
    """A modality group: the DICOM Modality codes it groups and the other spellings it accepts."""

    id: str
    name: str
    dicom: tuple[str, ...]
    radimagenet: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    sop_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnatomyTerm:
    """An anatomy term of the hierarchy (see ``vocab/anatomy.yaml`` for the meaning of each field).

    `parts`: the regions a multi-region term is made of (``chest_abdomen_pelvis`` -> chest, abdomen_pelvis); a
    profile projects it onto every axis its parts project onto. `non_anatomic`: phantoms, test objects, dose
    reports ...: a text naming one marks the series, whatever its tag says.
    """

    id: str
    name: str
    parent: str | None
    snomed: str | None = None
    snomed_other: tuple[str, ...] = ()
    srt: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    whole_word: tuple[str, ...] = ()
    radimagenet: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()
    non_anatomic: bool = False


@dataclass(frozen=True)
class Axis:
    """One axis of a profile's multi-hot vector; terms in the subtrees of `covers` project onto it."""

    id: str
    kind: str  # "modality" | "anatomy"
    covers: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    """A profile: its axes, what it does with multi-region terms, and (modality, subtrees) it has no place for."""

    name: str
    axes: tuple[Axis, ...]
    multi_region: str = "project"  # one of MULTI_REGION
    exclude: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (modality id, anatomy ids whose subtrees are left out)


class TextMatch(NamedTuple):
    """The synonym that decided a free-text match; offsets index the normalised text (`spaced` plus splits)."""

    term: str
    synonym: str
    start: int
    end: int


@dataclass(frozen=True)
class AxisInfo:
    """A profile axis for people: its terms and every full-vocabulary term that projects onto it."""

    axis: str
    kind: str
    name: str
    covers: tuple[str, ...]
    members: tuple[str, ...]


@dataclass(frozen=True)
class VocabSummary:
    """Counts of a validated vocabulary (what ``modan-dicom vocab check`` prints)."""

    source: str
    modalities: int
    dicom_codes: int
    non_image_codes: int
    anatomy_terms: int
    body_part_terms: int
    synonyms: int
    profiles: dict[str, int]

    def line(self) -> str:
        profiles = ", ".join(f"{n} ({k} axes)" for n, k in self.profiles.items())
        return (f"{self.source}: {self.modalities} modality groups ({self.dicom_codes} DICOM codes, "
                f"{self.non_image_codes} non-image codes), {self.anatomy_terms} anatomy terms "
                f"({self.body_part_terms} body-part terms, {self.synonyms} synonyms), profiles: {profiles}")


@dataclass(frozen=True)
class TextMapping:
    """How one raw value resolves (what ``modan-dicom vocab map`` prints)."""

    text: str
    anatomy: str | None
    how: str | None  # "body part" (exact) | "free text" | None
    matched: str | None  # the body-part term / synonym that decided
    anatomy_axis: str | None
    ancestors: tuple[str, ...]
    modality: str | None
    modality_axis: str | None
    profile: str
    labels: tuple[str, ...]
    multi_hot: np.ndarray
