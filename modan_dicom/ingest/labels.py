"""Raw header values -> controlled labels: shared by the file index and the PACS census.

`resolve_labels` takes plain values keyed by DICOM keyword (what a header read, a QIDO-RS answer or a C-FIND
response all give), never a pydicom dataset, and is cheap enough to call once per file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..vocab import Vocabulary

# Free-text fields in the order they are trusted (most specific first).
TEXT_FIELDS = ("SeriesDescription", "ProtocolName", "StudyDescription")


@dataclass(frozen=True, eq=False)
class Labels:
    """Controlled labels of one object.

    modality / anatomy: full-vocabulary ids (anatomy is the most specific term known, e.g. ``head`` or
    ``cervical_spine``, whatever the profile); *_source: the DICOM keyword that decided it (``Modality``,
    ``SOPClassUID``, ``AnatomicRegion``, ``BodyPartExamined``, ``SeriesDescription``, ``ProtocolName``,
    ``StudyDescription``); multi_hot: float32 ``(len(vocab.labels),)`` when `mapped`, else None; mapped: both
    modality and anatomy have a place in the profile and the object holds an image; non_image: SR, PR, KO,
    RT objects, waveforms ... (by SOP class, else by Modality).
    """

    modality: str | None
    modality_source: str | None
    anatomy: str | None
    anatomy_source: str | None
    multi_hot: np.ndarray | None
    mapped: bool
    non_image: bool = False

    def _key(self) -> tuple[Any, ...]:
        vector = None if self.multi_hot is None else tuple(np.asarray(self.multi_hot).tolist())
        return (self.modality, self.modality_source, self.anatomy, self.anatomy_source, vector, self.mapped,
                self.non_image)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Labels) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _text(value: Any) -> str:
    """A plain value as stripped text: None / NaN -> "", multi-valued -> space-joined, bytes decoded."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip()
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(t for t in map(_text, value) if t)
    return str(value).strip()


def code_triples(value: Any) -> Iterable[tuple[str, str, str]]:
    """(scheme, code, meaning) triples from a list of tuples or of mappings with DICOM code keywords."""
    if not isinstance(value, (list, tuple)):
        return
    for item in value:
        if isinstance(item, Mapping):
            yield (_text(item.get("CodingSchemeDesignator")), _text(item.get("CodeValue")),
                   _text(item.get("CodeMeaning")))
        elif isinstance(item, (list, tuple)) and item:
            padded = [*item, "", "", ""]
            yield _text(padded[0]), _text(padded[1]), _text(padded[2])


def resolve_anatomy(raw: Mapping[str, Any], vocab: Vocabulary) -> tuple[str | None, str | None]:
    """(anatomy id, deciding keyword) from the most specific evidence that resolves.

    Order: a non-anatomic object named in any text field (phantom, QA, dose report ...), AnatomicRegion codes
    (then their meanings), Body Part Examined (exact term, else its text; junk
    falls through), Series Description, Protocol Name, Study Description.
    """
    for keyword in ("BodyPartExamined", *TEXT_FIELDS):  # a phantom tagged LIVER is a phantom
        marker = vocab.find_non_anatomic(_text(raw.get(keyword)))
        if marker is not None:
            return marker, keyword
    for scheme, code, meaning in code_triples(raw.get("AnatomicRegion")):
        anatomy = vocab.lookup_anatomy_code(scheme, code) or vocab.lookup_anatomy(meaning)
        if anatomy is not None:
            return anatomy, "AnatomicRegion"
    anatomy = vocab.lookup_anatomy(_text(raw.get("BodyPartExamined")))
    if anatomy is not None:
        return anatomy, "BodyPartExamined"
    for keyword in TEXT_FIELDS:
        anatomy = vocab.match_text(_text(raw.get(keyword)))
        if anatomy is not None:
            return anatomy, keyword
    return None, None


def resolve_labels(raw: Mapping[str, Any], vocab: Vocabulary) -> Labels:
    """Resolve modality and anatomy of one object from its raw attribute values (DICOM keywords)."""
    code = _text(raw.get("Modality"))
    sop_class = _text(raw.get("SOPClassUID"))
    modality, modality_source = vocab.lookup_modality(code), "Modality"
    if modality is None:
        modality, modality_source = vocab.modality_from_sop_class(sop_class), "SOPClassUID"
    if modality is None:
        modality_source = None
    non_image = vocab.is_non_image(code, sop_class)
    anatomy, anatomy_source = resolve_anatomy(raw, vocab)
    mapped = (not non_image and vocab.project_modality(modality) is not None
              and vocab.project_anatomy(anatomy, modality) is not None)
    multi_hot = vocab.encode(modality, anatomy) if mapped else None
    return Labels(modality, modality_source, anatomy, anatomy_source, multi_hot, mapped, non_image)
