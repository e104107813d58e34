"""Label resolution from raw attribute values (shared by the file index and the PACS census)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from modan_dicom.ingest.labels import Labels, resolve_labels
from modan_dicom.synth.catalog import NO_ANATOMY, REGIONS, HeaderVariant
from modan_dicom.vocab import Vocabulary, load_vocabulary

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
KEY_OBJECT = "1.2.840.10008.5.1.4.1.1.88.59"


@pytest.fixture(scope="module")
def rin() -> Vocabulary:
    return load_vocabulary("radimagenet")


def raw_of(variant: HeaderVariant, modality: str) -> dict[str, object]:
    return {"Modality": modality, "BodyPartExamined": variant.body_part,
            "SeriesDescription": variant.series_description, "ProtocolName": variant.protocol_name,
            "StudyDescription": variant.study_description, "AnatomicRegion": [], "SOPClassUID": None}


CASES = [(region.name, i, modality, variant) for region in REGIONS.values()
         for i, variant in enumerate(region.variants) for modality in region.modalities]


@pytest.mark.parametrize("region, i, modality, variant", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_every_synthetic_header_variant_resolves_as_the_catalog_says(rin: Vocabulary, region: str, i: int,
                                                                     modality: str, variant: HeaderVariant) -> None:
    code = {"XR": "DX"}.get(modality, modality)  # the export writes CR / DX / RF for radiography
    labels = resolve_labels(raw_of(variant, code), rin)
    assert (labels.modality, labels.modality_source) == (modality, "Modality")
    assert (labels.anatomy, labels.anatomy_source) == (variant.anatomy, variant.source)
    assert rin.project_anatomy(labels.anatomy) == variant.axis
    in_profile = modality in ("CT", "MR", "US") and variant.axis is not None
    assert labels.mapped is in_profile and labels.non_image is False
    if in_profile:  # the vector, built independently from the axis names
        expected = np.zeros(len(rin.labels), dtype=np.float32)
        expected[rin.labels.index(modality)] = expected[rin.labels.index(variant.axis)] = 1
        assert labels.multi_hot is not None and labels.multi_hot.dtype == np.float32
        np.testing.assert_array_equal(labels.multi_hot, expected)
    else:
        assert labels.multi_hot is None


def test_header_without_anatomy_is_unmapped(rin: Vocabulary) -> None:
    labels = resolve_labels(raw_of(NO_ANATOMY, "CT"), rin)
    assert labels == Labels("CT", "Modality", None, None, None, False, False)


def test_head_keeps_its_anatomy_and_is_brain_in_radimagenet(rin: Vocabulary) -> None:
    raw = {"Modality": "CT", "BodyPartExamined": "HEAD", "SeriesDescription": "Head 5.0 H30s"}
    labels = resolve_labels(raw, rin)
    assert (labels.anatomy, labels.anatomy_source, labels.mapped) == ("head", "BodyPartExamined", True)
    assert rin.decode(labels.multi_hot) == (["CT"], ["brain"])
    full = resolve_labels(raw, load_vocabulary("full"))
    assert full.mapped and full.anatomy == "head"
    assert load_vocabulary("full").decode(full.multi_hot) == (["CT"], ["head"])


def test_anatomic_region_sequence_comes_first(rin: Vocabulary) -> None:
    raw = {"Modality": "MR", "BodyPartExamined": "CHEST", "SeriesDescription": "AX T2 BRAIN",
           "AnatomicRegion": [("SCT", "72696002", "Knee")]}
    assert resolve_labels(raw, rin).anatomy == "knee"
    assert resolve_labels(raw, rin).anatomy_source == "AnatomicRegion"
    raw["AnatomicRegion"] = [("SRT", "T-11501", "Cervical spine")]
    assert resolve_labels(raw, rin).anatomy == "cervical_spine"
    raw["AnatomicRegion"] = [("99LOCAL", "X1", "Left knee")]  # unknown code: its meaning still speaks
    assert resolve_labels(raw, rin).anatomy == "knee"
    raw["AnatomicRegion"] = [{"CodingSchemeDesignator": "SCT", "CodeValue": "12738006", "CodeMeaning": "Brain"}]
    assert resolve_labels(raw, rin).anatomy == "brain"
    raw["AnatomicRegion"] = [("99LOCAL", "X1", "???")]  # nothing there: Body Part Examined decides
    assert (resolve_labels(raw, rin).anatomy, resolve_labels(raw, rin).anatomy_source) == ("chest",
                                                                                          "BodyPartExamined")


def test_evidence_order_and_junk_body_part(rin: Vocabulary) -> None:
    raw = {"Modality": "MR", "BodyPartExamined": "XXXXX", "SeriesDescription": "Series 3",
           "ProtocolName": "KNEE ROUTINE", "StudyDescription": "MRI HIP LEFT"}
    labels = resolve_labels(raw, rin)
    assert (labels.anatomy, labels.anatomy_source) == ("knee", "ProtocolName")
    raw["BodyPartExamined"] = "Hip Left"  # not a defined term, but its text resolves
    assert (resolve_labels(raw, rin).anatomy, resolve_labels(raw, rin).anatomy_source) == ("hip",
                                                                                          "BodyPartExamined")


def test_non_image_objects(rin: Vocabulary) -> None:
    sr = resolve_labels({"Modality": "SR", "SOPClassUID": BASIC_TEXT_SR, "StudyDescription": "CT CHEST"}, rin)
    assert sr.non_image and not sr.mapped and sr.multi_hot is None
    assert sr.modality is None and sr.anatomy == "chest"
    ko = resolve_labels({"Modality": "CT", "SOPClassUID": KEY_OBJECT, "BodyPartExamined": "CHEST"}, rin)
    assert ko.non_image and ko.modality == "CT" and not ko.mapped
    plan = resolve_labels({"Modality": "RTPLAN", "BodyPartExamined": "PELVIS"}, rin)
    assert plan.non_image and not plan.mapped


def test_modality_from_sop_class_when_blank(rin: Vocabulary) -> None:
    labels = resolve_labels({"Modality": "", "SOPClassUID": CT_IMAGE, "BodyPartExamined": "ABDOMEN"}, rin)
    assert (labels.modality, labels.modality_source, labels.mapped) == ("CT", "SOPClassUID", True)
    unknown = resolve_labels({"Modality": "ZZ", "BodyPartExamined": "ABDOMEN"}, rin)
    assert (unknown.modality, unknown.modality_source, unknown.mapped, unknown.non_image) == (None, None, False,
                                                                                              False)


def test_plain_values_of_any_shape(rin: Vocabulary) -> None:
    labels = resolve_labels({"Modality": b"MR ", "BodyPartExamined": float("nan"),
                             "SeriesDescription": ["AX", "T2", "KNEE"], "ProtocolName": None}, rin)
    assert (labels.modality, labels.anatomy, labels.anatomy_source) == ("MR", "knee", "SeriesDescription")
    assert resolve_labels({}, rin) == Labels(None, None, None, None, None, False, False)


def test_labels_are_values(rin: Vocabulary) -> None:
    raw = {"Modality": "MR", "BodyPartExamined": "KNEE"}
    a, b = resolve_labels(raw, rin), resolve_labels(dict(raw), rin)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != resolve_labels({"Modality": "CT", "BodyPartExamined": "KNEE"}, rin)
    with pytest.raises(AttributeError):
        a.anatomy = "hip"  # type: ignore[misc]


def test_resolution_is_fast_on_distinct_descriptions(rin: Vocabulary) -> None:
    raws = [{"Modality": "MR", "BodyPartExamined": "", "SeriesDescription": f"AX T2 FS {i} LEFT KNEE W/O",
             "StudyDescription": f"MRI KNEE {i}"} for i in range(5000)]
    start = time.perf_counter()
    found = [resolve_labels(raw, rin) for raw in raws]
    elapsed = time.perf_counter() - start
    assert all(f.anatomy == "knee" and f.mapped for f in found)
    assert elapsed < 5.0, f"{elapsed / len(raws) * 1e6:.0f} us per object"
