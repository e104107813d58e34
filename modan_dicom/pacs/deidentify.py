"""De-identify pulled objects (DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile)
and stamp the labels a census resolved back into them.

What to do with each attribute is the standard's Table E.1-1 as the `dicom-anonymizer` library
(KitwareMedical, BSD-3) ships it, with the library's actions: D (dummy value), Z (empty), X (remove), and
the combinations. docs/deidentification.md compares it with dicognito, deid and others. The library
leaves four things to its caller, and this module adds only those:

- UIDs (action U) become keyed ones: ``2.25.`` + a version-8 UUID from HMAC-SHA256(key, old UID),
  the key derived from the project's pseudonym salt. The same UID and salt give the same new UID in any
  process and run, so study / series grouping and references between objects survive, and a killed pull
  run again writes the same files. Without the salt the mapping cannot be recomputed or confirmed. (The
  library's own U action draws random UIDs and keeps them in a process-wide dict.)
- Patient ID (action Z/D) becomes the keyed patient pseudonym ``pat-…`` of `modan_dicom.ingest.pseudonym`
  (the census's `patient_key`), so patient grouping survives as well.
- The library acts on top-level attributes only. Here the table is applied to the items of every
  sequence that the table does not itself remove, empty or replace (DICOMDIR records, the Anatomic Region
  Sequence, ...), at any depth; the reference sequences with action X/Z/U* (Referenced Image, Source Image)
  keep their items, with keyed instance UIDs (the "U*" the standard allows); sequences with a D action
  (Content Sequence, ...) get the library's dummy values item by item, UIDs keyed, class UIDs kept.
- Patient Identity Removed = YES, De-identification Method and its Code Sequence (DCM 113100), and the
  file meta's Media Storage SOP Instance UID kept equal to the new SOP Instance UID.

Private elements are removed, in sequences too. Pixel data is not touched: the Clean Pixel Data option
(burned-in text) is not part of the basic profile and is not applied.

`stamp_labels` then writes the evidence of the census's labels (Body Part Examined, Anatomic Region
Sequence, Modality when empty), so that indexing the de-identified files gives the census's labels even
though the descriptions they were read from are gone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from importlib.metadata import version as _package_version

from dicomanonymizer import simpledicomanonymizer as _lib
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID_dictionary

from ..errors import ConfigError, SourceError
from ..ingest.pseudonym import pseudonym
from ..vocab import Vocabulary

# The newest Table E.1-1 that dicom-anonymizer ships (DICOM 2026c; needs dicom-anonymizer >= 2.1).
TABLE = "dicomfields_2026c"
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
UID_ROOT = "2.25."  # UUID-derived UIDs (PS3.5 B.2): no organisation root needed
_KEY_CONTEXT = b"modan-dicom/deidentify/uid-key/v1"
_PATIENT_ID = (0x0010, 0x0020)
_OVERLAY_CURVE_GROUPS = ((0x5000, 0x50FF), (0x6000, 0x60FF))  # the table's repeating-group rows
# Library actions that write dummies (D): on a sequence they would draw random UIDs for what it holds.
_DUMMY_ACTIONS = (_lib.replace, _lib.empty_or_replace, _lib.delete_or_replace, _lib.delete_or_empty_or_replace)

Action = Callable[[Dataset, tuple[int, ...]], None]


def keyed_uid(key: bytes, uid: str) -> str:
    """The replacement of `uid` under `key`: ``2.25.<decimal of a version-8 UUID>`` (at most 44 characters).

    Well-known UIDs of the standard (pydicom's UID dictionary: SOP classes, transfer syntaxes, coding
    schemes, ...) are returned unchanged: they identify no one, and readers need them.
    """
    uid = str(uid).strip().rstrip("\x00")
    if uid in UID_dictionary:
        return uid
    n = int.from_bytes(hmac.new(key, uid.encode("ascii", "replace"), hashlib.sha256).digest()[:16], "big")
    n = (n & ~(0xF << 76)) | (0x8 << 76)  # version 8 (RFC 9562: vendor-specific)
    n = (n & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return f"{UID_ROOT}{n}"


def _vr(tag: tuple[int, ...]) -> str | None:
    try:
        return dictionary_VR((tag[0] << 16) | tag[1])
    except KeyError:
        return None


def _is_class_uid(element: DataElement) -> bool:
    keyword = keyword_for_tag(element.tag)
    return keyword.endswith("ClassUID") or keyword.endswith("TransferSyntaxUID")


class Deidentifier:
    """Annex E basic profile through dicom-anonymizer, with UIDs and Patient ID keyed by `salt`.

    salt: the project's pseudonym salt (`modan_dicom.ingest.pseudonym.resolve_salt`). It is never used
    as it is: the UID key is HMAC-SHA256(salt, a fixed context), and the Patient ID is the patient
    pseudonym HMAC(salt, "patient:" + id). Two instances with the same salt, in any processes, map the
    same input to the same output; different salts give unrelated outputs. Instances hold no state
    between calls and may be shared between threads.
    """

    def __init__(self, salt: bytes) -> None:
        if not salt:
            raise ConfigError("de-identification needs a non-empty salt (--salt, MODAN_SALT or .modan-salt)")
        self._salt = bytes(salt)
        self._key = hmac.new(self._salt, _KEY_CONTEXT, hashlib.sha256).digest()
        tables = dicom_anonymization_database_selector(TABLE)
        rules: dict[tuple[int, ...], Action] = dict(_lib.initialize_actions(TABLE))
        descend_too: set[tuple[int, ...]] = set()
        for tag, action in list(rules.items()):
            vr = _vr(tag) if len(tag) == 2 else None
            if vr == "UI" and action is _lib.replace:
                rules[tag] = self._replace_uid  # D on a UID: a keyed UID is a valid dummy
            elif vr == "SQ" and action in _DUMMY_ACTIONS:
                rules[tag] = self._dummy_sequence
        for tag in tables["U_TAGS"]:
            rules[tag] = self._replace_uid
        for tag in tables["X_Z_U_STAR_TAGS"]:
            rules[tag] = _lib.keep  # items kept; the table (keyed UIDs included) is applied to them below
            descend_too.add(tag)
        rules[_PATIENT_ID] = self._replace_patient_id
        self._rules = {Tag(tag): (tag, action) for tag, action in rules.items() if len(tag) == 2}
        self._ranges = {tag: action for tag, action in rules.items() if len(tag) == 4}
        # sequences the recursion does not enter: their own action (X, Z, D) has dealt with their items
        self._skip_items = frozenset(Tag(tag) for tag in rules if len(tag) == 2) - {Tag(t) for t in descend_too}
        library = f"dicom-anonymizer {_package_version('dicom-anonymizer')}"
        self.method = f"PS3.15 E.1 Basic; {library} {TABLE[-5:]}; keyed UIDs"[:64]  # LO

    def __repr__(self) -> str:
        return f"Deidentifier(table={TABLE!r})"  # never the salt or the key

    # ---- public -------------------------------------------------------------------------------------
    def deidentify(self, ds: Dataset) -> Dataset:
        """De-identify `ds` in place and return it (pixel data untouched).

        Raises SourceError when the library cannot process an attribute (a value representation it does
        not handle): such an object must not be written.
        """
        try:
            self._apply(ds, top=True)
        except NotImplementedError as exc:
            raise SourceError(f"cannot de-identify this object: {exc}") from None
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = self.method
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        meta = ds.get("file_meta")
        if meta is not None and "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
                meta.MediaStorageSOPClassUID = ds.SOPClassUID
        return ds

    def uid(self, uid: str) -> str:
        """The new UID `deidentify` writes for `uid` (to find a pulled object by its archive UID)."""
        return keyed_uid(self._key, uid)

    # ---- the walk -----------------------------------------------------------------------------------
    def _apply(self, ds: Dataset, top: bool) -> None:
        """Run the library on `ds` with the rules of the attributes it holds, then on nested items."""
        rules: dict[tuple[int, ...], Action] = {}
        for tag in ds.keys():
            hit = self._rules.get(tag)
            if hit is not None:
                rules[hit[0]] = hit[1]
        if top:
            meta = ds.get("file_meta")
            for tag in meta.keys() if meta is not None else ():
                hit = self._rules.get(tag)
                if hit is not None:
                    rules[hit[0]] = hit[1]
            # repeating groups (overlays, curves) are top-level modules; the library walks for them
            if any(lo <= BaseTag(t).group <= hi for t in ds.keys() for lo, hi in _OVERLAY_CURVE_GROUPS):
                rules.update(self._ranges)
        _lib.anonymize_dataset(ds, delete_private_tags=True, base_rules_gen=lambda: rules)
        for element in list(ds):
            if element.VR == "SQ" and element.tag not in self._skip_items and element.value:
                for item in element.value:
                    self._apply(item, top=False)

    # ---- the actions this module adds (library signature: action(dataset, tag)) -----------------------
    def _replace_uid(self, dataset: Dataset, tag: tuple[int, ...]) -> None:
        element = dataset.get(tag)
        if element is None or not element.value:
            return
        if isinstance(element.value, MultiValue):
            element.value = [keyed_uid(self._key, v) for v in element.value]
        else:
            element.value = keyed_uid(self._key, element.value)

    def _replace_patient_id(self, dataset: Dataset, tag: tuple[int, ...]) -> None:
        element = dataset.get(tag)
        if element is not None and element.value:
            element.value = pseudonym(self._salt, "patient", str(element.value).strip())

    def _dummy_sequence(self, dataset: Dataset, tag: tuple[int, ...]) -> None:
        element = dataset.get(tag)
        if element is not None and element.VR == "SQ":
            for item in element.value or ():
                self._dummy_item(item)

    def _dummy_item(self, item: Dataset) -> None:
        """The library's D dummies for every value of `item` (nested too), UIDs keyed, class UIDs kept."""
        for element in list(item):
            if element.tag.is_private:
                del item[element.tag]
            elif element.VR == "SQ":
                for sub in element.value or ():
                    self._dummy_item(sub)
            elif element.VR == "UI":
                if element.value and not _is_class_uid(element):
                    self._replace_uid(item, element.tag)
            elif element.value not in (None, "", b""):
                try:
                    _lib.replace_element(element)
                except NotImplementedError:
                    del item[element.tag]  # a value representation without a dummy: remove it


