"""The controlled vocabulary: modality groups, an anatomy hierarchy, and profiles (the multi-hot axes).

Three YAML files (``vocab/`` at the top of the repository, shipped as ``modan_dicom/_vocab``) hold the data:

- ``modalities.yaml``: modality groups (``CT``, ``MR``, ``US``, ``XR`` ...) and the DICOM Modality codes each
  groups, plus the codes and SOP classes of objects without an image;
- ``anatomy.yaml``: anatomy terms (``knee``, ``cervical_spine`` ...) with SNOMED CT / SRT codes, a parent, the
  DICOM Body Part Examined terms, free-text synonyms and RadImageNet folder codes;
- ``profiles.yaml``: profiles, each a list of axes; an anatomy axis ``covers`` the subtrees that project onto it.

Raw values (a Modality code, a Body Part Examined value, an Anatomic Region code, a description) resolve to
full-vocabulary ids; a profile projects those ids onto its axes through the hierarchy (``cervical_spine`` ->
``spine``) and :meth:`Vocabulary.encode` turns a (modality, anatomy) pair into the multi-hot target.

Loading is cached per process (index workers call :func:`load_vocabulary` freely); vocabularies are read-only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from .errors import VocabularyError

VOCAB_DIR = Path(__file__).parent / "_vocab"
MODALITIES_FILE, ANATOMY_FILE, PROFILES_FILE = "modalities.yaml", "anatomy.yaml", "profiles.yaml"
SHORT_TOKEN = 4  # synonym edge words of at most this many characters match whole words only
SNOMED_SCHEMES = frozenset({"SCT", "SRT", "SNM3", "99SDM", "SNOMED", "SNOMEDCT"})

_NON_WORD = re.compile(r"[\W_]+")
_MODALITY_ID = re.compile(r"[A-Z][A-Z0-9_]*")
_ANATOMY_ID = re.compile(r"[a-z][a-z0-9_]*")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def spaced(text: str) -> str:
    """Upper case, every run of non-alphanumerics (/ - _ ^ , . space ...) one space: the free-text form."""
    return _NON_WORD.sub(" ", text.upper()).strip()


def compact(text: str) -> str:
    """Upper case without non-alphanumerics: the form exact lookups compare (``C-Spine`` -> ``CSPINE``)."""
    return _NON_WORD.sub("", text.upper())


# ---- terms --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModalityTerm:
    """A modality group: the DICOM Modality codes it groups and the other spellings it accepts."""

    id: str
    name: str
    dicom: tuple[str, ...]
    radimagenet: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    sop_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnatomyTerm:
    """An anatomy term of the hierarchy (see ``vocab/anatomy.yaml`` for the meaning of each field)."""

    id: str
    name: str
    parent: str | None
    snomed: str | None = None
    snomed_other: tuple[str, ...] = ()
    srt: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    whole_word: tuple[str, ...] = ()
    radimagenet: tuple[str, ...] = ()


@dataclass(frozen=True)
class Axis:
    """One axis of a profile's multi-hot vector; terms in the subtrees of `covers` project onto it."""

    id: str
    kind: str  # "modality" | "anatomy"
    covers: tuple[str, ...]


class TextMatch(NamedTuple):
    """The synonym that decided a free-text match; offsets index the normalised text (`spaced`)."""

    term: str
    synonym: str
    start: int
    end: int


@dataclass(frozen=True)
class AxisInfo:
    """A profile axis for people: its terms and every full-vocabulary term that projects onto it."""

    axis: str
    kind: str
    name: str
    covers: tuple[str, ...]
    members: tuple[str, ...]


