#!/usr/bin/env python
"""Build vocab/{modalities,anatomy,profiles}.yaml from the reference tables and the curated tables below.

The YAML files are the source of truth at run time and ship in the wheel; this script only records how
they were made, so the curation can be reviewed and repeated when the reference tables change::

    python tools/build_vocab.py [--reference ../shared/reference] [--out vocab]

What comes from the reference CSVs (../shared/reference): for every DICOM Body Part Examined defined
term, its SNOMED CT code, legacy SNOMED RT (SRT) code, code meaning and synonyms; the DICOM Modality
terms. What is curated here: the anatomy hierarchy, which anatomy term each body-part term (and each
code-only row) belongs to, the English free-text synonyms and abbreviations found in descriptions, the
synonyms too ambiguous for free text, and the RadImageNet folder codes. Run `modan-dicom vocab check`
afterwards; the tests check full coverage of the body-part table.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modan_dicom.atomic import write_text  # noqa: E402


@dataclass
class Spec:
    """One curated anatomy term."""

    id: str
    name: str
    parent: str | None
    body_part: list[str]
    synonyms: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    whole_word: list[str] = field(default_factory=list)
    radimagenet: list[str] = field(default_factory=list)
    snomed: str | None = None
    snomed_other: list[str] = field(default_factory=list)
    srt: list[str] = field(default_factory=list)
    section: str | None = None


def T(id: str, name: str, parent: str | None, bp: str = "", syn: Iterable[str] = (), alias: Iterable[str] = (),
      ww: Iterable[str] = (), rin: Iterable[str] = (), snomed: str | None = None, other: Iterable[str] = (),
      srt: Iterable[str] = (), section: str | None = None) -> Spec:
    return Spec(id, name, parent, bp.split(), list(syn), list(alias), list(ww), list(rin), snomed, list(other),
                list(srt), section)


# ---- the anatomy hierarchy (parents before children) ------------------------------------------------
TERMS: list[Spec] = [
    T("whole_body", "Whole body", None, "WHOLEBODY", ["whole body", "total body", "wb", "whole-body", "skull to thigh",
      "eyes to thighs", "skeletal survey"], section="whole body and non-anatomic"),
    T("phantom", "Phantom", None, "PHANTOM", ["phantom", "qa phantom"]),
    T("joint", "Joint (unspecified)", None, "JOINT", alias=["Joint", "Intra-articular"]),
    T("cardiovascular_system", "Cardiovascular system", None, "CARDIOVASCSYS", alias=["Cardiovascular system"]),
    T("blood_vessel", "Blood vessel", "cardiovascular_system", "ENDOVASCULAR LUMEN",
      alias=["Blood vessel", "Endo-vascular", "Lumen of blood vessel", "Vascular graft", "Body conduit"]),
    T("artery", "Artery", "blood_vessel", "ARTERY ENDOARTERIAL", alias=["Artery", "Endo-arterial"]),
    T("vein", "Vein", "blood_vessel", "VEIN ENDOVENOUS", alias=["Vein", "Endo-venous", "Venous network"]),

    # head and neck
    T("head_neck", "Head and neck", None, "HEADNECK", ["head and neck", "head neck", "head & neck"],
      section="head and neck"),
    T("head", "Head", "head_neck", "HEAD SCALP OCCPITALA OCCIPTALV", ["head", "scalp", "superficial temporal artery"]),
    T("brain", "Brain", "head",
      "BRAIN CEREBELLUM CEREBHEMISPHERE THALAMUS 3RDVENTRICLE 4THVENTRICLE LATVENTRICLE CHOROIDPLEXUS CIRCLEOFWILLIS "
      "INTRACRANIAL SELLA ACA MCA PCA ANTCOMMA POSCOMMA BASILARA CEREBRALA",
      ["brain", "head brain", "brain head", "cerebrum", "cerebral", "intracranial", "pituitary", "sella", "brainstem",
       "brain stem", "posterior fossa", "circle of willis", "neuro brain", "cerebellar"],
      rin=["brain"]),
    T("skull", "Skull", "head", "SKULL FONTANEL", ["skull", "cranium", "skull base", "calvarium"], ww=["Cranio"]),
    T("face", "Face", "head", "FACE CHEEK ZYGOMA MAXILLA FACIALA",
      ["face", "facial", "facial bones", "maxillofacial", "maxilla", "zygoma", "zygomatic", "midface", "cheek"]),
    T("orbit", "Orbit", "face", "ORBIT EYE EYELID CORNEA SCLERA OPTICCANAL OPHTHALMICA LACRIMALA",
      ["orbit", "orbits", "eye", "eyes", "ocular", "optic nerve", "optic nerves"]),
    T("ear", "Ear and temporal bone", "head", "EAR EAC IAC MASTOID",
      ["ear", "ears", "temporal bone", "temporal bones", "iac", "iacs", "internal auditory canal", "inner ear",
       "mastoid", "mastoids"]),
    T("nose", "Nose", "face", "NOSE ENDONASAL", ["nose", "nasal", "nasal bone", "nasal bones"]),
    T("paranasal_sinus", "Paranasal sinuses", "face", "FRONTALSINUS",
      ["sinus", "sinuses", "paranasal sinus", "paranasal sinuses", "frontal sinus", "maxillary sinus"],
      snomed="2095001"),
    T("mouth", "Mouth", "face", "MOUTH TONGUE LINGUALA", ["mouth", "oral cavity", "tongue"]),
    T("teeth", "Teeth", "face", "", ["teeth", "tooth", "dental", "dentition", "opg", "orthopantomogram", "panoramic"],
      snomed="38199008"),
    T("mandible", "Mandible", "face", "MANDIBLE JAW", ["mandible", "mandibular", "jaw"]),
    T("tmj", "Temporomandibular joint", "face", "TMJ", ["tmj", "tmjs", "temporomandibular joint",
                                                         "temporomandibular joints"]),
    T("neck", "Neck", "head_neck", "NECK SUPRACLAVICULAR EXTJUGV INTJUGULARV VERTEBRALA",
      ["neck", "soft tissue neck", "neck soft tissue", "supraclavicular", "jugular vein", "vertebral artery",
       "vertebral arteries"]),
    T("thyroid", "Thyroid", "neck", "THYROID PARATHYROID SUPTHYROIDA",
      ["thyroid", "thyroid gland", "thyroid nodule", "thyroid nodules", "parathyroid", "parathyroids"],
      rin=["thyroid", "thyroid_nodule"]),
    T("pharynx", "Pharynx", "neck", "PHARYNX NASOPHARYNX HYPOPHARYNX ENDONASOPHARYNYX PHARYNXLARYNX",
      ["pharynx", "nasopharynx", "oropharynx", "hypopharynx", "pharyngeal"]),
    T("larynx", "Larynx", "neck", "LARYNX", ["larynx", "laryngeal", "vocal cords"]),
    T("parotid_gland", "Parotid gland", "neck", "PAROTID", ["parotid", "parotids", "parotid gland"]),
    T("submandibular_gland", "Submandibular gland", "neck", "SUBMANDIBULAR",
      ["submandibular", "submandibular gland", "submandibular glands"]),
    T("carotid_artery", "Carotid artery", "neck", "CAROTID CCA ICA ECA BULB",
      ["carotid", "carotids", "carotid artery", "carotid arteries", "carotid bulb"]),

    # spanning regions (no single-region place: unmapped in radimagenet)
    T("neck_chest", "Neck and chest", None, "NECKCHEST", ["neck and chest"], section="spanning regions"),
    T("neck_chest_abdomen", "Neck, chest and abdomen", None, "NECKCHESTABDOMEN", ["neck chest and abdomen"]),
    T("neck_chest_abdomen_pelvis", "Neck, chest, abdomen and pelvis", None, "NECKCHESTABDPELV",
      ["neck chest abdomen and pelvis"]),
    T("pelvis_lower_limbs", "Pelvis and lower extremities", None, "PELVISLOWEXTREMT",
      ["pelvis and lower extremities", "pelvis lower extremities", "pelvis and legs"]),

    # trunk
    T("trunk", "Trunk", None, "TRUNK", ["torso"], alias=["Trunk"], section="trunk"),
    T("chest_abdomen", "Chest and abdomen", "trunk", "CHESTABDOMEN", ["chest and abdomen", "thorax and abdomen"]),
    T("chest_abdomen_pelvis", "Chest, abdomen and pelvis", "trunk", "CHESTABDPELVIS",
      ["chest abdomen and pelvis", "chest abd and pelvis", "thorax abdomen and pelvis"]),
    T("chest", "Chest", "trunk", "CHEST THORAX UPPERTRUNK PARASTERNAL INTMAMMARYA SUBCLAVIANA SUBCLAVIANV PULMONARYA "
      "LPULMONARYA RPULMONARYA PULMONARYV LSUPPULMONARYV RSUPPULMONARYV",
      ["chest", "thorax", "thoracic cavity", "chest wall", "cxr", "chest xray", "chest x ray", "tórax", "pulmonary artery",
       "pulmonary arteries", "cta chest"],
      rin=[], other=["51185008"], srt=["T-D3000"]),
    T("lung", "Lung", "chest", "LUNG BRONCHUS TRACHEA TRACHEABRONCHUS",
      ["lung", "lungs", "pulmonary", "hrct", "bronchus", "bronchi", "trachea", "airway", "airways", "lung apex"],
      rin=["lung"]),
    T("mediastinum", "Mediastinum", "chest", "MEDIASTINUM THYMUS AZYGOSVEIN SVC INNOMINATEA INNOMINATEV",
      ["mediastinum", "mediastinal", "thymus", "superior vena cava"]),
    T("heart", "Heart", "mediastinum", "HEART ENDOCARDIAC LATRIUM RATRIUM LVENTRICLE RVENTRICLE CORONARYARTERY "
      "CORONARYSINUS ANTCARDIACV",
      ["heart", "cardiac", "coronary", "coronaries", "coronary arteries", "myocardium", "myocardial", "pericardium",
       "left ventricle", "right ventricle"]),
    T("esophagus", "Esophagus", "mediastinum", "ESOPHAGUS ENDOESOPHAGEAL",
      ["esophagus", "oesophagus", "esophageal", "oesophageal", "barium swallow", "swallow"]),
    T("thoracic_aorta", "Thoracic aorta", "mediastinum", "THORACICAORTA ASCAORTA AORTICARCH DESCAORTA",
      ["thoracic aorta", "aortic arch", "ascending aorta", "descending aorta"]),
    T("rib", "Ribs", "chest", "RIB", ["rib", "ribs"]),
    T("sternum", "Sternum", "chest", "STERNUM", ["sternum", "sternal"]),
    T("breast", "Breast", "trunk", "BREAST",
      ["breast", "breasts", "mammo", "mammogram", "mammography", "bilateral breasts"]),
    T("back", "Back", "trunk", "BACK", ["back", "upper back", "lower back"]),
    T("aorta", "Aorta", "trunk", "AORTA", ["aorta", "aortic", "entire aorta"]),

    # abdomen and pelvis
    T("abdomen_pelvis", "Abdomen and pelvis", "trunk", "ABDOMENPELVIS LOWERTRUNK",
      ["abdomen and pelvis", "abd and pelvis", "abd pelvis", "abd/pelvis", "abdo pelvis", "abdominopelvic",
       "abdomen pelvis", "abdpelvis", "abd pel", "abdomen/pelvis", "lower trunk"],
      other=["416949008"], section="abdomen and pelvis"),
    T("abdomen", "Abdomen", "abdomen_pelvis",
      "ABDOMEN EPIGASTRIC UMBILICAL RUQ LUQ RLQ LLQ RHYPOCHONDRIAC LHYPOCHONDRIAC RLUMBAR LLUMBAR FLANK SUBCOSTAL "
      "MORISONSPOUCH CELIACA SMA INFMESA MESENTRICA MESENTRICV LUMBARA",
      ["abdomen", "abd", "abdo", "abdominal", "upper abdomen", "abdomen complete", "mesenteric", "mesentery",
       "celiac", "omentum", "peritoneum", "peritoneal", "abdominal wall"],
      rin=["abd", "mriabd"], other=["113345001"], srt=["T-D4000"]),
    T("liver", "Liver", "abdomen", "LIVER HEPATICA HEPATICV LHEPATICV RHEPATICV MIDHEPATICV",
      ["liver", "hepatic", "hepatic veins"], rin=["liver"]),
    T("portal_vein", "Portal vein", "abdomen", "PORTALV LPORTALV RPORTALV", ["portal vein", "portal veins"],
      rin=["portal_vein"]),
    T("biliary_tract", "Biliary tract", "abdomen", "BILIARYTRACT BILEDUCT PANCBILEDUCT",
      ["biliary", "biliary tree", "bile duct", "bile ducts", "mrcp", "hepatobiliary", "ercp"]),
    T("gallbladder", "Gallbladder", "biliary_tract", "GALLBLADDER", ["gallbladder", "gall bladder", "gb"], rin=["gb"]),
    T("common_bile_duct", "Common bile duct", "biliary_tract", "COMMONBILEDUCT",
      ["common bile duct", "cbd", "choledochus"], rin=["cbd"]),
    T("pancreas", "Pancreas", "abdomen", "PANCREAS PANCREATICDUCT", ["pancreas", "pancreatic", "pancreatic duct"],
      rin=["pancreas"]),
    T("spleen", "Spleen", "abdomen", "SPLEEN SPLENICA SPLENICV", ["spleen", "splenic"], rin=["spleen"]),
    T("kidney", "Kidney", "abdomen", "KIDNEY ENDORENAL RENALA RENALV",
      ["kidney", "kidneys", "renal", "renal artery", "renal arteries", "renal pelvis", "calyx"], rin=["kidney"]),
    T("adrenal_gland", "Adrenal gland", "abdomen", "ADRENAL", ["adrenal", "adrenals", "adrenal gland", "adrenal glands"]),
    T("stomach", "Stomach", "abdomen", "STOMACH GASTRICV UGITRACT",
      ["stomach", "gastric", "upper gi", "ugi", "esophagus stomach duodenum"]),
    T("small_bowel", "Small bowel", "abdomen", "SMALLINTESTINE DUODENUM JEJUNUM ILEUM",
      ["small bowel", "small intestine", "duodenum", "jejunum", "ileum", "enterography", "enteroclysis"]),
    T("colon", "Colon", "abdomen", "COLON LARGEINTESTINE ASCENDINGCOLON TRANSVERSECOLON DESCENDINGCOLON SIGMOID APPENDIX",
      ["colon", "colonography", "large bowel", "large intestine", "sigmoid", "appendix", "cecum", "caecum"]),
    T("abdominal_aorta", "Abdominal aorta", "abdomen", "ABDOMINALAORTA", ["abdominal aorta", "aaa"], rin=["aorta"]),
    T("inferior_vena_cava", "Inferior vena cava", "abdomen", "INFVENACAVA", ["inferior vena cava", "ivc"],
      rin=["ivc"]),
    T("retroperitoneum", "Retroperitoneum", "abdomen", "RETROPERITONEUM", ["retroperitoneum", "retroperitoneal"]),
    T("urinary_tract", "Urinary tract", "abdomen_pelvis", "URINARYTRACT UPRURINARYTRACT",
      ["urinary tract", "kub", "urogram", "urography", "ivp"]),
    T("ureter", "Ureter", "urinary_tract", "URETER ENDOURETERIC", ["ureter", "ureters"]),
    T("pelvis", "Pelvis", "abdomen_pelvis",
      "PELVIS HYPOGASTRIC SUPRAPUBIC INGUINAL LINGUINAL RINGUINAL CULDESAC ILIUM SIJOINT ILIACA ILIACV COMILIACA "
      "COMILIACV INTILIACA EXTILIACA EXTILIACV",
      ["pelvis", "pelvic", "bony pelvis", "female pelvis", "male pelvis", "groin", "iliac", "sacroiliac",
       "si joint", "si joints", "sacroiliac joints"],
      other=["12921003"], srt=["T-D6000"]),
    T("bladder", "Urinary bladder", "pelvis", "BLADDER BLADDERURETHRA ENDOVESICAL URETHRA ENDOURETHRAL",
      ["bladder", "urinary bladder", "urethra", "cystogram", "vcug"], rin=["bladder"]),
    T("uterus", "Uterus", "pelvis", "UTERUS ENDOMETRIUM CERVIX",
      ["uterus", "uterine", "endometrium", "endometrial", "cervix", "fibroid", "fibroids", "myometrium"],
      rin=["uterus", "fibroid"]),
    T("fetus", "Fetus and gestation", "uterus", "FETALARM FETALDIGIT FETALHEART FETALLEG FETALPOLE GESTSAC AMNIOTICFLUID "
      "UMBILICALA UMBILICALV",
      ["fetus", "fetal", "foetal", "foetus", "obstetric", "obstetrical", "ob", "gestational sac", "amniotic fluid",
       "umbilical cord", "pregnancy", "first trimester", "second trimester", "third trimester"]),
    T("placenta", "Placenta", "uterus", "PLACENTA", ["placenta", "placental"]),
    T("ovary", "Ovary", "pelvis", "OVARY", ["ovary", "ovaries", "adnexa", "adnexal", "ovarian"], rin=["ovary"]),
    T("vagina", "Vagina", "pelvis", "VAGINA ENDOVAGINAL", ["vagina", "vaginal", "transvaginal"]),
    T("perineum", "Perineum", "pelvis", "PERINEUM VULVA", ["perineum", "perineal", "vulva"]),
    T("rectum", "Rectum and anus", "pelvis", "RECTUM ENDORECTAL ANUSRECTUMSIGMD ANUS",
      ["rectum", "rectal", "anus", "anal", "transrectal", "perianal"]),
    T("prostate", "Prostate", "pelvis", "PROSTATE SEMVESICLE", ["prostate", "seminal vesicle", "seminal vesicles"]),
    T("scrotum", "Scrotum and testes", "pelvis", "SCROTUM TESTIS EPIDIDYMIS",
      ["scrotum", "scrotal", "testis", "testes", "testicle", "testicles", "testicular", "epididymis"]),
    T("penis", "Penis", "pelvis", "PENIS PENILEA", ["penis", "penile"]),
    T("buttock", "Buttock", "pelvis", "BUTTOCK GLUTEAL", ["buttock", "buttocks", "gluteal"]),

    # spine
    T("spine", "Spine", None, "SPINE SPINALCORD ANTSPINALA",
      ["spine", "whole spine", "total spine", "entire spine", "spinal", "spinal cord", "vertebral column", "myelogram",
       "vertebral column and cranium"], rin=["spine"], section="spine"),
    T("cervical_spine", "Cervical spine", "spine", "CSPINE ATLANTOAXIAL ATLANTOOCCIPITAL",
      ["cervical spine", "c spine", "c-spine", "cspine", "c-spine", "cervical vertebrae", "cervical cord",
       "craniocervical", "craniocervical junction"]),
    T("cervicothoracic_spine", "Cervico-thoracic spine", "spine", "CTSPINE",
      ["cervicothoracic spine", "cervico thoracic spine", "c t spine"]),
    T("thoracic_spine", "Thoracic spine", "spine", "TSPINE",
      ["thoracic spine", "t spine", "t-spine", "tspine", "dorsal spine", "thoracic vertebrae", "thoracic cord"]),
    T("thoracolumbar_spine", "Thoraco-lumbar spine", "spine", "TLSPINE",
      ["thoracolumbar spine", "thoraco lumbar spine", "t l spine", "tl spine"]),
    T("lumbar_spine", "Lumbar spine", "spine", "LSPINE LUMBAR",
      ["lumbar spine", "l spine", "l-spine", "lspine", "ls", "lumbar", "lumbar vertebrae", "lumbar region"]),
    T("lumbosacral_spine", "Lumbo-sacral spine", "spine", "LSSPINE",
      ["lumbosacral spine", "lumbosacral", "ls spine", "l s spine"]),
    T("sacrum", "Sacrum", "spine", "SSPINE", ["sacrum", "sacral", "sacral spine"]),
    T("coccyx", "Coccyx", "spine", "COCCYX TAIL", ["coccyx", "coccygeal", "tailbone"]),

    # limbs
    T("extremity", "Extremity", None, "EXTREMITY LEGS DIGIT DISTALPHALANX", ["extremities", "limbs", "limb"],
      alias=["Extremity", "Extremety", "Extremidad", "Digit", "Distal phalanx"], section="limbs"),
    T("upper_limb", "Upper limb", "extremity", "UPPERLIMB CEPHALICV WING",
      ["upper limb", "upper limbs", "upper extremity", "upper extremities", "rue", "lue", "cephalic vein",
       "bone of upper limb", "muscle of upper limb"], alias=["Wing"]),
    T("shoulder", "Shoulder", "upper_limb", "SHOULDER ACJOINT SCAPULA",
      ["shoulder", "shoulders", "rotator cuff", "scapula", "ac joint", "acromioclavicular", "glenohumeral",
       "shoulder girdle"], rin=["shoulder"]),
    T("clavicle", "Clavicle", "shoulder", "CLAVICLE SCJOINT",
      ["clavicle", "clavicles", "collarbone", "sternoclavicular", "sc joint"]),
    T("axilla", "Axilla", "upper_limb", "AXILLA AXILLARYA AXILLARYV", ["axilla", "axillary", "axillae"]),
    T("upper_arm", "Upper arm", "upper_limb", "UPPERARM ARM HUMERUS BRACHIALA BRACHIALV",
      ["upper arm", "arm", "arms", "humerus", "humeral"], alias=["O ARM", "UP_EXM"]),
    T("elbow", "Elbow", "upper_limb", "ELBOW ANTECUBITALV", ["elbow", "elbows", "elbow joint", "antecubital"]),
    T("forearm", "Forearm", "upper_limb", "FOREARM RADIUS ULNA RADIUSULNA RADIALA ULNARA",
      ["forearm", "forearms", "radius", "ulna", "radial artery"], alias=["Underarm"]),
    T("wrist", "Wrist", "upper_limb", "WRIST CARPUS", ["wrist", "wrists", "carpal", "carpus", "scaphoid"]),
    T("hand", "Hand", "upper_limb", "HAND METACARPUS FOREFETLOCK FOREPASTERN FORENAVICULAR",
      ["hand", "hands", "metacarpal", "metacarpals"]),
    T("finger", "Finger", "hand", "FINGER THUMB", ["finger", "fingers", "thumb", "thumbs"]),
    T("lower_limb", "Lower limb", "extremity", "LOWERLIMB GSV SAPHENOUSV",
      ["lower limb", "lower limbs", "lower extremity", "lower extremities", "rle", "lle", "runoff", "run off",
       "saphenous vein", "bone of lower limb", "muscle of lower limb", "leg veins"]),
    T("hip", "Hip", "lower_limb", "HIP", ["hip", "hips", "hip joint", "femoral head", "acetabulum", "acetabular"],
      rin=["hip"]),
    T("thigh", "Thigh", "lower_limb", "THIGH FEMUR FEMORALA FEMORALV SFA SFV CFA CFV PROFFEMA PROFFEMV LFEMORALA "
      "RFEMORALA SFJ",
      ["thigh", "thighs", "femur", "femoral", "femoral artery", "femoral vein"]),
    T("knee", "Knee", "lower_limb", "KNEE PATELLA POPLITEALFOSSA POPLITEALA POPLITEALV GENICULARA STIFLE",
      ["knee", "knees", "knee joint", "patella", "patellar", "popliteal", "meniscus", "acl"], rin=["knee"]),
    T("lower_leg", "Lower leg", "lower_limb", "LOWERLEG LEG TIBIA FIBULA TIBIAFIBULA CALF ANTTIBIALA POSTIBIALA PERONEALA",
      ["lower leg", "leg", "tibia", "fibula", "tib fib", "tibia fibula", "calf", "shin"]),
    T("ankle_foot", "Ankle and foot", "lower_limb", "",
      ["ankle foot", "foot ankle", "ankle and foot", "foot and ankle"], rin=["af"]),
    T("ankle", "Ankle", "ankle_foot", "ANKLE TARSUS", ["ankle", "ankles", "ankle joint", "achilles", "talus"]),
    T("foot", "Foot", "ankle_foot",
      "FOOT CALCANEUS SESAMOID FOREFOOT HINDFOOT METATARSUS HINDFETLOCK HINDPASTERN HINDNAVICULAR",
      ["foot", "feet", "forefoot", "hindfoot", "midfoot", "calcaneus", "calcaneal", "heel", "metatarsal",
       "metatarsals", "tarsal"]),
    T("toe", "Toe", "foot", "TOE", ["toe", "toes", "hallux"]),
]

# code-only rows of bodypart_terms.csv (no Body Part Examined term): code meaning -> anatomy id
CODE_ONLY = {
    "Anomalous pulmonary vein": "heart", "Anus": "rectum", "Aortic fistula": "aorta",
    "Apex of left ventricle": "heart", "Apex of Lung": "lung", "Apex of right ventricle": "heart", "Atrium": "heart",
    "Baffle": "heart", "Body conduit": "blood_vessel", "Bone of lower limb": "lower_limb",
    "Bone of upper limb": "upper_limb", "Boyd's perforating vein": "lower_leg", "Broad ligament": "uterus",
    "Buccal region of face": "face", "Calyx": "kidney", "Common atrium": "heart", "Common ventricle": "heart",
    "Congenital coronary artery fistula to left atrium": "heart",
    "Congenital coronary artery fistula to left ventricle": "heart",
    "Congenital coronary artery fistula to right atrium": "heart",
    "Congenital coronary artery fistula to right ventricle": "heart", "Pulmonary arteriovenous fistula": "lung",
    "Cranial venous system": "brain", "Dodd's perforating vein": "thigh",
    "Esophagus, stomach and duodenum": "stomach", "Eye region": "orbit", "Facial bones": "face",
    "Great cardiac vein": "heart", "Hunterian perforating vein": "thigh", "Iliac and/or femoral artery": "pelvis",
    "Inferior cardiac vein": "heart", "Inferior left pulmonary vein": "chest", "Inferior right pulmonary vein": "chest",
    "Intra-abdominopelvic": "abdomen_pelvis", "Intra-articular": "joint", "Intra-esophageal": "esophagus",
    "Intra-pelvic": "pelvis", "Intra-thoracic": "chest", "Juxtaposed atrial appendage": "heart",
    "Lacrimal artery of right eye": "orbit", "Left auricular appendage": "heart", "Left ventricle inflow": "heart",
    "Left ventricle outflow tract": "heart", "Lower inner quadrant of breast": "breast",
    "Lower outer quadrant of breast": "breast", "Upper inner quadrant of breast": "breast",
    "Upper outer quadrant of breast": "breast", "Muscle of lower limb": "lower_limb",
    "Muscle of upper limb": "upper_limb", "Nasal bone": "nose", "Omental bursa": "abdomen", "Omentum": "abdomen",
    "Paranasal sinus": "paranasal_sinus", "Patent ductus arteriosus": "heart", "Posterior medial tributary": "lower_leg",
    "Primitive aorta": "aorta", "Primitive pulmonary artery": "chest", "Pulmonary artery conduit": "heart",
    "Pulmonary chamber of cor triatriatum": "heart", "Pulmonary vein confluence": "heart",
    "Pulmonary venous atrium": "heart", "Renal pelvis": "kidney", "Right auricular appendage": "heart",
    "Right ventricle inflow": "heart", "Right ventricle outflow tract": "heart", "Submandibular area": "neck",
    "Submental": "neck", "Subxiphoid": "chest", "Superficial temporal artery": "head",
    "Suprasternal notch": "chest", "Systemic collateral artery to lung": "lung", "Systemic venous atrium": "heart",
    "Tarsal joint": "foot", "Truncus arteriosus communis": "heart", "Truncus coeliacus": "abdomen",
    "Uterus and fallopian tubes": "uterus", "Vascular graft": "blood_vessel", "Venous network": "vein",
    "Ventricle": "heart", "Vertebral column and cranium": "spine", "Calcaneal tubercle": "foot",
    "Mandibular dental arch": "teeth", "Mandibular incisor teeth": "teeth", "Maxillary dental arch": "teeth",
    "Maxillary incisor teeth": "teeth", "Nasal sinus": "paranasal_sinus",
}

# Reference synonyms / meanings too ambiguous for free text (they stay exact-match aliases for Body Part
# Examined): CS = compressed sensing, PV = portal venous phase, Cervical = cervix, Dorsal = a view,
# Underarm = axilla in English, O ARM = an imaging system, JOINT would beat KNEE in "KNEE JOINT", ...
TEXT_DENY = {
    "CS", "PV", "CERVICAL", "CERVIC", "CERVICALE", "THORACIC", "THORACIQUE", "DORSAL", "LOMBAIRE", "UNDERARM", "OARM",
    "RIPPE", "POTTER", "TORSE", "BORST", "PIE", "SCHDEL", "JOINT", "INTRAARTICULAR", "ARTERY", "ENDOARTERIAL", "VEIN",
    "ENDOVENOUS", "VENOUSNETWORK", "BLOODVESSEL", "ENDOVASCULAR", "LUMEN", "LUMENOFBLOODVESSEL", "VASCULARGRAFT",
    "BODYCONDUIT", "CARDIOVASCULARSYSTEM", "CARDIOVASCSYS", "TAIL", "WING", "DIGIT", "DISTALPHALANX", "BULB", "TRUNK",
    "VENTRICLE", "ATRIUM", "CTSPINE", "EXTREMITY", "EXTREMETY", "EXTREMIDAD", "BAFFLE", "UPEXM", "PHARYNXLARYNX",
}
# Short foreign words that would otherwise match inside English words (substring rule for > 4 chars).
WHOLE_WORD = {"CRANIO", "COLLO", "VENTRE", "KALLO", "ENKEL", "TORACE"}

# Phrases removed from free text before matching, and phrases after which the text is ignored.
IGNORE_PHRASES = ["C ARM", "O ARM", "HEAD FIRST", "FEET FIRST"]
IGNORE_AFTER = ["history of", "hx of", "h/o", "s/p", "status post", "prior", "compared with", "compared to",
                "comparison", "previous"]

# ---- modalities ------------------------------------------------------------------------------------
_SOP = "1.2.840.10008.5.1.4.1.1."
MODALITIES = [
    dict(id="CT", name="Computed tomography", dicom=["CT"], radimagenet=["CT"], aliases=["CAT"],
         sop_classes=[_SOP + "2", _SOP + "2.1", _SOP + "2.2"]),
    dict(id="MR", name="Magnetic resonance", dicom=["MR", "MA", "MS"], radimagenet=["MR"], aliases=["MRI", "NMR"],
         sop_classes=[_SOP + "4", _SOP + "4.1", _SOP + "4.3", _SOP + "4.4"]),
    dict(id="US", name="Ultrasound", dicom=["US", "CD", "DD", "EC", "IVUS", "BDUS"], radimagenet=["US"],
         aliases=["ULTRASOUND", "SONO", "SONOGRAPHY", "ECHO"],
         sop_classes=[_SOP + "6.1", _SOP + "6.2", _SOP + "3.1", _SOP + "6", _SOP + "3"]),
    dict(id="XR", name="Projection radiography and fluoroscopy",
         dicom=["CR", "DX", "DR", "RG", "RF", "XA", "PX", "IO", "DF", "DS", "VF", "CF", "BMD"], radimagenet=[],
         aliases=["XRAY", "X-RAY", "RADIOGRAPH", "DXA", "DEXA"],
         sop_classes=[_SOP + "1", _SOP + "1.1", _SOP + "1.1.1", _SOP + "1.3", _SOP + "1.3.1", _SOP + "12.1",
                      _SOP + "12.1.1", _SOP + "12.2", _SOP + "12.2.1"]),
    dict(id="MG", name="Mammography", dicom=["MG"], radimagenet=[], aliases=["MAMMO", "MAMMOGRAPHY"],
         sop_classes=[_SOP + "1.2", _SOP + "1.2.1", _SOP + "13.1.3"]),
    dict(id="NM", name="Nuclear medicine (incl. SPECT)", dicom=["NM", "ST"], radimagenet=[], aliases=["SPECT"],
         sop_classes=[_SOP + "20"]),
    dict(id="PT", name="Positron emission tomography", dicom=["PT"], radimagenet=[], aliases=["PET"],
         sop_classes=[_SOP + "128", _SOP + "128.1", _SOP + "130"]),
    dict(id="ES", name="Endoscopy", dicom=["ES", "AS", "CP", "CS", "LP"], radimagenet=[], aliases=["ENDOSCOPY"],
         sop_classes=[]),
    dict(id="SM", name="Microscopy", dicom=["SM", "GM", "CFM", "DM"], radimagenet=[], aliases=["MICROSCOPY"],
         sop_classes=[]),
    dict(id="XC", name="Photography and dermoscopy", dicom=["XC", "DMS", "VL"], radimagenet=[], aliases=["PHOTO"],
         sop_classes=[]),
    dict(id="OP", name="Ophthalmic imaging", dicom=["OP", "OPT", "OPTENF", "FA", "FS"], radimagenet=[], aliases=[],
         sop_classes=[]),
    dict(id="OCT", name="Optical coherence tomography (non-ophthalmic)", dicom=["OCT", "IVOCT"], radimagenet=[],
         aliases=[], sop_classes=[]),
    dict(id="RTIMAGE", name="Radiotherapy image", dicom=["RTIMAGE"], radimagenet=[], aliases=[],
         sop_classes=[_SOP + "481.1"]),
    dict(id="OT", name="Other and secondary capture", dicom=["OT", "SC", "BI", "DG", "LS", "OSS", "PA", "TG"],
         radimagenet=[], aliases=[],
         sop_classes=[_SOP + "7", _SOP + "7.1", _SOP + "7.2", _SOP + "7.3", _SOP + "7.4"]),
]
# SOP class UIDs (and every UID below them) of objects without an image.
NON_IMAGE_SOP = [
    (_SOP + "88", "Structured reports and key object selection"),
    (_SOP + "11", "Presentation states"),
    (_SOP + "9", "Waveforms"),
    (_SOP + "104", "Encapsulated documents"),
    (_SOP + "66", "Raw data, registration, fiducials, segmentation"),
    (_SOP + "67", "Real world value mapping"),
    (_SOP + "68", "Surface scans"),
    (_SOP + "4.2", "MR spectroscopy"),
    *[(_SOP + f"481.{i}", "Radiotherapy objects without an image") for i in range(2, 10)],
    *[(_SOP + f"{i}", "Ophthalmic measurements") for i in (78, 79, 80, 81, 82)],
    (_SOP + "200", "Protocol storage"),
    ("1.2.840.10008.5.1.4.34", "Radiotherapy second-generation objects"),
    ("1.2.840.10008.5.1.4.38", "Hanging protocols"),
    ("1.2.840.10008.5.1.4.39", "Color palettes"),
    ("1.2.840.10008.1.3.10", "Media storage directory (DICOMDIR)"),
]

PROFILES = {
    "radimagenet": dict(
        description="The paper's 12-dim target: RadImageNet's 3 modalities and 9 regions (ModAn-MulSupCon).",
        modalities=["CT", "MR", "US"],
        anatomy=[dict(axis="abdomen", covers=["abdomen_pelvis"]), dict(axis="lung", covers=["chest"]),
                 dict(axis="ankle_foot", covers=["ankle_foot"]), dict(axis="brain", covers=["brain"]),
                 dict(axis="hip", covers=["hip"]), dict(axis="knee", covers=["knee"]),
                 dict(axis="shoulder", covers=["shoulder"]), dict(axis="spine", covers=["spine"]),
                 dict(axis="thyroid", covers=["thyroid"])]),
    "full": dict(description="Every modality group and every anatomy term as its own axis.",
                 modalities="all", anatomy="all"),
}


# ---- building --------------------------------------------------------------------------------------
def compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.upper())


def spaced_form(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.upper()).split())


def read_rows(reference: Path) -> list[dict[str, str]]:
    with open(reference / "bodypart_terms.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build_anatomy(rows: list[dict[str, str]]) -> tuple[list[dict], list[str]]:
    """Merge the curated specs with the reference rows; returns (terms, notes about dropped entries)."""
    specs = {s.id: s for s in TERMS}
    owner_of_bp = {bp: s.id for s in TERMS for bp in s.body_part}
    notes: list[str] = []
    missing = sorted({r["term"] for r in rows if r["term"] and r["term"] not in owner_of_bp})
    if missing:
        raise SystemExit(f"body-part terms without an anatomy term: {', '.join(missing)}")
    unknown = sorted(m for m in {r["code_meaning"] for r in rows if not r["term"]} if m not in CODE_ONLY)
    if unknown:
        raise SystemExit(f"code-only rows without an anatomy term: {unknown}")
    # order rows: current human table first, then veterinary / legacy / newer, code-only rows last
    rows = sorted(rows, key=lambda r: (not r["term"], not r["table"].startswith("L-1")))

    code_owner: dict[str, str] = {}
    srt_owner: dict[str, str] = {}
    for s in TERMS:
        for code in ([s.snomed] if s.snomed else []) + s.snomed_other:
            code_owner.setdefault(code, s.id)
        for code in s.srt:
            srt_owner.setdefault(code, s.id)
    extra: dict[str, dict[str, list[str]]] = {s.id: {"codes": [], "srt": [], "syn": [], "alias": []} for s in TERMS}
    for row in rows:
        tid = owner_of_bp[row["term"]] if row["term"] else CODE_ONLY[row["code_meaning"]]
        sct = row["snomed_code"].strip()
        if sct and row["coding_scheme"] == "SCT":
            owner = code_owner.setdefault(sct, tid)
            if owner == tid:
                extra[tid]["codes"].append(sct)
            else:
                notes.append(f"SCT {sct} ({row['code_meaning']}) kept on {owner}, not {tid}")
        srt = row["snomed_rt_legacy"].strip()
        if srt:
            owner = srt_owner.setdefault(srt, tid)
            if owner == tid:
                extra[tid]["srt"].append(srt)
            else:
                notes.append(f"SRT {srt} ({row['code_meaning']}) kept on {owner}, not {tid}")
        words = [row["code_meaning"]] + [w for w in row["synonyms"].split("|") if w.strip()]
        if row["term"]:
            words.append(row["term"])
        for word in words:
            key = compact(word)
            if not key:
                continue
            bucket = "alias" if key in TEXT_DENY else "syn"
            extra[tid][bucket].append(word.strip())

    claimed: dict[str, str] = {}  # compact key -> term id (body parts first: they are never dropped)
    for s in TERMS:
        for bp in s.body_part:
            claimed[compact(bp)] = s.id
    out: list[dict] = []
    for s in TERMS:
        codes = list(dict.fromkeys(extra[s.id]["codes"]))
        primary = s.snomed  # else the code of the term's first body part (codes of merged parts go to other)
        if primary is None and s.body_part:
            first = next((r for r in rows if r["term"] == s.body_part[0] and r["coding_scheme"] == "SCT"), None)
            if first and code_owner.get(first["snomed_code"]) == s.id:
                primary = first["snomed_code"]
        other = [c for c in dict.fromkeys(s.snomed_other + codes) if c != primary]

        def take(words: Iterable[str], kind: str) -> list[str]:
            # conflicts between terms are judged on the compact key (what exact lookups compare);
            # spellings of one term are kept while they differ in word breaks (what free text compares)
            kept: list[str] = []
            seen: set[str] = set()
            for word in words:
                key = compact(word)
                spaced = spaced_form(word)
                if not key or spaced in seen:
                    continue
                owner = claimed.setdefault(key, s.id)
                if owner != s.id:
                    notes.append(f"{kind} {word!r} of {s.id} dropped: already claimed by {owner}")
                    continue
                seen.add(spaced)
                kept.append(word)
            return kept

        synonyms = take([s.name] + s.synonyms + extra[s.id]["syn"], "synonym")
        syn_keys = {compact(w) for w in synonyms}
        bp_keys = {compact(b) for b in s.body_part}
        aliases = [a for a in take(s.aliases + extra[s.id]["alias"], "alias")
                   if compact(a) not in syn_keys | bp_keys]
        if compact(s.name) in TEXT_DENY:
            synonyms = [w for w in synonyms if w != s.name]
            aliases.insert(0, s.name)
        whole_word = list(dict.fromkeys(s.whole_word + [w for w in synonyms if compact(w) in WHOLE_WORD]))
        for w in s.whole_word:
            if w not in synonyms:
                synonyms.append(w)
        term: dict = {"id": s.id, "name": s.name, "parent": s.parent, "snomed": primary}
        if other:
            term["snomed_other"] = other
        srt = list(dict.fromkeys(s.srt + extra[s.id]["srt"]))
        if srt:
            term["srt"] = srt
        term["body_part"] = s.body_part
        term["synonyms"] = synonyms
        if aliases:
            term["aliases"] = aliases
        if whole_word:
            term["whole_word"] = whole_word
        if s.radimagenet:
            term["radimagenet"] = s.radimagenet
        if s.section:
            term["_section"] = s.section
        out.append(term)
    assert len(specs) == len(TERMS), "duplicate spec ids"
    return out, notes


def dump_list_of_maps(items: list[dict]) -> str:
    chunks = []
    for item in items:
        section = item.pop("_section", None)
        text = yaml.safe_dump([item], default_flow_style=None, sort_keys=False, allow_unicode=True, width=100_000)
        if section:
            chunks.append(f"\n  # ---- {section} ----\n")
        chunks.append("".join("  " + line + "\n" for line in text.rstrip("\n").split("\n")))
    return "".join(chunks)


HEADER = "# Generated by tools/build_vocab.py from ../shared/reference; edit here or there, then `modan-dicom vocab check`.\n"


def anatomy_yaml(terms: list[dict]) -> str:
    doc = HEADER + """#
