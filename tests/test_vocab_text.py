"""Free text as real archives write it (issue 14, item 4): vendor sequence names, separators, abbreviations,
case and digit changes, compounds, languages, values cut at 64 characters, words inside words, and the
non-anatomic series (item 3) named in any field. The strings are made up the way scanners and people write
them; none is copied from a data set."""

from __future__ import annotations

import pytest

from modan_dicom.ingest.labels import resolve_labels
from modan_dicom.vocab import Vocabulary, load_vocabulary, words


@pytest.fixture(scope="module")
def rin() -> Vocabulary:
    return load_vocabulary("radimagenet")


@pytest.mark.parametrize("text", [
    "t2_tse_tra_384_p2", "t1_fl3d_sag_iso_0.9", "Ax T2 FSE", "Sag T1 FLAIR", "T2W_TSE SENSE", "MP2RAGE_0.8iso",
    "CISS_3D_0.5mm", "ep2d_diff_b50_800_tra", "3MM ART", "Recon 2: PRE", "SPINECHO T1", "AX (TRUE) FISP",
    "DWI b1000 ADC", "Scout", "Series 4", "LS16 STANDARD 1.25", "SAG 3D FSPGR PRE", "PE1 dyn 3dfgre",
])
def test_vendor_sequence_naming_is_not_anatomy(rin: Vocabulary, text: str) -> None:
    assert rin.match_text(text) is None, rin._catalog.matcher.normalise(text)


@pytest.mark.parametrize("text, anatomy", [
    ("t2_tse_tra_Knee_320", "knee"),
    ("Ax T2 FSE L-SPINE", "lumbar_spine"),
    ("T2W_TSE_SAG_CSPINE", "cervical_spine"),
    ("MP2RAGE brain 1mm", "brain"),
    ("CISS 3D IAC", "ear"),
    ("t1_fl3d_vibe_tra Abdomen", "abdomen"),
])
def test_vendor_naming_does_not_block_the_anatomy_beside_it(rin: Vocabulary, text: str, anatomy: str) -> None:
    assert rin.match_text(text) == anatomy


@pytest.mark.parametrize("text, anatomy", [
    ("CT C/A/P W CONTRAST", "chest_abdomen_pelvis"),
    ("CT CH/AB/PEL WO", "chest_abdomen_pelvis"),
    ("CT CAP W", "chest_abdomen_pelvis"),
    ("CT ABD/PEL W+WO", "abdomen_pelvis"),
    ("MR L-SP W/O", "lumbar_spine"),
    ("MRT LWS sag", "lumbar_spine"),
    ("MRT HWS nativ", "cervical_spine"),
    ("MRT BWS", "thoracic_spine"),
    ("CT^THORAX+ABDOMEN", "chest_abdomen"),
    ("TK KLP z kontrastem", "chest_abdomen_pelvis"),
    ("NECK/CHEST/ABD/PEL", "neck_chest_abdomen_pelvis"),
    ("PET-CT skull base to mid-thigh", "whole_body"),
])
def test_separators_and_abbreviations(rin: Vocabulary, text: str, anatomy: str) -> None:
    assert rin.match_text(text) == anatomy


@pytest.mark.parametrize("text, anatomy", [
    ("03_ChestAbdPelvis_Routine", "chest_abdomen_pelvis"),
    ("AbdPelvis_5mm", "abdomen_pelvis"),
    ("MRI_LSpine_SAG", "lumbar_spine"),
    ("CTThoraxAbdomen", "chest_abdomen"),
    ("2ThoraxRoutine (Adult)", "chest"),
    ("PETCT_WB_HEADtoFEET", "whole_body"),
    ("MRIABDOMEN", "abdomen"),
    ("CTABDPELW", "abdomen_pelvis"),
    ("BREASTBILAT DYN", "breast"),  # a known word of 5+ letters may start a longer one
    ("VIRTUAL COLONOSCOPY", "colon"),
])
def test_case_changes_digits_and_compounds(rin: Vocabulary, text: str, anatomy: str) -> None:
    assert rin.match_text(text) == anatomy


def test_words_splits_at_separators_case_and_digits_but_keeps_scanner_codes() -> None:
    assert words("Abdomen^02_0_Abdomen_Pelvis (Adult)") == "ABDOMEN 02 0 ABDOMEN PELVIS ADULT"
    assert words("BrzuchMiednica") == "BRZUCH MIEDNICA"
    assert words("LS16 T2W PE1") == "LS16 T2W PE1"
    assert words("Schädel-Hirn") == "SCHADEL HIRN" and words("Głowa") == "GLOWA"


@pytest.mark.parametrize("text", [
    "CRANIOCAUDAL", "ABDUCTION VIEW", "PULSE SEQ", "TAPE MEASURE", "CAPTURE 2", "SMARTPREP", "LEARNING SET",
])
def test_no_matching_inside_words(rin: Vocabulary, text: str) -> None:
    assert rin.match_text(text) is None


