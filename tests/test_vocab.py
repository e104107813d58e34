"""The controlled vocabulary: shipped data, lookups, projection, vectors, validation errors, CLI."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.errors import VocabularyError
from modan_dicom.vocab import VOCAB_DIR, Vocabulary, check_vocabulary, load_vocabulary

# ../shared/reference beside the repository (also in CI); optional
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
needs_reference = pytest.mark.skipif(not (REFERENCE / "bodypart_terms.csv").is_file(),
                                     reason=f"reference tables not found at {REFERENCE}")


@pytest.fixture(scope="module")
def rin() -> Vocabulary:
    return load_vocabulary("radimagenet")


@pytest.fixture(scope="module")
def full() -> Vocabulary:
    return load_vocabulary("full")


def raw_terms() -> list[dict[str, Any]]:
    """anatomy.yaml read directly (an independent view of the data)."""
    return yaml.safe_load((VOCAB_DIR / "anatomy.yaml").read_text(encoding="utf-8"))["terms"]


# ---- shipped data -------------------------------------------------------------------------------------
def test_radimagenet_profile_is_the_papers_12_axes(rin: Vocabulary) -> None:
    assert rin.profile == "radimagenet"
    assert rin.labels == ["CT", "MR", "US", "abdomen", "lung", "ankle_foot", "brain", "hip", "knee", "shoulder",
                          "spine", "thyroid"]
    assert rin.modality_labels == ["CT", "MR", "US"] and len(rin.anatomy_labels) == 9
    vector = rin.encode("MR", "knee")
    assert vector.shape == (12,) and vector.dtype == np.float32
    assert vector.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]


def test_full_profile_has_every_group_and_term(full: Vocabulary) -> None:
    terms = [t["id"] for t in raw_terms()]
    groups = [m["id"] for m in yaml.safe_load((VOCAB_DIR / "modalities.yaml").read_text())["modalities"]]
    assert full.labels == groups + terms
    assert len(set(full.labels)) == len(full.labels)


def test_hierarchy_is_a_tree_with_the_expected_parents(rin: Vocabulary) -> None:
    parents = {t["id"]: t["parent"] for t in raw_terms()}
    for child, parent in [("knee", "lower_limb"), ("lower_limb", "extremity"), ("cervical_spine", "spine"),
                          ("lung", "chest"), ("liver", "abdomen"), ("abdomen", "abdomen_pelvis"),
                          ("brain", "head"), ("thyroid", "neck"), ("ankle", "ankle_foot")]:
        assert parents[child] == parent
    assert rin.ancestors("knee") == ["lower_limb", "extremity"]
    assert rin.ancestors("liver") == ["abdomen", "abdomen_pelvis", "trunk"]
    assert rin.ancestors("spine") == []


@needs_reference
def test_every_body_part_term_maps_to_exactly_one_anatomy_term(rin: Vocabulary) -> None:
    with open(REFERENCE / "bodypart_terms.csv", newline="", encoding="utf-8") as handle:
        terms = {row["term"].strip() for row in csv.DictReader(handle) if row["term"].strip()}
    owners: dict[str, list[str]] = {}
    for term in raw_terms():
        for body_part in term["body_part"] or []:
            owners.setdefault(body_part, []).append(term["id"])
    assert len(terms) > 300
    assert sorted(terms - set(owners)) == []
    assert {t: o for t, o in owners.items() if len(o) != 1} == {}
    for term in terms:
        assert rin.lookup_body_part(term) == owners[term][0], term


@needs_reference
def test_every_radimagenet_folder_resolves_to_its_region(rin: Vocabulary) -> None:
    with open(REFERENCE / "radimagenet_classes.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    axis_of_folder = {"abd": "abdomen", "mriabd": "abdomen", "lung": "lung", "af": "ankle_foot", "brain": "brain",
                      "hip": "hip", "knee": "knee", "shoulder": "shoulder", "spine": "spine"}
    for row in rows:
        folder = row["anatomy_folder"] or row["class_folder"]  # US has no region level: the organ folder
        modality, anatomy = rin.lookup_radimagenet(row["modality"], folder)
        assert modality == row["modality"] and anatomy is not None, folder
        expected = "thyroid" if folder.startswith("thyroid") else axis_of_folder.get(folder, "abdomen")
        assert rin.project_anatomy(anatomy) == expected, folder


def test_radimagenet_folders_keep_the_specific_organ(rin: Vocabulary) -> None:
    assert rin.lookup_radimagenet("US", "gb") == ("US", "gallbladder")
    assert rin.lookup_radimagenet("US", "thyroid_nodule") == ("US", "thyroid")
    assert rin.lookup_radimagenet("US", "portal_vein") == ("US", "portal_vein")
    assert rin.lookup_radimagenet("US", "fibroid") == ("US", "uterus")
    assert rin.lookup_radimagenet("MR", "mriabd") == ("MR", "abdomen")
    assert rin.lookup_radimagenet("CT", "abd") == ("CT", "abdomen")
    assert rin.lookup_radimagenet("MR", "af") == ("MR", "ankle_foot")
    assert rin.lookup_radimagenet("XX", "nowhere") == (None, None)
    for organ in ("aorta", "bladder", "cbd", "ivc", "kidney", "liver", "ovary", "pancreas", "spleen", "uterus"):
        assert rin.project_anatomy(rin.lookup_radimagenet("US", organ)[1]) == "abdomen", organ


# ---- modality ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code, group", [("CT", "CT"), ("MR", "MR"), ("MA", "MR"), ("DX", "XR"), ("CR", "XR"),
                                         ("RF", "XR"), ("XA", "XR"), ("DR", "XR"), ("MG", "MG"), ("ST", "NM"),
                                         ("PT", "PT"), ("EC", "US"), ("CD", "US"), ("US", "US"), ("mr ", "MR"),
                                         ("SC", "OT"), ("OT", "OT"), ("MRI", "MR")])
def test_lookup_modality(rin: Vocabulary, code: str, group: str) -> None:
    assert rin.lookup_modality(code) == group


def test_non_image_codes_and_sop_classes(rin: Vocabulary) -> None:
    for code in ("SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "ECG", "SEG", "DOC", "MS"):
        assert not rin.is_image_modality(code), code
    for code in ("CT", "MR", "US", "DX", "SC", "RTIMAGE", "", None):
        assert rin.is_image_modality(code), code
    assert rin.lookup_modality("SR") is None and rin.lookup_modality("MS") == "MR"
    assert rin.is_non_image("CT", "1.2.840.10008.5.1.4.1.1.88.22")  # an enhanced SR tagged CT
    assert rin.is_non_image(None, "1.2.840.10008.5.1.4.1.1.481.3")  # RT structure set
    assert not rin.is_non_image("SR", "1.2.840.10008.5.1.4.1.1.2")  # a CT image, whatever Modality says
    assert not rin.is_non_image(None, "1.2.840.10008.5.1.4.1.1.481.1")  # RT image
    assert not rin.is_non_image(None, "1.2.840.10008.5.1.4.1.1.8")  # not under .88 (prefix matches at dots)
    assert rin.modality_from_sop_class("1.2.840.10008.5.1.4.1.1.1.1") == "XR"
    assert rin.project_modality("XR") is None and rin.project_modality("US") == "US"


# ---- anatomy lookups -----------------------------------------------------------------------------------
def test_cervical_spine_stays_specific_and_projects_to_spine(rin: Vocabulary, full: Vocabulary) -> None:
    for raw in ("CSPINE", "C-SPINE", "c spine", "Cervical"):
        assert rin.lookup_body_part(raw) == "cervical_spine", raw
    assert rin.match_text("SAG STIR C-SPINE") == "cervical_spine"
    assert rin.project_anatomy("cervical_spine") == "spine"
    assert full.project_anatomy("cervical_spine") == "cervical_spine"
    assert rin.decode(rin.encode("MR", "cervical_spine")) == (["MR"], ["spine"])


def test_head_stays_head_and_projects_onto_brain_in_radimagenet(rin: Vocabulary, full: Vocabulary) -> None:
    # issue 14: RadImageNet's brain classes are head imaging (pituitary, orbit, skull-base lesions)
    assert rin.lookup_body_part("HEAD") == "head" and rin.match_text("CT HEAD WO CONTRAST") == "head"
    assert "head" not in rin.labels and rin.project_anatomy("head") == "brain"
    assert rin.decode(rin.encode("CT", "head")) == (["CT"], ["brain"])
    for term in ("skull", "orbit", "ear", "paranasal_sinus"):
        assert rin.project_anatomy(term) == "brain", term
    assert rin.project_anatomy("brain") == "brain" and full.project_anatomy("head") == "head"


def test_projection_through_the_hierarchy(rin: Vocabulary) -> None:
    expected = {"abdomen_pelvis": "abdomen", "liver": "abdomen", "kidney": "abdomen", "bladder": "abdomen",
                "gallbladder": "abdomen", "chest": "lung", "lung": "lung", "heart": "lung", "ankle": "ankle_foot",
                "foot": "ankle_foot", "toe": "ankle_foot", "lumbar_spine": "spine", "sacrum": "spine",
                "thyroid": "thyroid", "hip": "hip", "knee": "knee", "shoulder": "shoulder", "clavicle": "shoulder",
                "lower_leg": None, "upper_arm": None, "neck": None, "breast": None, "skull": "brain",
                "phantom": None, "test_object": None, "dose_report": None}
    assert {term: rin.project_anatomy(term) for term in expected} == expected


def test_anatomic_region_codes(rin: Vocabulary) -> None:
    assert rin.lookup_anatomy_code("SCT", "72696002") == "knee"
    assert rin.lookup_anatomy_code("SRT", "T-D9200") == "knee"
    assert rin.lookup_anatomy_code("SRT", "t-11501") == "cervical_spine"
    assert rin.lookup_anatomy_code("SCT", "51185008") == "chest"  # pre-2023 code for CHEST
    assert rin.lookup_anatomy_code("SCT", "12738006") == "brain"
    assert rin.lookup_anatomy_code("LN", "72696002") is None  # not a SNOMED scheme
    assert rin.lookup_anatomy_code("SCT", "999999") is None


def test_longest_synonym_wins(rin: Vocabulary) -> None:
    assert rin.match_text("ABD/PELVIS 3.0 B30f") == "abdomen_pelvis"
    assert rin.match_text("CT CHEST ABD PELVIS W CON") == "chest_abdomen_pelvis"
    assert rin.match_text("HEAD/BRAIN") == "brain"
    assert rin.match_text("MRI LUMBAR SPINE WO") == "lumbar_spine"
    assert rin.match_text("THORAX HRCT") == "chest"  # THORAX (6) beats HRCT (4)
    assert rin.match_text("KNEE JOINT") == "knee"
    found = rin.find_text("mri l knee w/o")
    assert found is not None and (found.term, found.synonym, found.start, found.end) == ("knee", "KNEE", 6, 10)


def test_short_tokens_match_whole_words_only(rin: Vocabulary) -> None:
    assert rin.match_text("CT ABD W CON") == "abdomen"
    assert rin.find_text("CT ABD W CON").synonym == "ABD"
    assert rin.find_text("ABDOMINAL").synonym == "ABDOMINAL"  # the long synonym, not ABD inside it
    assert rin.match_text("SHOULDER ABDUCTION") == "shoulder"
    assert rin.match_text("ABDUCTION VIEW") is None
    assert rin.match_text("T2 SAG LS") == "lumbar_spine"
    assert rin.match_text("PULSE SEQUENCE") is None  # LS is not inside PULSE
    assert rin.match_text("L-SPINE ROUTINE") == "lumbar_spine" and rin.match_text("L_SPINE") == "lumbar_spine"
    assert rin.match_text("NEURO^BRAIN") == "brain"
    assert rin.match_text("MAGIC SPINE") == "spine"  # "C SPINE" must start at a word
    assert rin.match_text("CRANIOCAUDAL") is None  # whole-word flagged foreign synonym (Cranio)
    assert rin.match_text("FOREHEAD") is None and rin.match_text("SHIP") is None
    assert rin.match_text("C-ARM FLUORO") is None  # ignored phrase, not the arm


def test_history_of_and_similar_phrases_are_ignored(rin: Vocabulary) -> None:
    assert rin.match_text("MR KNEE W/O CONTRAST, history of hip replacement") == "knee"
    assert rin.match_text("MR KNEE HIP REPLACEMENT") == "knee"  # control: without the rule KNEE still wins
    assert rin.match_text("HIP PAIN, history of shoulder dislocation") == "hip"
    assert rin.match_text("XR HIP hx of knee surgery") == "hip"
    assert rin.match_text("US LIVER s/p cholecystectomy gallbladder") == "liver"
    assert rin.match_text("CT HEAD comparison CHEST ABDOMEN PELVIS") == "head"
    assert rin.match_text("XR WRIST compared with prior shoulder") == "wrist"
    assert rin.match_text("history of knee surgery") is None
    assert rin.match_text("PRIORITY KNEE") == "knee"  # "prior" only as a word


def test_every_synonym_finds_its_own_term(rin: Vocabulary) -> None:
    for term in raw_terms():
        for synonym in term["synonyms"] or []:
            assert rin.match_text(synonym) == term["id"], synonym
            assert rin.match_text(f"MR {synonym} W/O") == term["id"], synonym
            assert rin.lookup_body_part(synonym) == term["id"], synonym
        for value in (term["body_part"] or []) + (term.get("aliases") or []):
            assert rin.lookup_body_part(value) == term["id"], value


def test_lookup_anatomy_prefers_the_exact_body_part(rin: Vocabulary) -> None:
    assert rin.lookup_anatomy("LEG") == "lower_leg" and rin.lookup_anatomy("ARM") == "upper_arm"
    assert rin.lookup_anatomy("Knee Left") == "knee"  # not a term: falls back to free text
    assert rin.lookup_anatomy("XXXXX") is None and rin.lookup_anatomy("") is None and rin.lookup_anatomy(None) is None
    assert rin.lookup_body_part("Schädel") == "skull" and rin.lookup_body_part("HWS") == "cervical_spine"


# ---- vectors -------------------------------------------------------------------------------------------
def test_encode_decode_round_trip(rin: Vocabulary, full: Vocabulary) -> None:
    for vocab in (rin, full):
        for modality in [m.id for m in vocab.modality_terms] + [None]:
            for term in [t.id for t in vocab.anatomy_terms] + [None]:
                vector = vocab.encode(modality, term)
                assert vector.shape == (len(vocab.labels),) and vector.dtype == np.float32
                m_axis, a_axes = vocab.project_modality(modality), vocab.anatomy_axes(term, modality)
                assert vocab.decode(vector) == ([m_axis] if m_axis else [], list(a_axes))
                assert vector.sum() == (m_axis is not None) + len(a_axes)
                assert vocab.project_anatomy(term, modality) == (a_axes[0] if a_axes else None)
    with pytest.raises(ValueError):
        rin.decode(np.zeros(5))
    with pytest.raises(VocabularyError, match="unknown anatomy id 'kneee'"):
        rin.encode("MR", "kneee")
    with pytest.raises(VocabularyError, match="unknown modality id 'DX'"):
        rin.encode("DX", "knee")  # a raw code, not a group id


def test_expand_ancestors_sets_the_enclosing_terms() -> None:
    vocab = load_vocabulary("full", expand_ancestors=True)
    plain = load_vocabulary("full")
    assert vocab is not plain and vocab.expand_ancestors
    parents = {t["id"]: t["parent"] for t in raw_terms()}
    for term in ("knee", "cervical_spine", "liver", "thyroid", "toe", "whole_body"):
        chain, node = [term], term
        while parents[node] is not None:
            node = parents[node]
            chain.append(node)
        assert vocab.decode(vocab.encode("MR", term)) == (["MR"], [t for t in vocab.labels if t in chain]), term
        assert plain.decode(plain.encode("MR", term)) == (["MR"], [term])
    assert set(vocab.decode(vocab.encode(None, "knee"))[1]) == {"knee", "lower_limb", "extremity"}
    # in the 12-axis profile the ancestors of cervical spine project onto the same axis: still one bit
    rin_expanded = load_vocabulary("radimagenet", expand_ancestors=True)
    assert rin_expanded.encode("MR", "cervical_spine").sum() == 2


# ---- loading -------------------------------------------------------------------------------------------
def test_loading_is_cached_and_pickles_by_name(rin: Vocabulary) -> None:
    assert load_vocabulary("radimagenet") is rin and Vocabulary.load("radimagenet") is rin
    assert load_vocabulary(VOCAB_DIR, profile="radimagenet").labels == rin.labels
    assert pickle.loads(pickle.dumps(rin)) is rin


def test_unknown_profile_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="unknown profile 'radimagenett'"):
        load_vocabulary("radimagenett")
    with pytest.raises(VocabularyError, match="no such vocabulary file or folder"):
        load_vocabulary(tmp_path / "missing")
    with pytest.raises(VocabularyError, match=r"profiles.yaml: no profile 'nope'"):
        load_vocabulary(VOCAB_DIR, profile="nope")


def test_builtin_vocabulary_checks_clean() -> None:
    summary = check_vocabulary()
    assert summary.anatomy_terms == len(raw_terms()) and summary.profiles["radimagenet"] == 12
    assert summary.body_part_terms == sum(len(t["body_part"] or []) for t in raw_terms())


# ---- validation errors on small vocabularies -----------------------------------------------------------
def base_vocab() -> dict[str, Any]:
    return {
        "modalities.yaml": {"modalities": [{"id": "CT", "name": "CT", "dicom": ["CT"]},
                                           {"id": "MR", "name": "MR", "dicom": ["MR", "MA"]}],
                            "non_image": ["SR"]},
        "anatomy.yaml": {"ignore_after": ["history of"], "terms": [
            {"id": "body", "name": "Body", "parent": None, "synonyms": ["body"]},
            {"id": "limb", "name": "Limb", "parent": "body", "body_part": ["LIMB"], "synonyms": ["limb"]},
            {"id": "knee", "name": "Knee", "parent": "limb", "snomed": "72696002", "body_part": ["KNEE"],
             "synonyms": ["knee", "knee joint"], "radimagenet": ["knee"]},
            {"id": "chest", "name": "Chest", "parent": "body", "body_part": ["CHEST", "THORAX"],
             "synonyms": ["chest", "thorax"]}]},
        "profiles.yaml": {"profiles": {"small": {"modalities": ["CT", "MR"],
                                                 "anatomy": [{"axis": "knee"}, {"axis": "chest", "covers": ["chest"]}]},
                                       "everything": {"modalities": "all", "anatomy": "all"}}},
    }


def write_vocab(folder: Path, files: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def test_small_vocabulary_from_a_folder_and_a_profile_file(tmp_path: Path) -> None:
    folder = write_vocab(tmp_path / "v", base_vocab())
    vocab = load_vocabulary(folder)  # first profile
    assert vocab.profile == "small" and vocab.labels == ["CT", "MR", "knee", "chest"]
    assert vocab.lookup_modality("MA") == "MR" and not vocab.is_image_modality("SR")
    assert vocab.match_text("MR KNEE, history of chest trauma") == "knee"
    assert vocab.decode(vocab.encode("MR", "knee")) == (["MR"], ["knee"])
    assert load_vocabulary(folder, profile="everything").labels == ["CT", "MR", "body", "limb", "knee", "chest"]
    single = tmp_path / "v" / "mine.yaml"
    single.write_text(yaml.safe_dump({"name": "mine", "modalities": ["MR"], "anatomy": ["limb"]}))
    mine = load_vocabulary(single)
    assert mine.profile == "mine" and mine.project_anatomy("knee") == "limb"
    summary = check_vocabulary(folder)
    assert (summary.anatomy_terms, summary.body_part_terms, summary.profiles) == (4, 4, {"small": 4, "everything": 6})


def mutate(files: dict[str, Any], name: str, change: Any) -> dict[str, Any]:
    change(files[name])
    return files


def _dup_id(a: dict[str, Any]) -> None:
    a["terms"].append({"id": "knee", "name": "Knee again", "parent": "body"})


def _unknown_parent(a: dict[str, Any]) -> None:
    a["terms"][2]["parent"] = "leg"


def _cycle(a: dict[str, Any]) -> None:
    a["terms"][0]["parent"] = "knee"


def _synonym_twice(a: dict[str, Any]) -> None:
    a["terms"][3]["synonyms"].append("Knee-Joint")


def _body_part_twice(a: dict[str, Any]) -> None:
    a["terms"][3]["body_part"].append("KNEE")


def _bad_id(a: dict[str, Any]) -> None:
    a["terms"][1]["id"] = "Limb"


def _unknown_field(a: dict[str, Any]) -> None:
    a["terms"][2]["synonym"] = ["typo"]


def _unknown_axis(p: dict[str, Any]) -> None:
    p["profiles"]["small"]["anatomy"].append({"axis": "lungs"})


def _unknown_cover(p: dict[str, Any]) -> None:
    p["profiles"]["small"]["anatomy"][1]["covers"] = ["thorax"]


def _axis_outside_its_cover(p: dict[str, Any]) -> None:
    p["profiles"]["small"]["anatomy"][1]["covers"] = ["limb"]


def _code_twice(m: dict[str, Any]) -> None:
    m["modalities"][1]["dicom"].append("CT")


@pytest.mark.parametrize("name, change, entry, words", [
    ("anatomy.yaml", _dup_id, "term 'knee'", "duplicate id"),
    ("anatomy.yaml", _unknown_parent, "term 'knee'", "unknown parent 'leg'"),
    ("anatomy.yaml", _cycle, "term 'body'", "parent cycle body -> knee -> limb -> body"),
    ("anatomy.yaml", _synonym_twice, "term 'chest'", "synonym 'Knee-Joint' is already claimed by term 'knee'"),
    ("anatomy.yaml", _body_part_twice, "term 'chest'", "body-part term 'KNEE' is already claimed by term 'knee'"),
    ("anatomy.yaml", _bad_id, "term #2", "lower snake case"),
    ("anatomy.yaml", _unknown_field, "term 'knee'", "unknown field(s) 'synonym'"),
    ("profiles.yaml", _unknown_axis, "profile 'small': anatomy axis 'lungs'", "unknown anatomy term 'lungs'"),
    ("profiles.yaml", _unknown_cover, "profile 'small': anatomy axis 'chest'", "unknown anatomy term 'thorax'"),
    ("profiles.yaml", _axis_outside_its_cover, "profile 'small': anatomy axis 'chest'", "its own term projects"),
    ("modalities.yaml", _code_twice, "modality 'MR'", "DICOM code 'CT' is already claimed by modality 'CT'"),
])
def test_bad_vocabulary_files_name_the_file_and_entry(tmp_path: Path, name: str, change: Any, entry: str,
                                                     words: str) -> None:
    folder = write_vocab(tmp_path / "bad", mutate(base_vocab(), name, change))
    for attempt in (lambda: load_vocabulary(folder), lambda: check_vocabulary(folder)):
        with pytest.raises(VocabularyError) as caught:
            attempt()
        message = str(caught.value)
        assert str(folder / name) in message and entry in message and words in message, message


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    folder = write_vocab(tmp_path / "v", base_vocab())
    (folder / "anatomy.yaml").write_text("terms: [\n  - id: knee\n")
    with pytest.raises(VocabularyError, match=r"anatomy.yaml: line \d+: not valid YAML"):
        load_vocabulary(folder)
    (folder / "anatomy.yaml").unlink()
    with pytest.raises(VocabularyError, match="anatomy.yaml: no such vocabulary file"):
        load_vocabulary(folder)


def test_an_edited_vocabulary_is_reloaded(tmp_path: Path) -> None:
    files = base_vocab()
    folder = write_vocab(tmp_path / "v", files)
    assert load_vocabulary(folder).match_text("patella") is None
    files["anatomy.yaml"]["terms"][2]["synonyms"].append("patella")
    write_vocab(folder, files)
    assert load_vocabulary(folder).match_text("patella") == "knee"


# ---- CLI -----------------------------------------------------------------------------------------------
def test_cli_vocab_show() -> None:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(main, ["vocab", "show", "--profile", "radimagenet"])
    assert result.exit_code == 0, result.output
    for axis in ("abdomen", "ankle_foot", "thyroid", "cervical_spine", "abdomen_pelvis"):
        assert axis in result.output


def test_cli_vocab_check(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["vocab", "check"])
    assert result.exit_code == 0 and result.output.startswith("OK ") and "anatomy terms" in result.output
    good = write_vocab(tmp_path / "good", base_vocab())
    result = runner.invoke(main, ["vocab", "check", str(good)])
    assert result.exit_code == 0 and "4 anatomy terms" in result.output, result.output
    bad = write_vocab(tmp_path / "bad", mutate(base_vocab(), "anatomy.yaml", _cycle))
    result = runner.invoke(main, ["vocab", "check", str(bad)])
    assert result.exit_code == 2 and "parent cycle" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["vocab", "check", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such vocabulary" in result.output


def test_cli_vocab_map() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["vocab", "map", "SAG STIR C-SPINE", "--modality", "MR"])
    assert result.exit_code == 0, result.output
    assert "cervical_spine" in result.output and "C SPINE" in result.output and "spine" in result.output
    assert "[0 1 0 0 0 0 0 0 0 0 1 0]" in result.output
    result = runner.invoke(main, ["vocab", "map", "HEAD", "--profile", "radimagenet"])
    assert result.exit_code == 0 and "head" in result.output and "brain" in result.output
    result = runner.invoke(main, ["vocab", "map", "BREAST", "--profile", "radimagenet"])
    assert result.exit_code == 0 and "breast" in result.output and "no place in this profile" in result.output
    result = runner.invoke(main, ["vocab", "map", "CT C/A/P", "--modality", "CT"])
    assert result.exit_code == 0 and "chest_abdomen_pelvis" in result.output and "abdomen+lung" in result.output
    assert "[1 0 0 1 1 0 0 0 0 0 0 0]" in result.output
    result = runner.invoke(main, ["vocab", "map", "KNEE", "--profile", "nope"])
    assert result.exit_code == 2 and "unknown profile 'nope'" in result.output
