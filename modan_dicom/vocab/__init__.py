"""The controlled vocabulary: modality groups, an anatomy hierarchy, and profiles (the multi-hot axes).

Three YAML files (``vocab/`` at the top of the repository, shipped as ``modan_dicom/_vocab``) hold the data:

- ``modalities.yaml``: modality groups (``CT``, ``MR``, ``US``, ``XR`` ...) and the DICOM Modality codes each
  groups, plus the codes and SOP classes of objects without an image;
- ``anatomy.yaml``: anatomy terms (``knee``, ``cervical_spine`` ...) with SNOMED CT / SRT codes, a parent, the
  DICOM Body Part Examined terms, free-text synonyms in several languages, RadImageNet folder codes, the
  parts of multi-region terms, and the non-anatomic terms (phantoms, test objects, dose reports);
- ``profiles.yaml``: profiles, each a list of axes; an anatomy axis ``covers`` the subtrees that project onto it.

Raw values (a Modality code, a Body Part Examined value, an Anatomic Region code, a description) resolve to
full-vocabulary ids; a profile projects those ids onto its axes through the hierarchy (``cervical_spine`` ->
``spine``) and :meth:`Vocabulary.encode` turns a (modality, anatomy) pair into the multi-hot target.

One job per module: ``yamlfile`` (reading, field checks), ``catalog`` (terms and lookup tables), ``text``
(free-text normalisation and matching), ``profiles`` (profiles and projection), ``vocabulary`` (the
:class:`Vocabulary` API, encoding), ``load`` (the per-process cache, checks, ``map_text``).
Loading is cached per process (index workers call :func:`load_vocabulary` freely); vocabularies are read-only.
"""

from .load import ANATOMY_FILE, MODALITIES_FILE, PROFILES_FILE, VOCAB_DIR, check_vocabulary, load_vocabulary, map_text
from .terms import (MULTI_REGION, AnatomyTerm, Axis, AxisInfo, ModalityTerm, Profile, TextMapping, TextMatch,
                    VocabSummary)
from .text import compact, spaced, words
from .vocabulary import SNOMED_SCHEMES, Vocabulary

__all__ = [
    "ANATOMY_FILE", "MODALITIES_FILE", "MULTI_REGION", "PROFILES_FILE", "SNOMED_SCHEMES", "VOCAB_DIR", "AnatomyTerm",
    "Axis", "AxisInfo", "ModalityTerm", "Profile", "TextMapping", "TextMatch", "VocabSummary", "Vocabulary",
    "check_vocabulary", "compact", "load_vocabulary", "map_text", "spaced", "words",
]