def test_transesophageal_echo_is_heart_imaging_left_out_of_radimagenet_ultrasound(rin: Vocabulary) -> None:
    assert rin.match_text("Transesophageal Echocardiogram") == "heart"  # not esophagus
    labels = resolve_labels({"Modality": "US", "SeriesDescription": "Transesophageal Echocardiogram"}, rin)
    assert labels.anatomy == "heart" and not labels.mapped and labels.multi_hot is None
    assert resolve_labels({"Modality": "US", "StudyDescription": "EC TTE complete"}, rin).mapped is False
    cardiac_ct = resolve_labels({"Modality": "CT", "SeriesDescription": "Cardiac 0.6 CTA"}, rin)
    assert cardiac_ct.mapped and rin.decode(cardiac_ct.multi_hot) == (["CT"], ["lung"])  # chest CT


@pytest.mark.parametrize("text, anatomy", [
    ("CT Schädel nativ", "skull"), ("MRT Kopf", "head"), ("PET-CT Ganzkörper", "whole_body"),
    ("MRT Kniegelenk links", "knee"), ("CT Oberbauch", "abdomen"),                         # German
    ("IRM GENOU DROIT", "knee"), ("TDM THORACO-ABDO-PELVIEN", "chest_abdomen_pelvis"),
    ("IRM ÉPAULE", "shoulder"), ("TDM POUMONS", "lung"),                                    # French
    ("CT thorax buik", "chest_abdomen"), ("MRI knie", "knee"), ("CT hersenen", "brain"),      # Dutch
    ("TC DE TORAX ABDOMEN Y PELVIS", "chest_abdomen_pelvis"), ("RM RODILLA DERECHA", "knee"),
    ("RM CEREBRO", "brain"),                                                                 # Spanish
    ("TC TORACE ADDOME", "chest_abdomen"), ("RM GINOCCHIO SX", "knee"), ("RM SPALLA DX", "shoulder"),  # Italian
    ("TK głowy bez kontrastu", "head"), ("TK klatki piersiowej", "chest"), ("MR kolana", "knee"),
    ("TK jamy brzusznej", "abdomen"),                                                        # Polish
    ("TC DE TÓRAX", "chest"), ("RM DO JOELHO", "knee"), ("RM PELVE", "pelvis"),
    ("TC PULMÃO", "lung"),                                                                   # Portuguese
    ("MRI TOUBU", "head"), ("CT KYOUBU", "chest"), ("FUKUBU CT", "abdomen"),                 # Japanese romaji
])
def test_languages(rin: Vocabulary, text: str, anatomy: str) -> None:
    assert rin.match_text(text) == anatomy


def test_a_value_cut_at_64_characters_may_end_in_a_cut_word(rin: Vocabulary) -> None:
    head = "US FOLLOW UP NODULE SURVEILLANCE BILATERAL LOBES RIGHT LEFT "
    cut = head + "THYRO"[: 64 - len(head)]
    assert len(cut) == 64 and cut.endswith("THYR")
    assert rin.match_text(cut) == "thyroid"
    assert rin.match_text("US NODULE THYR") is None  # a short value was not cut


@pytest.mark.parametrize("raw, marker, source", [
    ({"Modality": "CT", "BodyPartExamined": "LIVER", "SeriesDescription": "Water phantom 120kV"}, "phantom",
     "SeriesDescription"),
    ({"Modality": "MR", "BodyPartExamined": "HEAD", "StudyDescription": "Daily QA"}, "test_object",
     "StudyDescription"),
    ({"Modality": "CT", "BodyPartExamined": "CHEST", "SeriesDescription": "Dose Report"}, "dose_report",
     "SeriesDescription"),
    ({"Modality": "CT", "SeriesDescription": "Patient Protocol"}, "dose_report", "SeriesDescription"),
    ({"Modality": "US", "BodyPartExamined": "ABDOMEN", "SeriesDescription": "Screen Save"}, "screen_capture",
     "SeriesDescription"),
    ({"Modality": "MR", "SeriesDescription": "ASSET calibration", "StudyDescription": "MRI KNEE"}, "test_object",
     "SeriesDescription"),
    ({"Modality": "CT", "BodyPartExamined": "PHANTOM"}, "phantom", "BodyPartExamined"),
])
def test_non_anatomic_series_are_recognised_from_any_field_and_never_labelled(rin: Vocabulary, raw: dict,
                                                                               marker: str, source: str) -> None:
    labels = resolve_labels(raw, rin)
    assert (labels.anatomy, labels.anatomy_source, labels.mapped, labels.multi_hot) == (marker, source, False, None)
    assert rin.is_non_anatomic(labels.anatomy)


def test_localizers_keep_the_anatomy_they_show(rin: Vocabulary) -> None:
    labels = resolve_labels({"Modality": "MR", "BodyPartExamined": "KNEE", "SeriesDescription": "3-pl Localizer"},
                            rin)
    assert labels.mapped and rin.decode(labels.multi_hot) == (["MR"], ["knee"])
    assert rin.find_non_anatomic("Topogram 0.6 T20f") is None and rin.match_text("SCOUT CHEST") == "chest"
