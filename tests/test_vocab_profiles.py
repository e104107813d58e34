"""Profiles that mean what RadImageNet means (issue 14, item 1): head imaging is brain, multi-region terms
project onto every axis they cover (or are left out), ultrasound has no heart, and RadImageNet's own folders
keep their two-hot vectors exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from modan_dicom.errors import VocabularyError
from modan_dicom.ingest.labels import resolve_labels
from modan_dicom.vocab import VOCAB_DIR, Vocabulary, check_vocabulary, load_vocabulary


@pytest.fixture(scope="module")
def rin() -> Vocabulary:
    return load_vocabulary("radimagenet")


@pytest.fixture(scope="module")
def single() -> Vocabulary:
    return load_vocabulary("radimagenet_single")


@pytest.mark.parametrize("term, axes", [
    ("chest_abdomen_pelvis", ("abdomen", "lung")), ("chest_abdomen", ("abdomen", "lung")),
    ("trunk", ("abdomen", "lung")), ("whole_body", ("abdomen", "lung")),
    ("neck_chest_abdomen_pelvis", ("abdomen", "lung")), ("neck_chest", ("lung",)), ("head_neck", ("brain",)),
    ("pelvis_lower_limbs", ("abdomen",)), ("abdomen_pelvis", ("abdomen",)), ("neck", ()), ("breast", ()),
])
def test_multi_region_terms_project_onto_every_axis_their_parts_cover(rin: Vocabulary, term: str,
                                                                      axes: tuple[str, ...]) -> None:
    assert rin.anatomy_axes(term) == axes
    assert rin.decode(rin.encode("CT", term)) == (["CT"], list(axes))
    assert rin.project_anatomy(term) == (axes[0] if axes else None)


def test_a_cap_ct_gets_the_lung_and_abdomen_bits(rin: Vocabulary) -> None:
    labels = resolve_labels({"Modality": "CT", "SeriesDescription": "CAP W/O 5mm", "StudyDescription": "CT C/A/P"},
                            rin)
    assert labels.anatomy == "chest_abdomen_pelvis" and labels.mapped
    assert labels.multi_hot.tolist() == [1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_radimagenet_single_leaves_multi_region_series_out(single: Vocabulary, rin: Vocabulary) -> None:
    assert single.labels == rin.labels and single.multi_region == "leave_out" and rin.multi_region == "project"
    for term in ("chest_abdomen_pelvis", "whole_body", "trunk", "neck_chest_abdomen"):
        assert single.anatomy_axes(term) == () and single.project_anatomy(term) is None, term
    assert single.anatomy_axes("head_neck") == ("brain",)  # its parts cover one axis only
    assert single.anatomy_axes("neck_chest") == ("lung",)
    labels = resolve_labels({"Modality": "CT", "BodyPartExamined": "CHESTABDPELVIS"}, single)
    assert labels.anatomy == "chest_abdomen_pelvis" and not labels.mapped and labels.multi_hot is None
    assert single.decode(single.encode("MR", "knee")) == (["MR"], ["knee"])


@pytest.mark.parametrize("term, us_axes", [
    ("heart", ()), ("whole_body", ()), ("chest_abdomen_pelvis", ()), ("thyroid", ("thyroid",)),
    ("pelvis", ("abdomen",)), ("liver", ("abdomen",)), ("chest", ("lung",)),
])
def test_ultrasound_projection_follows_radimagenets_organ_folders(rin: Vocabulary, term: str,
                                                                   us_axes: tuple[str, ...]) -> None:
    assert rin.anatomy_axes(term, "US") == us_axes
    assert rin.decode(rin.encode("US", term)) == (["US"], list(us_axes))
    labels = resolve_labels({"Modality": "US", "BodyPartExamined": term.upper()}, rin)
    assert (labels.anatomy, labels.mapped) == (term, bool(us_axes))


def test_head_imaging_is_brain(rin: Vocabulary) -> None:
    for raw in ({"Modality": "CT", "BodyPartExamined": "HEAD"}, {"Modality": "MR", "StudyDescription": "MRI IAMS"},
                {"Modality": "CT", "SeriesDescription": "CT SINUS 1mm"},
                {"Modality": "MR", "BodyPartExamined": "ORBIT"}):
        labels = resolve_labels(raw, rin)
        assert labels.mapped and rin.decode(labels.multi_hot)[1] == ["brain"], raw


def radimagenet_folders() -> list[tuple[str, str, str]]:
    """(modality folder, region or organ folder, expected axis) for every RadImageNet region and US organ."""
    rows = [("CT", "lung", "lung"), ("CT", "abd", "abdomen"), ("MR", "af", "ankle_foot"), ("MR", "brain", "brain"),
            ("MR", "hip", "hip"), ("MR", "knee", "knee"), ("MR", "mriabd", "abdomen"),
            ("MR", "shoulder", "shoulder"), ("MR", "spine", "spine")]
    organs = ["aorta", "bladder", "cbd", "fibroid", "gb", "ivc", "kidney", "liver", "ovary", "pancreas",
              "portal_vein", "spleen", "uterus"]
    return rows + [("US", o, "abdomen") for o in organs] + [("US", "thyroid", "thyroid"),
                                                             ("US", "thyroid_nodule", "thyroid")]


@pytest.mark.parametrize("modality, folder, axis", radimagenet_folders())
def test_radimagenet_folders_keep_their_two_hot_vectors(rin: Vocabulary, modality: str, folder: str,
                                                         axis: str) -> None:
    modality_id, anatomy = rin.lookup_radimagenet(modality, folder)
    vector = rin.encode(modality_id, anatomy)
    expected = np.zeros(12, dtype=np.float32)
    expected[rin.index(modality)] = expected[rin.index(axis)] = 1
    assert vector.tolist() == expected.tolist()


def test_expand_ancestors_never_spreads_through_parts() -> None:
    expanded = load_vocabulary("radimagenet", expand_ancestors=True)
    assert expanded.decode(expanded.encode("MR", "breast")) == (["MR"], [])  # trunk's parts are not breast's
    assert expanded.decode(expanded.encode("CT", "chest_abdomen_pelvis"))[1] == ["abdomen", "lung"]


def test_full_profile_keeps_a_multi_region_term_on_its_own_axis() -> None:
    full = load_vocabulary("full")
    assert full.decode(full.encode("CT", "chest_abdomen_pelvis")) == (["CT"], ["chest_abdomen_pelvis"])


# ---- validation of the new fields ---------------------------------------------------------------------
def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("modalities.yaml", "anatomy.yaml", "profiles.yaml"):
        (folder / name).write_text((VOCAB_DIR / name).read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def _edit(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _term(data: dict[str, Any], ident: str) -> dict[str, Any]:
    return next(t for t in data["terms"] if t["id"] == ident)


def _radimagenet(data: dict[str, Any]) -> dict[str, Any]:
    return data["profiles"]["radimagenet"]


@pytest.mark.parametrize("name, change, words", [
    ("anatomy.yaml", lambda d: _term(d, "trunk").update(parts=["chest", "abdomen_pelvs"]),
     "unknown part 'abdomen_pelvs'"),
    ("anatomy.yaml", lambda d: _term(d, "trunk").update(parts=["trunk"]), "is one of its own parts"),
    ("anatomy.yaml", lambda d: _term(d, "phantom").update(non_anatomic="yes"),
     "'non_anatomic' must be true or false"),
    ("profiles.yaml", lambda d: _radimagenet(d).update(multi_region="drop"), "'multi_region' must be one of"),
    ("profiles.yaml", lambda d: _radimagenet(d).update(exclude=[{"modality": "USG", "anatomy": ["heart"]}]),
     "exclude: unknown modality term 'USG'"),
    ("profiles.yaml", lambda d: _radimagenet(d).update(exclude=[{"modality": "US", "anatomy": ["hart"]}]),
     "exclude: unknown anatomy term 'hart'"),
])
def test_bad_parts_flags_and_profile_switches_name_the_file(tmp_path: Path, name: str, change: Any,
                                                            words: str) -> None:
    folder = _copy(tmp_path)
    _edit(folder / name, change)
    with pytest.raises(VocabularyError) as caught:
        check_vocabulary(folder)
    assert name in str(caught.value) and words in str(caught.value)


def test_training_targets_follow_the_modality_exclusions(rin: Vocabulary) -> None:
    import pandas as pd

    from modan_dicom.data.targets import build_targets

    index = pd.DataFrame({"status": ["ok"] * 4, "modality": ["US", "CT", "US", "CT"],
                          "anatomy": ["heart", "heart", "thyroid", "chest_abdomen_pelvis"]})
    targets = build_targets(index, rin)  # an index made with `full` has these rows ok
    assert list(targets.rows) == [1, 2, 3]