# Anatomy terms. Fields:
#   id            lower snake case, unique; the value the index stores in `anatomy`
#   name          display name
#   parent        the enclosing term (a tree; profiles project a term to the nearest covered ancestor)
#   snomed        SNOMED CT code (SCT); snomed_other: further SCT codes that mean this term (older codes,
#                 codes of the body-part terms merged into it); srt: legacy SNOMED RT codes (SRT)
#   body_part     DICOM Body Part Examined defined terms (0018,0015) that map here (PS3.16 Annex L, legacy included)
#   synonyms      free text matched in Series/Study Description and Protocol Name (and accepted as Body Part
#                 Examined values); case-insensitive, punctuation = space, longest wins, synonyms whose first /
#                 last word has <= 4 characters (or listed in whole_word) must match whole words there
#   aliases       values accepted in Body Part Examined only (too ambiguous for free text)
#   radimagenet   RadImageNet folder codes (CT/MR region folders, US organ folders)
ignore_phrases: """ + yaml.safe_dump(IGNORE_PHRASES, default_flow_style=True, width=100_000).strip() + """
ignore_after: """ + yaml.safe_dump(IGNORE_AFTER, default_flow_style=True, width=100_000).strip() + """
terms:
"""
    return doc + dump_list_of_maps(terms)


def modalities_yaml(reference: Path) -> str:
    with open(reference / "modality_terms.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    grouped = {c for m in MODALITIES for c in m["dicom"]}
    non_image = [{"code": r["term"], "name": r["meaning"]} for r in rows
                 if r["is_image_acquisition_ours"] == "no" and r["term"] not in grouped or r["term"] == "MS"]
    non_image = [n for n in non_image if n["code"] not in {"OT"}]
    ungrouped = [r["term"] for r in rows if r["term"] not in grouped and r["term"] not in {n["code"] for n in non_image}]
    if ungrouped:
        raise SystemExit(f"modality codes neither grouped nor non-image: {ungrouped}")
    doc = HEADER + """#
