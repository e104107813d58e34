"""Loading vocabularies (cached per process), validating a folder, and explaining how one value maps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import VocabularyError
from .catalog import Catalog, parse_anatomy, parse_modalities
from .profiles import parse_profiles
from .terms import Profile, TextMapping, VocabSummary
from .vocabulary import Vocabulary
from .yamlfile import read_yaml

VOCAB_DIR = Path(__file__).parent.parent / "_vocab"
MODALITIES_FILE, ANATOMY_FILE, PROFILES_FILE = "modalities.yaml", "anatomy.yaml", "profiles.yaml"

_CATALOGS: dict[tuple[Any, ...], Catalog] = {}
_VOCABULARIES: dict[tuple[Any, ...], Vocabulary] = {}


def _stamp(*paths: Path) -> tuple[Any, ...]:
    out = []
    for path in paths:
        try:
            stat = path.stat()
            out.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def _catalog(folder: Path) -> Catalog:
    files = (folder / MODALITIES_FILE, folder / ANATOMY_FILE)
    key = (str(folder), _stamp(*files))
    found = _CATALOGS.get(key)
    if found is None:
        found = Catalog(folder=folder, **parse_modalities(files[0]), **parse_anatomy(files[1]))
        _CATALOGS[key] = found
    return found


_BUILTIN: dict[tuple[Any, ...], dict[str, Profile]] = {}


def _builtin_profiles() -> dict[str, Profile]:
    path = VOCAB_DIR / PROFILES_FILE
    key = _stamp(path, VOCAB_DIR / MODALITIES_FILE, VOCAB_DIR / ANATOMY_FILE)
    if key not in _BUILTIN:
        _BUILTIN[key] = parse_profiles(read_yaml(path), path, _catalog(VOCAB_DIR))
    return _BUILTIN[key]


def _locate(source: str | Path, profile: str | None) -> tuple[Path, Path, str | None]:
    """(vocabulary folder, profiles file, profile name or None = the file's first) for a name or path."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path, path / PROFILES_FILE, profile
    if path.is_file():
        folder = path.parent if (path.parent / ANATOMY_FILE).is_file() else VOCAB_DIR
        return folder, path, profile
    if isinstance(source, str) and re.fullmatch(r"[\w-]+", source):
        known = ", ".join(_builtin_profiles())
        raise VocabularyError(f"unknown profile '{source}' (built-in profiles: {known}; or give a path)")
    raise VocabularyError(f"{source}: no such vocabulary file or folder")


def load_vocabulary(profile_or_path: str | Path = "radimagenet", expand_ancestors: bool = False, *,
                    profile: str | None = None) -> Vocabulary:
    """Load (or fetch from the per-process cache) a vocabulary seen through one profile.

    `profile_or_path` is a built-in profile name (``radimagenet``, ``full``), a vocabulary folder (with
    modalities.yaml, anatomy.yaml, profiles.yaml; `profile` picks one, default the first), or a profile YAML
    file (terms from its folder when that holds anatomy.yaml, else the built-in terms). Bad files, unknown
    names and missing paths raise :class:`~modan_dicom.errors.VocabularyError` naming the file and entry.
    """
    args = (str(profile_or_path), bool(expand_ancestors), profile)
    cached = _VOCABULARIES.get(args)  # built-in names: no file system access once loaded
    if cached is not None:
        return cached
    builtin = isinstance(profile_or_path, str) and profile is None and profile_or_path in _builtin_profiles()
    if builtin:
        folder, profiles_file, name = VOCAB_DIR, VOCAB_DIR / PROFILES_FILE, str(profile_or_path)
    else:
        folder, profiles_file, name = _locate(profile_or_path, profile)
    key = (str(folder.resolve()), str(profiles_file.resolve()), name, bool(expand_ancestors),
           _stamp(folder / MODALITIES_FILE, folder / ANATOMY_FILE, profiles_file))
    vocab = _VOCABULARIES.get(key)
    if vocab is None:
        catalog = _catalog(folder)
        profiles = parse_profiles(read_yaml(profiles_file), profiles_file, catalog)
        if name is None:
            name = next(iter(profiles))
        if name not in profiles:
            raise VocabularyError(f"{profiles_file}: no profile '{name}' (profiles: {', '.join(profiles)})")
        source = str(folder if profiles_file.name == PROFILES_FILE and profiles_file.parent == folder
                     else profiles_file)
        vocab = Vocabulary(catalog, profiles[name], source=source, expand_ancestors=bool(expand_ancestors),
                           load_args=args)
        _VOCABULARIES[key] = vocab
    if builtin:
        _VOCABULARIES[args] = vocab
    return vocab


def _reload(profile_or_path: str, expand_ancestors: bool, profile: str | None) -> Vocabulary:
    """Unpickling: a vocabulary travels between processes as its load arguments."""
    return load_vocabulary(profile_or_path, expand_ancestors, profile=profile)


def check_vocabulary(path: str | Path | None = None) -> VocabSummary:
    """Validate a vocabulary folder (default: the built-in one) or a profile file with all its profiles.

    Returns counts for a one-line summary; raises VocabularyError (naming the file and entry) on the first
    problem found.
    """
    if path is None:
        folder, profiles_file = VOCAB_DIR, VOCAB_DIR / PROFILES_FILE
    else:
        folder, profiles_file, _ = _locate(path, None)
    catalog = _catalog(folder)
    profiles = parse_profiles(read_yaml(profiles_file), profiles_file, catalog)
    for name in profiles:  # builds each projection, like a real load would
        Vocabulary(catalog, profiles[name], source=str(folder))
    catalog.matcher  # compiles the free-text matcher  # noqa: B018
    return VocabSummary(
        source=str(profiles_file if path is not None and Path(path).is_file() else folder),
        modalities=len(catalog.modalities), dicom_codes=sum(len(m.dicom) for m in catalog.modalities),
        non_image_codes=len(catalog.non_image_codes), anatomy_terms=len(catalog.anatomy),
        body_part_terms=sum(len(t.body_part) for t in catalog.anatomy),
        synonyms=sum(len(t.synonyms) for t in catalog.anatomy), profiles={n: len(p.axes) for n, p in profiles.items()})



def map_text(text: str, modality: str | None = None, profile: str | Path = "radimagenet",
             expand_ancestors: bool = False) -> TextMapping:
    """Resolve a raw Body Part Examined value or description (and optionally a Modality code) and encode it.

    `anatomy_axis` joins a multi-region term's axes with ``+`` (``lung+abdomen``).
    """
    vocab = load_vocabulary(profile, expand_ancestors)
    anatomy, how, matched = vocab.lookup_body_part(text), "body part", text.strip()
    if anatomy is None:
        found = vocab.find_text(text)
        anatomy, how, matched = (found.term, "free text", found.synonym) if found else (None, None, None)
    marker = vocab.find_non_anatomic(text)
    if marker is not None and marker != anatomy:
        anatomy, how, matched = marker, "non-anatomic", text.strip()
    modality_id = vocab.lookup_modality(modality)
    axes = vocab.anatomy_axes(anatomy, modality_id)
    return TextMapping(text, anatomy, how, matched, "+".join(axes) or None,
                       tuple(vocab.ancestors(anatomy)) if anatomy else (), modality_id,
                       vocab.project_modality(modality_id), vocab.profile, tuple(vocab.labels),
                       vocab.encode(modality_id, anatomy))
