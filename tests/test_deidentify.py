"""De-identification of pulled objects (Annex E basic profile, keyed UIDs) and label stamping.

Every DICOM object of a small synthetic export (images in every transfer syntax, SR reports with the
patient's name in their text, a presentation state, an RT structure set, a DICOMDIR, private blocks) is
de-identified, stamped with the labels `resolve_labels` gives its original header, and written; the tests
read those bytes back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset

from modan_dicom.errors import ConfigError
from modan_dicom.imaging import decode_with_simpleitk
from modan_dicom.ingest.header import read_header
from modan_dicom.ingest.index import LABEL_KEYS, build_index
from modan_dicom.ingest.labels import Labels, resolve_labels
from modan_dicom.pacs.deidentify import Deidentifier, stamp_labels
from modan_dicom.synth import synth_export
from modan_dicom.vocab import Vocabulary

SALT = b"deidentify-test-salt"
OTHER_SALT = b"another-salt"
DICOM_KINDS = ("image", "sr", "presentation_state", "rtstruct", "dicomdir")
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass
class Pulled:
    root: Path  # the synthetic export
    out: Path  # the de-identified, stamped copies (out/NNNN.dcm)
    pairs: list[tuple[str, Path]]  # (path in the export, de-identified file)
    census: dict[str, Labels]  # labels resolve_labels gave each original image
    phi: list[str]


def _read(path: Path, **kwargs: object) -> pydicom.FileDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True, **kwargs)
    if "TransferSyntaxUID" not in ds.file_meta:  # a raw dataset (no preamble): implicit VR little endian
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    return ds


def _raw(path: Path) -> dict[str, object]:
    header = read_header(path)
    raw = {key: header.get(key) for key in LABEL_KEYS}
    raw["AnatomicRegion"] = list(raw["AnatomicRegion"] or ())
    return raw


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load("radimagenet")


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory, vocab: Vocabulary) -> Pulled:
    root = tmp_path_factory.mktemp("export")
    manifest = synth_export(root, seed=7, n_patients=4, image_size=32)
    out = tmp_path_factory.mktemp("deidentified")
    deid = Deidentifier(SALT)
    pairs, census = [], {}
    dicom = manifest[manifest.kind.isin(DICOM_KINDS)]
    for i, (rel, kind) in enumerate(zip(dicom.path, dicom.kind)):
        ds = _read(root / rel)
        deid.deidentify(ds)
        if kind == "image":
            census[rel] = labels = resolve_labels(_raw(root / rel), vocab)
            stamp_labels(ds, labels.modality, labels.anatomy, vocab)
        target = out / f"{i:04d}.dcm"
        ds.save_as(target)
        pairs.append((rel, target))
    phi = json.loads((root / "phi.json").read_text(encoding="utf-8"))
    return Pulled(root, out, pairs, census, phi)


def _uids(ds: Dataset) -> tuple[str, ...]:
    return tuple(str(ds.get(k, "")) for k in UID_KEYWORDS)


# ---- no PHI, no private data -------------------------------------------------------------------------
def _encodings(value: str) -> set[bytes]:
    found = {value.encode("utf-8")}
    try:
        found.add(value.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return found


def test_no_fake_phi_value_or_birth_date_is_left_in_any_output_byte(pulled: Pulled) -> None:
    assert any(re.fullmatch(r"\d{8}", v) for v in pulled.phi)  # the birth dates are listed too
    originals = b"".join((pulled.root / rel).read_bytes() for rel, _ in pulled.pairs)
    assert all(any(n in originals for n in _encodings(v)) for v in pulled.phi)  # every value was there
    needles = {n for value in pulled.phi for n in _encodings(value)} | {b"ZZPHI"}
    for rel, path in pulled.pairs:
        data = path.read_bytes()
        left = [n for n in needles if n in data]
        assert not left, f"{rel}: {left}"


def test_private_elements_are_removed_at_every_depth(pulled: Pulled) -> None:
    before = sum(1 for rel, _ in pulled.pairs for e in _read(pulled.root / rel).iterall() if e.tag.is_private)
    assert before > 0
    for rel, path in pulled.pairs:
        assert not [e.tag for e in _read(path).iterall() if e.tag.is_private], rel


def test_the_profile_is_declared_and_identifying_attributes_are_gone(pulled: Pulled) -> None:
    for rel, path in pulled.pairs:
        ds = _read(path, stop_before_pixels=True)
        assert ds.PatientIdentityRemoved == "YES"
        assert "dicom-anonymizer" in ds.DeidentificationMethod
        code = ds.DeidentificationMethodCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
        if "SOPClassUID" not in ds:
            continue  # the DICOMDIR
        for keyword in ("StudyDescription", "SeriesDescription", "InstitutionAddress", "OtherPatientIDsSequence",
                        "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers"):  # X: removed
            assert keyword not in ds, (rel, keyword)
        assert str(ds.get("PatientName", "")) == "", rel  # Z: emptied
        original = _read(pulled.root / rel, stop_before_pixels=True)
        for keyword in ("ProtocolName", "InstitutionName", "PatientBirthDate", "StudyDate", "AccessionNumber"):
            if keyword in original:  # X/D, X/Z/D, Z: the library writes dummies or empties
                assert ds.get(keyword) != original.get(keyword), (rel, keyword)


# ---- UIDs and identifiers --------------------------------------------------------------------------
def test_the_same_uid_always_gets_the_same_new_uid_and_different_uids_different_ones(pulled: Pulled) -> None:
    mapping: dict[str, set[str]] = {}
    for rel, path in pulled.pairs:
        before, after = _read(pulled.root / rel, stop_before_pixels=True), _read(path, stop_before_pixels=True)
        for old, new in zip(_uids(before), _uids(after)):
            if old:
                assert new and new != old
                mapping.setdefault(old, set()).add(new)
        if "SOPInstanceUID" in after:
            assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
    assert all(len(news) == 1 for news in mapping.values())  # a function ...
    assert len({next(iter(n)) for n in mapping.values()}) == len(mapping)  # ... one-to-one
    for new in (next(iter(n)) for n in mapping.values()):
        assert re.fullmatch(r"2\.25\.[1-9]\d*", new) and len(new) <= 64
        assert uuid.UUID(int=int(new[5:])).version == 8


def test_references_between_objects_point_at_the_new_uids(pulled: Pulled) -> None:
    new_of = {}
    for rel, path in pulled.pairs:
        old = _uids(_read(pulled.root / rel, stop_before_pixels=True))
        new_of.update(zip(old, _uids(_read(path, stop_before_pixels=True))))
    checked = 0
    for rel, path in pulled.pairs:
        before, after = _read(pulled.root / rel, stop_before_pixels=True), _read(path, stop_before_pixels=True)
        for seq in ("ReferencedImageSequence", "ReferencedSeriesSequence"):
            for old_item, new_item in zip(before.get(seq, []), after.get(seq, [])):
                for keyword in ("ReferencedSOPInstanceUID", "SeriesInstanceUID"):
                    if keyword in old_item and str(old_item[keyword].value) in new_of:
                        assert new_item[keyword].value == new_of[str(old_item[keyword].value)], rel
                        checked += 1
                if "ReferencedSOPClassUID" in old_item:
                    assert new_item.ReferencedSOPClassUID == old_item.ReferencedSOPClassUID
    assert checked > 10


def test_study_and_series_grouping_is_the_same_before_and_after(pulled: Pulled) -> None:
    def partition(frame: pd.DataFrame, column: str) -> list[list[str]]:
        frame = frame[frame[column] != ""]
        return sorted(sorted(group) for _, group in frame.groupby(column)["rel"])

    rows = []
    for rel, path in pulled.pairs:
        before, after = _read(pulled.root / rel, stop_before_pixels=True), _read(path, stop_before_pixels=True)
        rows.append({"rel": rel, **{f"old_{k}": v for k, v in zip(UID_KEYWORDS, _uids(before))},
                     **{f"new_{k}": v for k, v in zip(UID_KEYWORDS, _uids(after))}})
    frame = pd.DataFrame(rows)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        old = partition(frame, f"old_{keyword}")
        assert len(old) > 4 and max(map(len, old)) > 1
        assert partition(frame, f"new_{keyword}") == old


def test_patient_id_becomes_the_keyed_patient_pseudonym(pulled: Pulled) -> None:
    for rel, path in pulled.pairs[:20]:
        original = _read(pulled.root / rel, stop_before_pixels=True)
        if "PatientID" in original:
            digest = hmac.new(SALT, f"patient:{original.PatientID}".encode(), hashlib.sha256).hexdigest()
            assert _read(path, stop_before_pixels=True).PatientID == "pat-" + digest[:20]  # the census's key


def _first_images(pulled: Pulled, n: int) -> Iterator[tuple[str, Dataset]]:
    for rel, _ in [p for p in pulled.pairs if p[0] in pulled.census][:n]:
        yield rel, _read(pulled.root / rel, stop_before_pixels=True)


def test_a_second_instance_with_the_same_salt_gives_the_same_output_and_another_salt_does_not(
        pulled: Pulled) -> None:
    written = dict(pulled.pairs)
    same, other = Deidentifier(SALT), Deidentifier(OTHER_SALT)
    for rel, original in _first_images(pulled, 12):
        first = _read(written[rel], stop_before_pixels=True)
        again = same.deidentify(_read(pulled.root / rel, stop_before_pixels=True))
        assert (_uids(again), again.PatientID) == (_uids(first), first.PatientID)
        elsewhere = other.deidentify(_read(pulled.root / rel, stop_before_pixels=True))
        assert all(a != b for a, b in zip(_uids(elsewhere), _uids(first)))
        assert elsewhere.PatientID != first.PatientID
        assert same.uid(original.SOPInstanceUID) == first.SOPInstanceUID


def test_a_fresh_process_gives_the_same_uids(pulled: Pulled) -> None:
    rel, path = next(p for p in pulled.pairs if p[0] in pulled.census)
    code = ("import sys, pydicom\n"
            "from modan_dicom.pacs.deidentify import Deidentifier\n"
            "ds = Deidentifier(sys.argv[2].encode()).deidentify(pydicom.dcmread(sys.argv[1], force=True))\n"
            "print(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.PatientID)\n")
    result = subprocess.run([sys.executable, "-c", code, str(pulled.root / rel), SALT.decode()],
                            capture_output=True, text=True, check=True, timeout=120)
    ds = _read(path, stop_before_pixels=True)
    assert result.stdout.split() == [*_uids(ds), ds.PatientID]


def test_the_salt_and_key_are_never_written_or_shown(pulled: Pulled) -> None:
    deid = Deidentifier(SALT)
    assert SALT.decode() not in repr(deid) and SALT.decode() not in deid.method
    key_hex = hmac.new(SALT, b"modan-dicom/deidentify/uid-key/v1", hashlib.sha256).hexdigest()
    for _, path in pulled.pairs:
        data = path.read_bytes()
        assert SALT not in data and key_hex.encode() not in data


def test_an_empty_salt_is_refused() -> None:
    with pytest.raises(ConfigError):
        Deidentifier(b"")


# ---- pixels and labels ----------------------------------------------------------------------------------
def _pixels(ds: Dataset, path: Path) -> np.ndarray:
    """Stored values (all frames) through pydicom, or the first frame through GDCM (JPEG 2000 Part 2)."""
    try:
        return ds.pixel_array
    except NotImplementedError:
        return decode_with_simpleitk(path)


def test_pixel_data_is_unchanged(pulled: Pulled) -> None:
    images = [p for p in pulled.pairs if p[0] in pulled.census]
    assert len(images) > 40
    for rel, path in images:
        before, after = _read(pulled.root / rel), _read(path)
        assert after.PixelData == before.PixelData, rel
        expected = _pixels(before, pulled.root / rel)
        assert expected.size > 0 and np.ptp(expected) > 0
        np.testing.assert_array_equal(_pixels(after, path), expected, err_msg=rel)


def test_indexing_the_deidentified_files_gives_the_census_labels(pulled: Pulled) -> None:
    index = build_index(pulled.out, salt=SALT).set_index("path")
    written = {path.name: rel for rel, path in pulled.pairs}
    statuses = []
    for name, row in index.iterrows():
        rel = written.get(name)
        if rel not in pulled.census:
            continue
        census = pulled.census[rel]
        status = "ok" if census.mapped else "unmapped"
        statuses.append(status)
        assert (row.status, row.modality, row.anatomy) == (status, census.modality, census.anatomy), rel
        if census.mapped:
            np.testing.assert_array_equal(np.asarray(row.multi_hot), census.multi_hot, err_msg=rel)
        if census.anatomy is not None:  # the descriptions are gone: the stamps carry the anatomy
            assert row.anatomy_source in ("AnatomicRegion", "BodyPartExamined")
    assert statuses.count("ok") > 30 and "unmapped" in statuses
    assert len(statuses) == len(pulled.census)


@pytest.mark.parametrize("profile", ["radimagenet", "full"])
def test_stamped_labels_resolve_back_for_every_anatomy_term(profile: str) -> None:
    vocab = Vocabulary.load(profile)
    for term in vocab.anatomy_terms:
        for modality, sop_class in (("CT", "1.2.840.10008.5.1.4.1.1.2"), ("XR", "1.2.840.10008.5.1.4.1.1.1")):
            ds = Dataset()
            ds.SOPClassUID, ds.Modality, ds.BodyPartExamined = sop_class, "", "JUNK"
            stamp_labels(ds, modality, term.id, vocab)
            raw = {"Modality": ds.Modality, "BodyPartExamined": ds.get("BodyPartExamined"),
                   "SOPClassUID": ds.SOPClassUID,
                   "AnatomicRegion": [(i.CodingSchemeDesignator, i.CodeValue, i.CodeMeaning)
                                      for i in ds.get("AnatomicRegionSequence", [])]}
            labels = resolve_labels(raw, vocab)
            assert (labels.modality, labels.anatomy) == (modality, term.id), term.id
            assert labels.modality_source == "Modality"
            if term.body_part:
                assert ds.BodyPartExamined == term.body_part[0]
            if term.snomed:
                assert ds.AnatomicRegionSequence[0].CodeValue == term.snomed
            else:
                assert "AnatomicRegionSequence" not in ds


def test_stamp_labels_keeps_a_present_modality_and_clears_evidence_without_anatomy(vocab: Vocabulary) -> None:
    ds = Dataset()
    ds.Modality, ds.BodyPartExamined = "DX", "CHEST"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "72696002", "SCT", "Knee"
    ds.AnatomicRegionSequence = [item]
    stamp_labels(ds, "XR", None, vocab)
    assert ds.Modality == "DX"
    assert "BodyPartExamined" not in ds and "AnatomicRegionSequence" not in ds
    stamp_labels(ds, "XR", "knee", vocab)
    assert ds.BodyPartExamined == "KNEE" and ds.AnatomicRegionSequence[0].CodeValue == "72696002"


def test_uids_inside_replaced_sequences_are_keyed_too_and_well_known_uids_kept() -> None:
    from dicomanonymizer import simpledicomanonymizer

    image_uid, ct = "1.2.3.4.5.6.7.8.9", "1.2.840.10008.5.1.4.1.1.2"
    talairach = "1.2.840.10008.1.4.1.1"  # a well-known frame of reference (PS3.6 Table A-1)
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ct, image_uid
    node = Dataset()
    node.RelationshipType, node.ValueType, node.TextValue = "CONTAINS", "IMAGE", "Seen by DOE-ZZPHI^JOHN"
    node.ReferencedSOPSequence = [ref]
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = "1.2.840.10008.5.1.4.1.1.88.11", "1.2.3.9", "1.2.3.8"
    ds.FrameOfReferenceUID = talairach
    ds.ContentSequence = [node]
    deid = Deidentifier(SALT)
    deid.deidentify(ds)
    out = ds.ContentSequence[0]
    assert out.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == deid.uid(image_uid) != image_uid
    assert out.ReferencedSOPSequence[0].ReferencedSOPClassUID == ct
    assert "ZZPHI" not in str(out.get("TextValue", ""))
    assert ds.FrameOfReferenceUID == talairach and ds.StudyInstanceUID == deid.uid("1.2.3.8")
    assert simpledicomanonymizer.dictionary == {}  # the library's random-UID table was never used