# ---- reading and validating ---------------------------------------------------------------------------
def _problem(path: Path | str, entry: str, problem: str) -> VocabularyError:
    return VocabularyError(f"{path}: {entry}: {problem}")


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VocabularyError(f"{path}: no such vocabulary file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        raise _problem(path, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def _strings(value: Any, path: Path, entry: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise _problem(path, entry, f"'{key}' must be a list of strings")
    return tuple(str(v).strip() for v in value if str(v).strip())


def _optional_string(value: Any, path: Path, entry: str, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _problem(path, entry, f"'{key}' must be a string")
    return str(value).strip() or None


def _mapping_items(data: Any, key: str, path: Path) -> list[Any]:
    if not isinstance(data, dict):
        raise _problem(path, "file", "expected a mapping at the top level")
    items = data.get(key)
    if not isinstance(items, list):
        raise _problem(path, key, "expected a list")
    return items


def _optional_list(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise _problem(path, key, "expected a list")
    return value


def _entry_dict(item: Any, allowed: frozenset[str], path: Path, label: str, index: int, id_re: re.Pattern[str],
                id_rule: str) -> tuple[dict[str, Any], str, str]:
    if not isinstance(item, dict):
        raise _problem(path, f"{label} #{index + 1}", "expected a mapping with an 'id'")
    ident = item.get("id")
    if not isinstance(ident, str) or not id_re.fullmatch(ident):
        raise _problem(path, f"{label} #{index + 1}", f"id must be {id_rule} (got {ident!r})")
    entry = f"{label} '{ident}'"
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise _problem(path, entry, f"unknown field(s) {', '.join(map(repr, unknown))}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _problem(path, entry, "'name' must be a non-empty string")
    return item, ident, entry


class _Claims:
    """A namespace of normalised keys, each owned by one term; a second owner is a validation error."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label
        self.owner: dict[str, tuple[str, str, str]] = {}  # key -> (term, kind, value as written)

    def claim(self, key: str, term: str, kind: str, value: str) -> None:
        if not key:
            raise _problem(self.path, f"{self.label} '{term}'", f"{kind} {value!r} has no letters or digits")
        previous = self.owner.setdefault(key, (term, kind, value))
        if previous[0] != term:
            raise _problem(self.path, f"{self.label} '{term}'",
                           f"{kind} '{value}' is already claimed by {self.label} '{previous[0]}' "
                           f"(as {previous[1]} '{previous[2]}')")


_MODALITY_KEYS = frozenset({"id", "name", "dicom", "radimagenet", "aliases", "sop_classes"})
_ANATOMY_KEYS = frozenset({"id", "name", "parent", "snomed", "snomed_other", "srt", "body_part", "synonyms",
                           "aliases", "whole_word", "radimagenet"})


@dataclass
class _Catalog:
    """Validated terms of one vocabulary folder with their lookup tables (shared by its profiles)."""

    folder: Path
    modalities: tuple[ModalityTerm, ...]
    modality_index: dict[str, str]  # compact DICOM code / alias -> modality id
    modality_folders: dict[str, str]  # compact RadImageNet modality folder -> modality id
    image_sop: dict[str, str]  # image SOP Class UID -> modality id
    non_image_codes: frozenset[str]
    non_image_sop: tuple[str, ...]
    anatomy: tuple[AnatomyTerm, ...]
    by_id: dict[str, AnatomyTerm]
    exact: dict[str, str]  # compact body part / synonym / alias -> anatomy id
    sct: dict[str, str]
    srt: dict[str, str]
    anatomy_folders: dict[str, str]  # compact RadImageNet region / organ folder -> anatomy id
    ancestors: dict[str, tuple[str, ...]]
    text_entries: dict[str, tuple[str, bool, bool]]  # spaced synonym -> (term, left bound, right bound)
    ignore_phrases: tuple[str, ...]
    ignore_after: tuple[str, ...]
    _matcher: _TextMatcher | None = field(default=None, repr=False)

    @property
    def matcher(self) -> _TextMatcher:
        if self._matcher is None:  # compiled on first use: encode-only callers never pay for it
            self._matcher = _TextMatcher(self.text_entries, self.ignore_phrases, self.ignore_after)
        return self._matcher


def _parse_modalities(path: Path) -> dict[str, Any]:
    data = _read_yaml(path)
    terms: list[ModalityTerm] = []
    codes = _Claims(path, "modality")
    folders = _Claims(path, "modality")
    sops = _Claims(path, "modality")
    for i, item in enumerate(_mapping_items(data, "modalities", path)):
        item, ident, entry = _entry_dict(item, _MODALITY_KEYS, path, "modality", i, _MODALITY_ID,
                                         "upper case letters, digits and _")
        if any(t.id == ident for t in terms):
            raise _problem(path, entry, "duplicate id")
        term = ModalityTerm(ident, item["name"].strip(), _strings(item.get("dicom"), path, entry, "dicom"),
                            _strings(item.get("radimagenet"), path, entry, "radimagenet"),
                            _strings(item.get("aliases"), path, entry, "aliases"),
                            _strings(item.get("sop_classes"), path, entry, "sop_classes"))
        for kind, values in (("id", (ident,)), ("DICOM code", term.dicom), ("alias", term.aliases)):
            for value in values:
                codes.claim(compact(value), ident, kind, value)
        for value in term.radimagenet:
            folders.claim(compact(value), ident, "RadImageNet folder", value)
        for value in term.sop_classes:
            sops.claim(value, ident, "SOP class", value)
        terms.append(term)
    non_image = []
    for i, item in enumerate(_optional_list(data, "non_image", path)):
        code = item.get("code") if isinstance(item, dict) else item
        if not isinstance(code, str) or not compact(code):
            raise _problem(path, f"non_image #{i + 1}", "expected a Modality code (or a mapping with 'code')")
        non_image.append(compact(code))
    non_image_sop = []
    for i, item in enumerate(_optional_list(data, "non_image_sop_classes", path)):
        uid = item.get("uid") if isinstance(item, dict) else item
        if not isinstance(uid, str) or not re.fullmatch(r"[0-9.]+", uid.strip()):
            raise _problem(path, f"non_image_sop_classes #{i + 1}", f"expected a UID (got {uid!r})")
        non_image_sop.append(uid.strip())
    return dict(modalities=tuple(terms), modality_index={k: v[0] for k, v in codes.owner.items()},
                modality_folders={k: v[0] for k, v in folders.owner.items()},
                image_sop={k: v[0] for k, v in sops.owner.items()}, non_image_codes=frozenset(non_image),
                non_image_sop=tuple(non_image_sop))


def _parse_anatomy(path: Path) -> dict[str, Any]:
    data = _read_yaml(path)
    terms: list[AnatomyTerm] = []
    seen: dict[str, int] = {}
    exact, sct, srt, folders = (_Claims(path, "term") for _ in range(4))
    text_entries: dict[str, tuple[str, bool, bool]] = {}
    for i, item in enumerate(_mapping_items(data, "terms", path)):
        item, ident, entry = _entry_dict(item, _ANATOMY_KEYS, path, "term", i, _ANATOMY_ID,
                                         "lower snake case (a-z, 0-9, _)")
        if ident in seen:
            raise _problem(path, entry, f"duplicate id (entries #{seen[ident] + 1} and #{i + 1})")
        seen[ident] = i
        fields = {k: _strings(item.get(k), path, entry, k)
                  for k in ("snomed_other", "srt", "body_part", "synonyms", "aliases", "whole_word", "radimagenet")}
        term = AnatomyTerm(ident, item["name"].strip(), _optional_string(item.get("parent"), path, entry, "parent"),
                           _optional_string(item.get("snomed"), path, entry, "snomed"), **fields)
        for kind, values in (("body-part term", term.body_part), ("synonym", term.synonyms),
                             ("alias", term.aliases)):
            for value in values:
                exact.claim(compact(value), ident, kind, value)
        for code in ((term.snomed,) if term.snomed else ()) + term.snomed_other:
            sct.claim(code, ident, "SNOMED CT code", code)
        for code in term.srt:
            srt.claim(code.upper(), ident, "SRT code", code)
        for value in term.radimagenet:
            folders.claim(compact(value), ident, "RadImageNet folder", value)
        flagged = {spaced(w) for w in term.whole_word}
        missing = flagged - {spaced(s) for s in term.synonyms}
        if missing:
            raise _problem(path, entry, f"whole_word entry '{sorted(missing)[0]}' is not one of its synonyms")
        for synonym in term.synonyms:
            words = spaced(synonym)
            first, _, _ = words.partition(" ")
            last = words.rpartition(" ")[2]
            whole = words in flagged
            text_entries[words] = (ident, whole or len(first) <= SHORT_TOKEN, whole or len(last) <= SHORT_TOKEN)
        terms.append(term)
    by_id = {t.id: t for t in terms}
    ancestors: dict[str, tuple[str, ...]] = {}
    for term in terms:
        chain: list[str] = []
        node = term
        while node.parent is not None:
            if node.parent not in by_id:
                raise _problem(path, f"term '{node.id}'", f"unknown parent '{node.parent}'")
            if node.parent == term.id or node.parent in chain:
                cycle = " -> ".join([term.id, *chain, node.parent])
                raise _problem(path, f"term '{term.id}'", f"parent cycle {cycle}")
            chain.append(node.parent)
            node = by_id[node.parent]
        ancestors[term.id] = tuple(chain)
    phrases = {k: tuple(spaced(p) for p in _strings(data.get(k), path, k, k) if spaced(p))
               for k in ("ignore_phrases", "ignore_after")}
    return dict(anatomy=tuple(terms), by_id=by_id, exact={k: v[0] for k, v in exact.owner.items()},
                sct={k: v[0] for k, v in sct.owner.items()}, srt={k: v[0] for k, v in srt.owner.items()},
                anatomy_folders={k: v[0] for k, v in folders.owner.items()}, ancestors=ancestors,
                text_entries=text_entries, **phrases)


def _parse_profiles(data: Any, path: Path, catalog: _Catalog) -> dict[str, tuple[Axis, ...]]:
    """Profiles of a profiles file (``profiles: {name: spec}``) or of a one-profile file (``name:`` + spec)."""
    if isinstance(data, dict) and "profiles" in data:
        specs = data["profiles"]
        if not isinstance(specs, dict) or not specs:
            raise _problem(path, "profiles", "expected a mapping of profile names to profiles")
    elif isinstance(data, dict) and isinstance(data.get("name"), str):
        specs = {data["name"]: {k: v for k, v in data.items() if k != "name"}}
    else:
        raise _problem(path, "file", "expected 'profiles:' (or a single profile with 'name:')")
    known = {"modality": {m.id for m in catalog.modalities}, "anatomy": set(catalog.by_id)}
    every = {"modality": [m.id for m in catalog.modalities], "anatomy": [t.id for t in catalog.anatomy]}
    profiles: dict[str, tuple[Axis, ...]] = {}
    for name, spec in specs.items():
        entry = f"profile '{name}'"
        if not isinstance(spec, dict):
            raise _problem(path, entry, "expected a mapping with 'modalities' and 'anatomy'")
        unknown = sorted(set(spec) - {"description", "modalities", "anatomy"})
        if unknown:
            raise _problem(path, entry, f"unknown field(s) {', '.join(map(repr, unknown))}")
        axes: list[Axis] = []
        for kind, key in (("modality", "modalities"), ("anatomy", "anatomy")):
            value = spec.get(key, [])
            if value == "all":
                value = every[kind]
            if not isinstance(value, list):
                raise _problem(path, entry, f"'{key}' must be a list of axes or 'all'")
            covered: dict[str, str] = {}
            for item in value:
                axis_id, covers = (item, None) if isinstance(item, str) else (
                    (item.get("axis"), item.get("covers")) if isinstance(item, dict) else (None, None))
                if not isinstance(axis_id, str):
                    raise _problem(path, entry, f"{kind} axis {item!r}: expected an id or {{axis, covers}}")
                where = f"{entry}: {kind} axis '{axis_id}'"
                covers_t = _strings(covers, path, where, "covers") or (axis_id,)
                if any(a.id == axis_id for a in axes):
                    raise _problem(path, where, "duplicate axis")
                for term in (axis_id, *covers_t):
                    if term not in known[kind]:
                        raise _problem(path, where, f"unknown {kind} term '{term}'")
                    if covered.get(term, axis_id) != axis_id:
                        raise _problem(path, where, f"'{term}' is already covered by axis '{covered[term]}'")
                for term in covers_t:
                    covered[term] = axis_id
                axes.append(Axis(axis_id, kind, covers_t))
            for axis in axes:  # an axis term must project onto its own axis (else decode would lie)
                if axis.kind != kind:
                    continue
                chain = (axis.id, *catalog.ancestors[axis.id]) if kind == "anatomy" else (axis.id,)
                nearest = next((covered[t] for t in chain if t in covered), None)
                if nearest != axis.id:
                    raise _problem(path, f"{entry}: {kind} axis '{axis.id}'",
                                   f"its own term projects onto {nearest!r}; cover it (or an ancestor)")
        if not axes:
            raise _problem(path, entry, "has no axes")
        profiles[str(name)] = tuple(axes)
    return profiles


# ---- free text ----------------------------------------------------------------------------------------
def _trie_regex(entries: Mapping[str, tuple[str, bool, bool]]) -> str:
    """One regex matching, at a position, the longest synonym that starts there (with its word bounds)."""
    trie: dict[str, Any] = {}
    for word, (_, left, right) in entries.items():
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = (len(word), left, right)

    def emit(node: dict[str, Any]) -> str:
        alternatives = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        end = node.get("")
        if end is not None:  # shorter match last: the engine prefers the longer path
            length, left, right = end
            alternatives.append((rf"(?<!\S.{{{length}}})" if left else "") + (r"(?!\S)" if right else ""))
        if len(alternatives) == 1 and end is None:
            return alternatives[0]
        return "(?:" + "|".join(alternatives) + ")"

    return emit(trie)


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({p for p in phrases if p}, key=len, reverse=True)
    return re.compile(r"(?<!\S)(?:" + "|".join(map(re.escape, words)) + r")(?!\S)") if words else None


class _TextMatcher:
    """Longest-synonym search over normalised text: one compiled trie regex plus a bounded result cache."""

    def __init__(self, entries: Mapping[str, tuple[str, bool, bool]], ignore: Sequence[str],
                 ignore_after: Sequence[str]) -> None:
        self.owner = {word: term for word, (term, _, _) in entries.items()}
        self.regex = re.compile("(?=(" + _trie_regex(entries) + "))") if entries else None
        self.ignore = _phrase_regex(ignore)
        self.cut = _phrase_regex(ignore_after)
        self.find = functools.lru_cache(maxsize=1 << 16)(self._find)

    def _find(self, text: str) -> TextMatch | None:
        norm = spaced(text)
        if self.cut is not None:
            hit = self.cut.search(norm)
            if hit is not None:
                norm = norm[:hit.start()]
        if self.ignore is not None:
            norm = self.ignore.sub(lambda m: " " * len(m.group()), norm)
        if self.regex is None or not norm:
            return None
        best, start = "", -1
        for hit in self.regex.finditer(norm):  # every start position; the longest (then earliest) wins
            word = hit.group(1)
            if len(word) > len(best):
                best, start = word, hit.start()
        return TextMatch(self.owner[best], best, start, start + len(best)) if best else None


# ---- the vocabulary -----------------------------------------------------------------------------------
class Vocabulary:
    """A vocabulary seen through one profile. Build it with :meth:`load` / :func:`load_vocabulary`.

    Lookups return full-vocabulary ids (``cervical_spine``); ``project_*`` and :meth:`encode` map them onto
    the profile's axes (``spine``). Every method is safe to call from many threads; results are cached.
    """

    def __init__(self, catalog: _Catalog, profile: str, axes: Sequence[Axis], *, source: str,
                 expand_ancestors: bool = False, load_args: tuple[Any, ...] = ()) -> None:
        self._catalog = catalog
        self._profile = profile
        self._axes = tuple(axes)
        self._source = source
        self._expand = expand_ancestors
        self._load_args = load_args
        self._index = {a.id: i for i, a in enumerate(self._axes)}
        self._modality_axis: dict[str, str | None] = {m.id: None for m in catalog.modalities}
        cover = {}
        for axis in self._axes:
            for term in axis.covers:
                (cover if axis.kind == "anatomy" else self._modality_axis)[term] = axis.id
        self._anatomy_axis: dict[str, str | None] = {}
        for term in catalog.anatomy:
            chain = (term.id, *catalog.ancestors[term.id])
            self._anatomy_axis[term.id] = next((cover[t] for t in chain if t in cover), None)
        self._anatomy_bits: dict[str, tuple[int, ...]] = {}
        for term in catalog.anatomy:
            chain = (term.id, *catalog.ancestors[term.id]) if expand_ancestors else (term.id,)
            bits = {self._index[a] for a in (self._anatomy_axis[t] for t in chain) if a is not None}
            self._anatomy_bits[term.id] = tuple(sorted(bits))

    # -- construction
    @classmethod
    def load(cls, profile_or_path: str | Path = "radimagenet", expand_ancestors: bool = False, *,
             profile: str | None = None) -> Vocabulary:
        """Same as :func:`load_vocabulary`."""
        return load_vocabulary(profile_or_path, expand_ancestors, profile=profile)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickles as its load arguments: a worker process reloads it from its own cache
        if not self._load_args:
            raise TypeError("only vocabularies made by load_vocabulary can be pickled")
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
            table = self._modality_axis if axis.kind == "modality" else self._anatomy_axis
            members = tuple(t for t, a in table.items() if a == axis.id)
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

        Case-insensitive; punctuation and ``/ - _ ^ , .`` separate words; the longest synonym wins (then the
        earliest); synonyms whose first or last word has at most 4 characters (or flagged ``whole_word``) match
        whole words only there (``ABD`` not in ``ABDUCTION``, ``LS`` not in ``PULSE``); text after phrases such
        as "history of", "s/p", "prior", "comparison" is ignored.
        """
        found = self.find_text(text)
        return found.term if found else None

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

    def project_anatomy(self, anatomy_id: str | None) -> str | None:
        """The profile axis covering the term or its nearest covered ancestor (``cervical_spine`` -> ``spine``)."""
        if anatomy_id is None:
            return None
        try:
            return self._anatomy_axis[anatomy_id]
        except KeyError:
            raise VocabularyError(f"unknown anatomy id '{anatomy_id}' in vocabulary {self._source}") from None

    def encode(self, modality: str | None, anatomy: str | None) -> np.ndarray:
        """Full-vocabulary ids -> multi-hot float32 vector of shape ``(len(labels),)``.

        Ids without a place in the profile set no bit; with ``expand_ancestors`` the axes of the term's
        ancestors are set too.
        """
        vector = np.zeros(len(self._axes), dtype=np.float32)
        axis = self.project_modality(modality)
        if axis is not None:
            vector[self._index[axis]] = 1.0
        if anatomy is not None:
            try:
                bits = self._anatomy_bits[anatomy]
            except KeyError:
                raise VocabularyError(f"unknown anatomy id '{anatomy}' in vocabulary {self._source}") from None
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


# ---- loading ------------------------------------------------------------------------------------------
_CATALOGS: dict[tuple[Any, ...], _Catalog] = {}
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


def _catalog(folder: Path) -> _Catalog:
    files = (folder / MODALITIES_FILE, folder / ANATOMY_FILE)
    key = (str(folder), _stamp(*files))
    found = _CATALOGS.get(key)
    if found is None:
        found = _Catalog(folder=folder, **_parse_modalities(files[0]), **_parse_anatomy(files[1]))
        _CATALOGS[key] = found
    return found


_BUILTIN: dict[tuple[Any, ...], dict[str, tuple[Axis, ...]]] = {}


def _builtin_profiles() -> dict[str, tuple[Axis, ...]]:
    path = VOCAB_DIR / PROFILES_FILE
    key = _stamp(path, VOCAB_DIR / MODALITIES_FILE, VOCAB_DIR / ANATOMY_FILE)
    if key not in _BUILTIN:
        _BUILTIN[key] = _parse_profiles(_read_yaml(path), path, _catalog(VOCAB_DIR))
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
        profiles = _parse_profiles(_read_yaml(profiles_file), profiles_file, catalog)
        if name is None:
            name = next(iter(profiles))
        if name not in profiles:
            raise VocabularyError(f"{profiles_file}: no profile '{name}' (profiles: {', '.join(profiles)})")
        source = str(folder if profiles_file.name == PROFILES_FILE and profiles_file.parent == folder
                     else profiles_file)
        vocab = Vocabulary(catalog, name, profiles[name], source=source, expand_ancestors=bool(expand_ancestors),
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
    profiles = _parse_profiles(_read_yaml(profiles_file), profiles_file, catalog)
    for name in profiles:  # builds each projection, like a real load would
        Vocabulary(catalog, name, profiles[name], source=str(folder))
    catalog.matcher  # compiles the free-text matcher  # noqa: B018
    return VocabSummary(
        source=str(profiles_file if path is not None and Path(path).is_file() else folder),
        modalities=len(catalog.modalities), dicom_codes=sum(len(m.dicom) for m in catalog.modalities),
        non_image_codes=len(catalog.non_image_codes), anatomy_terms=len(catalog.anatomy),
        body_part_terms=sum(len(t.body_part) for t in catalog.anatomy),
        synonyms=sum(len(t.synonyms) for t in catalog.anatomy), profiles={n: len(a) for n, a in profiles.items()})


@dataclass(frozen=True)
class VocabSummary:
    """Counts of a validated vocabulary (what ``modan-dicom vocab check`` prints)."""

    source: str
    modalities: int
    dicom_codes: int
    non_image_codes: int
    anatomy_terms: int
    body_part_terms: int
    synonyms: int
    profiles: dict[str, int]

    def line(self) -> str:
        profiles = ", ".join(f"{n} ({k} axes)" for n, k in self.profiles.items())
        return (f"{self.source}: {self.modalities} modality groups ({self.dicom_codes} DICOM codes, "
                f"{self.non_image_codes} non-image codes), {self.anatomy_terms} anatomy terms "
                f"({self.body_part_terms} body-part terms, {self.synonyms} synonyms), profiles: {profiles}")


@dataclass(frozen=True)
class TextMapping:
    """How one raw value resolves (what ``modan-dicom vocab map`` prints)."""

    text: str
    anatomy: str | None
    how: str | None  # "body part" (exact) | "free text" | None
    matched: str | None  # the body-part term / synonym that decided
    anatomy_axis: str | None
    ancestors: tuple[str, ...]
    modality: str | None
    modality_axis: str | None
    profile: str
    labels: tuple[str, ...]
    multi_hot: np.ndarray


def map_text(text: str, modality: str | None = None, profile: str | Path = "radimagenet",
             expand_ancestors: bool = False) -> TextMapping:
    """Resolve a raw Body Part Examined value or description (and optionally a Modality code) and encode it."""
    vocab = load_vocabulary(profile, expand_ancestors)
    anatomy, how, matched = vocab.lookup_body_part(text), "body part", text.strip()
    if anatomy is None:
        found = vocab.find_text(text)
        anatomy, how, matched = (found.term, "free text", found.synonym) if found else (None, None, None)
    modality_id = vocab.lookup_modality(modality)
    return TextMapping(text, anatomy, how, matched, vocab.project_anatomy(anatomy),
                       tuple(vocab.ancestors(anatomy)) if anatomy else (), modality_id,
                       vocab.project_modality(modality_id), vocab.profile, tuple(vocab.labels),
                       vocab.encode(modality_id, anatomy))
