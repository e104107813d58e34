"""`Vocabulary`: one vocabulary seen through one profile: lookups, projection onto the axes, and vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VocabularyError
from .catalog import Catalog
from .profiles import Projection
from .terms import AnatomyTerm, Axis, AxisInfo, ModalityTerm, Profile, TextMatch
from .text import compact

SNOMED_SCHEMES = frozenset({"SCT", "SRT", "SNM3", "99SDM", "SNOMED", "SNOMEDCT"})


class Vocabulary:
    """A vocabulary seen through one profile. Build it with :meth:`load` / :func:`load_vocabulary`.

    Lookups return full-vocabulary ids (``cervical_spine``); ``project_*`` and :meth:`encode` map them onto
    the profile's axes (``spine``). Every method is safe to call from many threads; results are cached.
    """

    def __init__(self, catalog: Catalog, profile: Profile, *, source: str, expand_ancestors: bool = False,
                 load_args: tuple[Any, ...] = ()) -> None:
        self._catalog = catalog
        self._profile = profile.name
        self._axes = profile.axes
        self._multi_region = profile.multi_region
        self._source = source
        self._expand = expand_ancestors
        self._load_args = load_args
        self._projection = Projection(catalog, profile, expand_ancestors)
        self._index = self._projection.index
        self._modality_axis = self._projection.modality_axis

    # -- construction
    @classmethod
    def load(cls, profile_or_path: str | Path = "radimagenet", expand_ancestors: bool = False, *,
             profile: str | None = None) -> Vocabulary:
        """Same as :func:`load_vocabulary`."""
        from .load import load_vocabulary

        return load_vocabulary(profile_or_path, expand_ancestors, profile=profile)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickles as its load arguments: a worker process reloads it from its own cache
        if not self._load_args:
            raise TypeError("only vocabularies made by load_vocabulary can be pickled")
        from .load import _reload

        return (_reload, self._load_args)

    def __repr__(self) -> str:
        return (f"Vocabulary(profile={self._profile!r}, axes={len(self._axes)}, source={self._source!r}"
                f"{', expand_ancestors=True' if self._expand else ''})")

    # -- description
    @property
    def profile(self) -> str:
        """The profile name."""
        return self._profile

    @property
    def source(self) -> str:
        """Where the vocabulary was read from (a folder, or a profile file)."""
        return self._source

    @property
    def folder(self) -> Path:
        """The folder holding ``modalities.yaml`` and ``anatomy.yaml``."""
        return self._catalog.folder

    @property
    def expand_ancestors(self) -> bool:
        """Whether :meth:`encode` also sets the axes of a term's ancestors."""
        return self._expand

    @property
    def multi_region(self) -> str:
        """What the profile does with multi-region terms: ``project`` (onto every axis) or ``leave_out``."""
        return self._multi_region

    @property
    def labels(self) -> list[str]:
        """Axis ids in vector order: modality axes first, then anatomy axes."""
        return [a.id for a in self._axes]

    @property
    def modality_labels(self) -> list[str]:
        """The modality axes (the first part of `labels`)."""
        return [a.id for a in self._axes if a.kind == "modality"]

    @property
    def anatomy_labels(self) -> list[str]:
        """The anatomy axes (the last part of `labels`)."""
        return [a.id for a in self._axes if a.kind == "anatomy"]

    @property
    def axes(self) -> tuple[Axis, ...]:
        return self._axes

    @property
    def modality_terms(self) -> tuple[ModalityTerm, ...]:
        return self._catalog.modalities

    @property
    def anatomy_terms(self) -> tuple[AnatomyTerm, ...]:
        return self._catalog.anatomy

    def term(self, anatomy_id: str) -> AnatomyTerm:
        """The anatomy term with this id (VocabularyError when unknown)."""
        try:
            return self._catalog.by_id[anatomy_id]
        except KeyError:
            raise VocabularyError(f"unknown anatomy id '{anatomy_id}' in vocabulary {self._source}") from None

    def index(self, axis: str) -> int:
        """Position of an axis in the vector."""
        try:
            return self._index[axis]
        except KeyError:
            raise VocabularyError(f"'{axis}' is not an axis of profile '{self._profile}'") from None

    def describe(self) -> list[AxisInfo]:
        """Every axis with its name, covered terms and the full-vocabulary terms projecting onto it."""
        names = {m.id: m.name for m in self._catalog.modalities} | {t.id: t.name for t in self._catalog.anatomy}
        infos = []
        for axis in self._axes:
            if axis.kind == "modality":
                members = tuple(t for t, a in self._modality_axis.items() if a == axis.id)
            else:
                members = tuple(t for t, a in self._projection.anatomy_axes.items() if axis.id in a)
            infos.append(AxisInfo(axis.id, axis.kind, names[axis.id], axis.covers, members))
        return infos

    # -- modality
    def lookup_modality(self, raw: str | None) -> str | None:
        """DICOM Modality code (retired ones too), alias or RadImageNet folder -> modality id (``DX`` -> ``XR``)."""
        if not raw:
            return None
        key = compact(raw)
        return self._catalog.modality_index.get(key) or self._catalog.modality_folders.get(key)

    def modality_from_sop_class(self, sop_class_uid: str | None) -> str | None:
        """Modality id implied by an image SOP Class UID (for files whose Modality is blank)."""
        return self._catalog.image_sop.get(sop_class_uid.strip()) if sop_class_uid else None

    def is_image_modality(self, code: str | None) -> bool:
        """False for Modality codes of objects without an image (SR, PR, KO, RTSTRUCT, ECG ...)."""
        return not code or compact(code) not in self._catalog.non_image_codes

    def is_non_image(self, modality: str | None = None, sop_class_uid: str | None = None) -> bool:
        """True when the SOP class (decisive when known) or else the Modality code says: no image."""
        if sop_class_uid:
            uid = sop_class_uid.strip()
            if any(uid == p or uid.startswith(p + ".") for p in self._catalog.non_image_sop):
                return True
            if uid in self._catalog.image_sop:
                return False
        return not self.is_image_modality(modality)

    # -- anatomy
    def lookup_body_part(self, raw: str | None) -> str | None:
        """Body Part Examined value -> anatomy id, exact after normalisation (terms, old terms, synonyms, aliases)."""
        return self._catalog.exact.get(compact(raw)) if raw else None

    def lookup_anatomy_code(self, scheme: str | None, code: str | None) -> str | None:
        """Anatomic Region Sequence code (SNOMED CT ``SCT`` or legacy ``SRT``) -> anatomy id."""
        if not code or (scheme and compact(scheme) not in SNOMED_SCHEMES):
            return None
        code = code.strip()
        return self._catalog.sct.get(code) or self._catalog.srt.get(code.upper())

    def find_text(self, text: str | None) -> TextMatch | None:
        """The deciding synonym in free text (see :meth:`match_text`), or None."""
        return self._catalog.matcher.find(text) if text else None

    def match_text(self, text: str | None) -> str | None:
        """Free text (descriptions, protocol names) -> anatomy id.

        Whole words only, after folding accents and splitting at separators, case changes and digits;
        unknown words that split into known ones are read as compounds; the longest synonym wins (then the
        earliest); text after phrases such as "history of", "s/p", "prior" is ignored (`text.py`).
        """
        found = self.find_text(text)
        return found.term if found else None

    def find_non_anatomic(self, text: str | None) -> str | None:
        """The non-anatomic term (``phantom``, ``test_object``, ``dose_report`` ...) a text names, or None.

        Any text field may say it, and it outranks every anatomy evidence: a phantom tagged LIVER is a phantom.
        """
        return self._catalog.matcher.marker(text) if text else None

    def is_non_anatomic(self, anatomy_id: str | None) -> bool:
        """Whether a term names no anatomy (phantoms, test objects, dose reports, screen captures)."""
        return anatomy_id is not None and self.term(anatomy_id).non_anatomic

    def lookup_anatomy(self, raw: str | None) -> str | None:
        """A body-part value first (exact), then free text."""
        return self.lookup_body_part(raw) or self.match_text(raw)

    def lookup_radimagenet(self, modality_folder: str | None, region_or_organ: str | None
                           ) -> tuple[str | None, str | None]:
        """RadImageNet folders (``MR``, ``mriabd``; ``US``, ``portal_vein``) -> (modality id, anatomy id)."""
        modality = self.lookup_modality(modality_folder)
        anatomy = self._catalog.anatomy_folders.get(compact(region_or_organ)) if region_or_organ else None
        return modality, anatomy

    def ancestors(self, anatomy_id: str) -> list[str]:
        """Enclosing terms, nearest first (``cervical_spine`` -> ``['spine']``)."""
        try:
            return list(self._catalog.ancestors[anatomy_id])
        except KeyError:
            raise VocabularyError(f"unknown anatomy id '{anatomy_id}' in vocabulary {self._source}") from None

    # -- projection and vectors
    def project_modality(self, modality_id: str | None) -> str | None:
        """The profile axis of a modality id, or None when the profile has no place for it."""
        if modality_id is None:
            return None
        try:
            return self._modality_axis[modality_id]
        except KeyError:
            raise VocabularyError(f"unknown modality id '{modality_id}' in vocabulary {self._source}") from None

    def project_anatomy(self, anatomy_id: str | None, modality: str | None = None) -> str | None:
        """The profile axis of a term (for a multi-region term: the first of its axes, see `anatomy_axes`).

        ``cervical_spine`` -> ``spine``; None when the profile has no place for it (seen with `modality`, a
        modality id, when given: RadImageNet's ``US`` has no ``heart``).
        """
        axes = self.anatomy_axes(anatomy_id, modality)
        return axes[0] if axes else None

    def anatomy_axes(self, anatomy_id: str | None, modality: str | None = None) -> tuple[str, ...]:
        """Every anatomy axis a term projects onto, in profile order (``chest_abdomen_pelvis`` -> lung, abdomen)."""
        if anatomy_id is None:
            return ()
        try:
            return self._projection.axes_for(anatomy_id, modality)
        except KeyError:
            raise VocabularyError(f"unknown anatomy id '{anatomy_id}' in vocabulary {self._source}") from None

    def encode(self, modality: str | None, anatomy: str | None) -> np.ndarray:
        """Full-vocabulary ids -> multi-hot float32 vector of shape ``(len(labels),)``.

        Ids without a place in the profile set no bit; with ``expand_ancestors`` the axes of the term's
        ancestors are set too; a multi-region term sets every axis it projects onto; a (modality, term) pair
        the profile excludes sets no anatomy bit.
        """
        vector = np.zeros(len(self._axes), dtype=np.float32)
        axis = self.project_modality(modality)
        if axis is not None:
            vector[self._index[axis]] = 1.0
        if anatomy is not None:
            try:
                bits = self._projection.bits[anatomy]
            except KeyError:
                raise VocabularyError(f"unknown anatomy id '{anatomy}' in vocabulary {self._source}") from None
            if bits and modality is not None and anatomy in self._projection.excluded.get(modality, ()):
                bits = ()
            vector[list(bits)] = 1.0
        return vector

    def decode(self, vector: Any) -> tuple[list[str], list[str]]:
        """Multi-hot vector ``(len(labels),)`` -> (modality axes set, anatomy axes set), in axis order."""
        values = np.asarray(vector, dtype=np.float32).reshape(-1)
        if values.shape[0] != len(self._axes):
            raise ValueError(f"vector has {values.shape[0]} values; profile '{self._profile}' has "
                             f"{len(self._axes)} axes")
        on = [a for a, v in zip(self._axes, values) if v > 0.5]
        return [a.id for a in on if a.kind == "modality"], [a.id for a in on if a.kind == "anatomy"]