# ---- labels ---------------------------------------------------------------------------------------------
def stamp_labels(ds: Dataset, modality: str | None, anatomy: str | None, vocab: Vocabulary) -> None:
    """Write the evidence of a census's labels into a (de-identified) dataset, in place.

    modality / anatomy: the full-vocabulary ids the census resolved (`Labels.modality`, `Labels.anatomy`).

    - Body Part Examined = the anatomy term's first DICOM defined term (``vocab.term(anatomy).body_part[0]``);
      removed when the term has none (or anatomy is None).
    - Anatomic Region Sequence = one item with the term's SNOMED CT code (scheme ``SCT``, meaning = term
      name); removed when the term has no code. It decides the anatomy before Body Part Examined does.
    - A term with neither (e.g. ``ankle_foot``, a RadImageNet folder term) would leave no evidence at all:
      Body Part Examined then gets the shortest of its synonyms that is a valid CS value (at most 16
      upper-case characters) and that the vocabulary reads back as that term (``ANKLE FOOT``); removed
      when there is none.
    - Modality is left as the file has it; only when empty or absent is it set to the first DICOM code of
      the census's modality group (``XR`` -> ``CR``), so that the modality no longer rests on the SOP class.

    `modan_dicom.ingest.labels.resolve_labels` on the stamped header gives back the census's modality and
    anatomy (the `*_source` fields then name these attributes).
    """
    body_part: str | None = None
    code: str | None = None
    if anatomy is not None:
        term = vocab.term(anatomy)
        code = term.snomed
        if term.body_part:
            body_part = term.body_part[0]
        elif code is None:
            body_part = _body_part_from_synonyms(term.synonyms, anatomy, vocab)
    if body_part is not None:
        ds.BodyPartExamined = body_part
    elif "BodyPartExamined" in ds:
        del ds.BodyPartExamined
    if code is not None:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SCT", vocab.term(anatomy).name[:64]
        ds.AnatomicRegionSequence = Sequence([item])
    elif "AnatomicRegionSequence" in ds:
        del ds.AnatomicRegionSequence
    if modality is not None and not str(ds.get("Modality") or "").strip():
        codes = next((m.dicom for m in vocab.modality_terms if m.id == modality), ())
        if codes:
            ds.Modality = codes[0]


def _body_part_from_synonyms(synonyms: tuple[str, ...], anatomy: str, vocab: Vocabulary) -> str | None:
    candidates = sorted({" ".join(s.upper().replace("-", " ").split()) for s in synonyms}, key=lambda s: (len(s), s))
    for value in candidates:
        if (len(value) <= 16 and all(c.isalnum() and c.isascii() or c in " _" for c in value)
                and vocab.lookup_body_part(value) == anatomy):
            return value
    return None