# Modality groups (the `modality` ids) and the DICOM Modality (0008,0060) codes each groups, retired ones
# included; radimagenet: RadImageNet top-level folder names; aliases: other spellings accepted as input;
# sop_classes: image SOP Class UIDs that imply the group when Modality is blank.
# non_image: Modality codes of objects without an image (the index calls such files `non_image`; a code may
# also sit in a group, e.g. MS = MR spectroscopy). non_image_sop_classes: SOP Class UIDs (and every UID below
# them) of objects without an image.
modalities:
"""
    doc += dump_list_of_maps([dict(m) for m in MODALITIES])
    doc += "non_image:\n" + dump_list_of_maps(non_image)
    doc += "non_image_sop_classes:\n" + dump_list_of_maps([{"uid": u, "name": n} for u, n in NON_IMAGE_SOP])
    return doc


def profiles_yaml() -> str:
    doc = HEADER + """#
# Profiles: the axes of the multi-hot target. modalities: modality ids (or `all`); anatomy: axes, each an
# anatomy id that `covers` the terms whose subtrees project onto it (default: itself), or `all` (every term
# its own axis). A term projects onto the axis covering its nearest ancestor-or-self; terms covered by no
# axis have no place in the profile (index status `unmapped`, anatomy kept).
profiles:
"""
    body = yaml.safe_dump(PROFILES, default_flow_style=None, sort_keys=False, allow_unicode=True, width=100)
    return doc + "".join("  " + line + "\n" for line in body.rstrip("\n").split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    parser.add_argument("--out", type=Path, default=ROOT / "vocab")
    parser.add_argument("--verbose", "-v", action="store_true", help="list the dropped duplicate entries")
    args = parser.parse_args(argv)
    terms, notes = build_anatomy(read_rows(args.reference))
    for name, text in (("anatomy.yaml", anatomy_yaml(terms)), ("modalities.yaml", modalities_yaml(args.reference)),
                       ("profiles.yaml", profiles_yaml())):
        write_text(args.out / name, text).chmod(0o644)  # data files, readable like the rest of the tree
    if args.verbose:
        print("\n".join(notes))
    n_bp = sum(len(t["body_part"]) for t in terms)
    print(f"wrote {args.out}: {len(terms)} anatomy terms, {n_bp} body-part terms, {len(notes)} duplicates dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
