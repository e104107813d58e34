"""One vocabulary folder's terms: modalities.yaml and anatomy.yaml parsed, checked and indexed for lookups."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .terms import AnatomyTerm, ModalityTerm
from .text import TextMatcher, compact, spaced, words
from .yamlfile import Claims, entry_dict, mapping_items, optional_list, optional_string, problem, read_yaml, strings

_MODALITY_ID = re.compile(r"[A-Z][A-Z0-9_]*")
_ANATOMY_ID = re.compile(r"[a-z][a-z0-9_]*")
_MODALITY_KEYS = frozenset({"id", "name", "dicom", "radimagenet", "aliases", "sop_classes"})
_ANATOMY_KEYS = frozenset({"id", "name", "parent", "snomed", "snomed_other", "srt", "body_part", "synonyms",
                           "aliases", "whole_word", "radimagenet", "parts", "non_anatomic"})


@dataclass
class Catalog:
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
    text_entries: dict[str, str]  # synonym in matching form (`words`) -> anatomy id
    ignore_phrases: tuple[str, ...]
    ignore_after: tuple[str, ...]
    other_words: tuple[str, ...]
    _matcher: TextMatcher | None = field(default=None, repr=False)

    @property
    def non_anatomic(self) -> frozenset[str]:
        """Ids of the terms that name no anatomy (phantoms, test objects, dose reports ...)."""
        return frozenset(t.id for t in self.anatomy if t.non_anatomic)

    @property
    def matcher(self) -> TextMatcher:
        if self._matcher is None:  # compiled on first use: encode-only callers never pay for it
            markers = {k: v for k, v in self.text_entries.items() if self.by_id[v].non_anatomic}
            whole = {words(w) for t in self.anatomy for w in t.whole_word}
            self._matcher = TextMatcher(self.text_entries, self.ignore_phrases, self.ignore_after,
                                        self.other_words, markers, whole)
        return self._matcher


def parse_modalities(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    terms: list[ModalityTerm] = []
    codes = Claims(path, "modality")
    folders = Claims(path, "modality")
    sops = Claims(path, "modality")
    for i, item in enumerate(mapping_items(data, "modalities", path)):
        item, ident, entry = entry_dict(item, _MODALITY_KEYS, path, "modality", i, _MODALITY_ID,
                                         "upper case letters, digits and _")
        if any(t.id == ident for t in terms):
            raise problem(path, entry, "duplicate id")
        term = ModalityTerm(ident, item["name"].strip(), strings(item.get("dicom"), path, entry, "dicom"),
                            strings(item.get("radimagenet"), path, entry, "radimagenet"),
                            strings(item.get("aliases"), path, entry, "aliases"),
                            strings(item.get("sop_classes"), path, entry, "sop_classes"))
        for kind, values in (("id", (ident,)), ("DICOM code", term.dicom), ("alias", term.aliases)):
            for value in values:
                codes.claim(compact(value), ident, kind, value)
        for value in term.radimagenet:
            folders.claim(compact(value), ident, "RadImageNet folder", value)
        for value in term.sop_classes:
            sops.claim(value, ident, "SOP class", value)
        terms.append(term)
    non_image = []
    for i, item in enumerate(optional_list(data, "non_image", path)):
        code = item.get("code") if isinstance(item, dict) else item
        if not isinstance(code, str) or not compact(code):
            raise problem(path, f"non_image #{i + 1}", "expected a Modality code (or a mapping with 'code')")
        non_image.append(compact(code))
    non_image_sop = []
    for i, item in enumerate(optional_list(data, "non_image_sop_classes", path)):
        uid = item.get("uid") if isinstance(item, dict) else item
        if not isinstance(uid, str) or not re.fullmatch(r"[0-9.]+", uid.strip()):
            raise problem(path, f"non_image_sop_classes #{i + 1}", f"expected a UID (got {uid!r})")
        non_image_sop.append(uid.strip())
    return dict(modalities=tuple(terms), modality_index={k: v[0] for k, v in codes.owner.items()},
                modality_folders={k: v[0] for k, v in folders.owner.items()},
                image_sop={k: v[0] for k, v in sops.owner.items()}, non_image_codes=frozenset(non_image),
                non_image_sop=tuple(non_image_sop))


def parse_anatomy(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    terms: list[AnatomyTerm] = []
    seen: dict[str, int] = {}
    exact, sct, srt, folders = (Claims(path, "term") for _ in range(4))
    text_entries: dict[str, str] = {}
    for i, item in enumerate(mapping_items(data, "terms", path)):
        item, ident, entry = entry_dict(item, _ANATOMY_KEYS, path, "term", i, _ANATOMY_ID,
                                         "lower snake case (a-z, 0-9, _)")
        if ident in seen:
            raise problem(path, entry, f"duplicate id (entries #{seen[ident] + 1} and #{i + 1})")
        seen[ident] = i
        fields = {k: strings(item.get(k), path, entry, k)
                  for k in ("snomed_other", "srt", "body_part", "synonyms", "aliases", "whole_word", "radimagenet",
                            "parts")}
        flag = item.get("non_anatomic", False)
        if not isinstance(flag, bool):
            raise problem(path, entry, "'non_anatomic' must be true or false")
        term = AnatomyTerm(ident, item["name"].strip(), optional_string(item.get("parent"), path, entry, "parent"),
                           optional_string(item.get("snomed"), path, entry, "snomed"), **fields, non_anatomic=flag)
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
            raise problem(path, entry, f"whole_word entry '{sorted(missing)[0]}' is not one of its synonyms")
        for synonym in term.synonyms:  # all match whole words; whole_word ones never join compounds
            text_entries.setdefault(words(synonym), ident)
        terms.append(term)
    by_id = {t.id: t for t in terms}
    ancestors: dict[str, tuple[str, ...]] = {}
    for term in terms:
        chain: list[str] = []
        node = term
        while node.parent is not None:
            if node.parent not in by_id:
                raise problem(path, f"term '{node.id}'", f"unknown parent '{node.parent}'")
            if node.parent == term.id or node.parent in chain:
                cycle = " -> ".join([term.id, *chain, node.parent])
                raise problem(path, f"term '{term.id}'", f"parent cycle {cycle}")
            chain.append(node.parent)
            node = by_id[node.parent]
        ancestors[term.id] = tuple(chain)
    _check_parts(path, by_id)
    phrases = {k: tuple(spaced(p) for p in strings(data.get(k), path, k, k) if spaced(p))
               for k in ("ignore_phrases", "ignore_after")}
    phrases["other_words"] = tuple(compact(p) for p in strings(data.get("other_words"), path,
                                                                  "other_words", "other_words") if compact(p))
    return dict(anatomy=tuple(terms), by_id=by_id, exact={k: v[0] for k, v in exact.owner.items()},
                sct={k: v[0] for k, v in sct.owner.items()}, srt={k: v[0] for k, v in srt.owner.items()},
                anatomy_folders={k: v[0] for k, v in folders.owner.items()}, ancestors=ancestors,
                text_entries=text_entries, **phrases)



def _check_parts(path: Path, by_id: dict[str, AnatomyTerm]) -> None:
    """Parts name known terms, never the term itself or (through other parts) a cycle."""
    for term in by_id.values():
        todo, seen = list(term.parts), set()
        while todo:
            part = todo.pop()
            if part not in by_id:
                raise problem(path, f"term '{term.id}'", f"unknown part '{part}'")
            if part == term.id:
                raise problem(path, f"term '{term.id}'", "is one of its own parts")
            if part not in seen:
                seen.add(part)
                todo.extend(by_id[part].parts)
