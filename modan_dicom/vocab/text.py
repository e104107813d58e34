"""Free text -> anatomy: normalisation, compound words, and the longest-synonym search.

Real descriptions are written by scanners and people in many languages (``t2_tse_tra_Prostate``,
``CT CH/AB/PEL``, ``BrzuchMiednica``, ``Abdomen^02_0_Abdomen_Pelvis (Adult)``, ``Ganzkörper``). The rules:

- accents are folded (``Schädel`` = ``SCHADEL``, ``głowa`` = ``GLOWA``), case is ignored;
- words are split at every non-alphanumeric (``^ _ / - + . ,`` ...), at case changes (``AbdPelvis`` ->
  ``ABD PELVIS``, ``LSpine`` -> ``L SPINE``, ``HEADtoFEET`` -> ``HEAD TO FEET``) and between digits and
  runs of 3+ letters (``02CAPRoutine`` ->
  ``02 CAP ROUTINE``; ``LS16``, ``T2`` and ``PE1`` stay whole: scanner and sequence names);
- synonyms match whole words only: ``Transesophageal`` holds no ``esophageal``, ``PULSE`` no ``LS``;
- a word the vocabulary does not know is read as a compound when it splits completely into known words
  (``CHESTABDPELVIS``, ``mriabd``, ``LSPINE``, ``CAPW``): synonym words of at least 3 letters, plus the
  ``other_words`` of anatomy.yaml (``W``, ``CT``, ``L`` ...: no anatomy themselves, and never read as
  anatomy, like ``SPINECHO``); else a known anatomy word of 5+ letters may start it (``COLONOSCOPY``);
  synonyms flagged ``whole_word`` (``Cranio``: not in ``CRANIOCAUDAL``) take part in neither;
- a description of 64 characters (the DICOM LO limit) may end in a cut word: its last word, if unknown,
  may be the start of a known one (``... PELVI`` -> ``PELVIC``);
- the longest synonym wins, then the earliest; text after ``ignore_after`` phrases ("history of", "prior")
  and ``ignore_phrases`` ("C arm", "head first") is not read.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .terms import TextMatch

CUT_LENGTHS = (64,)  # the DICOM LO value limit: a description this long may end in a cut word
MIN_PART = 3  # synonym words shorter than this join compounds only when listed in other_words
MIN_PREFIX = 5  # a known anatomy word this long may start a longer word (BREASTUNI, COLONOSCOPY)
MIN_CUT = 4  # a cut last word this long may be completed

_NON_WORD = re.compile(r"[\W_]+")
_SPLIT = re.compile(r"(?<=[a-z])(?=[A-Z])"  # AbdPelvis
                    r"|(?<=[A-Z])(?=[A-Z][a-z]{3})"  # CAPRoutine, LSpine
                    r"|(?<=[A-Z]{2})(?=[a-z]{1,3}(?:[A-Z]|$))"  # HEADtoFEET
                    r"|(?<=[^\W\d_]{3})(?=\d)|(?<=\d)(?=[^\W\d_]{3})")  # 02CAP, Thorax2 (not T2, LS16)
_FOLD = str.maketrans({"Ł": "L", "Ø": "O", "Đ": "D", "Æ": "AE", "Œ": "OE", "Ħ": "H"})


def _fold(text: str) -> str:
    if text.isascii():
        return text.upper()
    decomposed = unicodedata.normalize("NFKD", text.upper())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_FOLD)


def spaced(text: str) -> str:
    """Folded upper case, every run of non-alphanumerics (/ - _ ^ , . space ...) one space."""
    return _NON_WORD.sub(" ", _fold(text)).strip()


def compact(text: str) -> str:
    """Folded upper case without non-alphanumerics: the form exact lookups compare (``C-Spine`` -> ``CSPINE``)."""
    return _NON_WORD.sub("", _fold(text))


def words(text: str) -> str:
    """`spaced` after splitting at case changes and letter/digit changes: the form free text is matched in."""
    return spaced(_SPLIT.sub(" ", text))


def trie_regex(entries: Iterable[str]) -> str:
    """One regex matching, at a word start, the longest entry that ends at a word end."""
    trie: dict[str, Any] = {}
    for word in entries:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = True

    def emit(node: dict[str, Any]) -> str:
        alternatives = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if "" in node:  # shorter match last: the engine prefers the longer path
            alternatives.append(r"(?!\S)")
        if len(alternatives) == 1 and "" not in node:
            return alternatives[0]
        return "(?:" + "|".join(alternatives) + ")"

    return emit(trie)


def phrase_regex(phrases: Iterable[str]) -> re.Pattern[str] | None:
    found = sorted({p for p in phrases if p}, key=len, reverse=True)
    return re.compile(r"(?<!\S)(?:" + "|".join(map(re.escape, found)) + r")(?!\S)") if found else None


class TextMatcher:
    """Longest-synonym search over normalised text: one compiled trie regex plus bounded result caches.

    `entries`: normalised synonym (`words`) -> anatomy id; `markers`: the subset naming non-anatomic objects.
    """

    def __init__(self, entries: Mapping[str, str], ignore: Iterable[str] = (), ignore_after: Iterable[str] = (),
                 other_words: Iterable[str] = (), markers: Mapping[str, str] | None = None,
                 whole_words: Iterable[str] = ()) -> None:
        self.owner = dict(entries)
        self.regex = re.compile(r"(?<!\S)(?=(" + trie_regex(self.owner) + "))") if self.owner else None
        self.markers = dict(markers or {})
        self.marker_regex = phrase_regex(self.markers)
        self.ignore = phrase_regex(ignore)
        self.cut = phrase_regex(ignore_after)
        vocabulary = {w for s in self.owner for w in s.split()}
        whole = {w for phrase in whole_words for w in phrase.split()}  # never read inside a longer word
        self.anatomy_words = frozenset(w for w in vocabulary if len(w) >= MIN_PART and w.isalpha() and w not in whole)
        self.fillers = frozenset(other_words)
        self.known = vocabulary | self.fillers
        self.sorted_words = sorted(self.anatomy_words)
        self._read = functools.lru_cache(maxsize=1 << 16)(self._analyse)
        self._split = functools.lru_cache(maxsize=1 << 14)(self._compound)
        # find(text): the deciding synonym or None; marker(text): the non-anatomic term or None. Both
        # cached on their own too: a repeated value (every instance of a series) costs one C-level lookup.
        self.find = functools.lru_cache(maxsize=1 << 16)(lambda text: self._read(text)[0])
        self.marker = functools.lru_cache(maxsize=1 << 16)(lambda text: self._read(text)[1])

    # -- normalisation
    def normalise(self, text: str) -> str:
        """`words(text)` with what is not read blanked out and compound words split."""
        norm = words(text)
        if self.cut is not None:
            hit = self.cut.search(norm)
            if hit is not None:
                norm = norm[:hit.start()]
        if self.ignore is not None:
            norm = self.ignore.sub(lambda m: " " * len(m.group()), norm)
        tokens = norm.split(" ")
        cut = len(text.strip()) in CUT_LENGTHS
        for i, token in enumerate(tokens):
            if token and token not in self.known and token.isalpha():
                tokens[i] = self._split(token, cut and i == len(tokens) - 1)
        return " ".join(tokens)

    def _complete(self, prefix: str) -> str | None:
        """The shortest known anatomy word starting with `prefix` (a word cut at the length limit)."""
        if len(prefix) < MIN_CUT:
            return None
        at = bisect.bisect_left(self.sorted_words, prefix)
        found = []
        while at < len(self.sorted_words) and self.sorted_words[at].startswith(prefix):
            found.append(self.sorted_words[at])
            at += 1
        return min(found, key=len) if found else None

    def _compound(self, token: str, cut: bool) -> str:
        """`token` as its known parts joined by spaces (fewest parts), else as it is.

        A one-letter part (``L``SPINE) must precede an anatomy word of at least 4 letters, or be a final ``W``
        (CAP``W``: with contrast). Failing a split: a known anatomy word of at least 5 letters that starts the
        token (``BREASTUNI``, ``COLONOSCOPY``, ``FEMURS``); then, for the last word of a cut value, the word
        it starts.
        """
        n = len(token)
        best: list[tuple[int, int] | None] = [None] * (n + 1)  # (parts, start of the last part)
        best[0] = (0, 0)
        for end in range(1, n + 1):
            for start in range(end):
                prev = best[start]
                part = token[start:end]
                if prev is None or not (part in self.fillers or (len(part) >= MIN_PART and part in self.anatomy_words)):
                    continue
                if best[end] is None or prev[0] + 1 < best[end][0]:
                    best[end] = (prev[0] + 1, start)
        if best[n] is not None and best[n][0] > 1:
            parts, end = [], n
            while end > 0:
                start = best[end][1]
                parts.append(token[start:end])
                end = start
            parts.reverse()
            if self._sound(parts):
                return " ".join(parts)
        for end in range(n - 1, MIN_PREFIX - 1, -1):
            if token[:end] in self.anatomy_words:
                return f"{token[:end]} {token[end:]}"
        if cut:
            return self._complete(token) or token
        return token

    def _sound(self, parts: list[str]) -> bool:
        """A split reads anatomy: an anatomy part, and every one-letter part where it means something."""
        if not any(p in self.anatomy_words for p in parts):
            return False
        for i, part in enumerate(parts):
            if len(part) == 1:
                last = i == len(parts) - 1
                following = parts[i + 1] if not last else ""
                if not ((last and part == "W") or (following in self.anatomy_words and len(following) >= 4)):
                    return False
        return True

    # -- search
    def _analyse(self, text: str) -> tuple[TextMatch | None, str | None]:
        norm = self.normalise(text)
        best, start = "", -1
        if self.regex is not None:
            for hit in self.regex.finditer(norm):  # every word start; the longest (then earliest) wins
                word = hit.group(1)
                if len(word) > len(best):
                    best, start = word, hit.start()
        found = TextMatch(self.owner[best], best, start, start + len(best)) if best else None
        hit = self.marker_regex.search(norm) if self.marker_regex is not None else None
        return found, (self.markers[hit.group()] if hit else None)
