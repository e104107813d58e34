"""Remove a file's own identifiers from the free text an index or census keeps.

A description, protocol name, body part or device field can hold what an operator typed: the
patient's name, ID or birth date, a UID. `Scrubber` replaces every occurrence of the file's own

* Patient Name: its words of 3 or more letters (family, given, middle names ... split on ``^``,
  ``=``, blanks and punctuation) and the whole name (and its first two words: family and given
  name) in either order ("DOE^JOHN" -> "doejohn", "johndoe"); matched as words (not inside a longer word, so "Ann"
  leaves "scanner" alone); shorter words are left alone (they would eat real words);
* Patient ID, Study / Series / SOP Instance UID: anywhere;
* Patient Birth Date: YYYYMMDD, DDMMYYYY and MMDDYYYY;

with `REMOVED`. Matching ignores case and separators: "Doe, John", "DOE_JOHN", "1980-01-01",
"01.01.1980" and "1.2.3" written "1_2_3" all match. A value shorter than 3 characters (once its
separators are gone) is never searched for. Quoted text in error messages (a reader's message
may quote a value) is removed too, as are the file's path and name (`scrub_error`).

What repeats (the texts, the patient's tokens) is prepared once and cached; each file then costs
one substring test per identifier over its texts' normalized forms (`Scrubber`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

REMOVED = "[removed]"
MIN_LENGTH = 3
# header keywords the scrubber reads: what repeats along a series, then the instance UID
IDENTITY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID")
INSTANCE_KEYWORD = "SOPInstanceUID"

_SEPARATORS = re.compile(r"[\W_]+")
_SEP = r"[\W_]*"  # what may stand between two characters of a value in the text
_NOT_LETTER_BEFORE, _NOT_LETTER_AFTER = r"(?<![^\W\d_])", r"(?![^\W\d_])"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_CACHE_LIMIT = 50_000


def normalize(text: str) -> str:
    """Lower case, separators (anything not a letter or digit) removed: what matching compares."""
    return _SEPARATORS.sub("", text.lower())


def name_tokens(name: str | None) -> tuple[list[str], list[str]]:
    """(words, wholes) of a Person Name value: normalized words of at least `MIN_LENGTH`
    characters, and the whole name and its first two words without separators, in the given and
    in the reverse order."""
    if not name:
        return [], []
    words = [normalize(w) for w in _SEPARATORS.split(name.replace("^", " ").replace("=", " ")) if w]
    words = [w for w in words if w]
    wholes = set()
    for part in (words, words[:2]):  # the whole name, and family + given (how a name is usually typed)
        if len(part) > 1:
            wholes.update(("".join(part), "".join(reversed(part))))
    return [w for w in words if len(w) >= MIN_LENGTH], sorted(w for w in wholes if len(w) >= MIN_LENGTH)


def date_tokens(date: str | None) -> list[str]:
    """A DA value (YYYYMMDD; separators ignored) as YYYYMMDD, DDMMYYYY and MMDDYYYY."""
    digits = normalize(date or "")
    if len(digits) != 8 or not digits.isdigit():
        return [digits] if len(digits) >= MIN_LENGTH else []
    year, month, day = digits[:4], digits[4:6], digits[6:]
    return sorted({digits, day + month + year, month + day + year})


def identifier_tokens(values: Iterable[str | None]) -> list[str]:
    """Normalized identifiers (IDs, UIDs) of at least `MIN_LENGTH` characters."""
    tokens = []
    for value in values:
        if value:
            token = value.replace(".", "")  # a UID: digits and dots
            tokens.append(token if token.isdigit() else normalize(value))
    return [t for t in tokens if len(t) >= MIN_LENGTH]


def _spelled(token: str) -> str:
    return _SEP.join(re.escape(c) for c in token)


@lru_cache(maxsize=4096)
def _pattern(words: tuple[str, ...], anywhere: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for all tokens, longest first: `words` as whole words, `anywhere` anywhere."""
    parts = [(len(t), f"{_NOT_LETTER_BEFORE}{_spelled(t)}{_NOT_LETTER_AFTER}") for t in words]
    parts += [(len(t), _spelled(t)) for t in anywhere]
    parts.sort(key=lambda p: -p[0])
    return re.compile("|".join(p for _, p in parts), re.IGNORECASE)


def remove(text: str | None, words: Sequence[str], anywhere: Sequence[str]) -> str | None:
    """`text` with every occurrence of the normalized tokens replaced by `REMOVED` (see module)."""
    if not text:
        return text
    norm = normalize(text)
    words = tuple(t for t in words if t in norm)
    anywhere = tuple(t for t in anywhere if t in norm)
    if not words and not anywhere:
        return text
    return _pattern(words, anywhere).sub(REMOVED, text)


def identity_tokens(identity: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(words, anywhere): the normalized tokens `remove` looks for, from a mapping with the DICOM
    keywords of `IDENTITY_KEYWORDS` and `INSTANCE_KEYWORD` (absent ones are skipped)."""
    words, wholes = name_tokens(_text(identity.get("PatientName")))
    anywhere = [*wholes, *date_tokens(_text(identity.get("PatientBirthDate"))),
                *identifier_tokens(_text(identity.get(k)) for k in
                                   ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", INSTANCE_KEYWORD))]
    return words, anywhere


def scrub_texts(texts: Sequence[str | None], identity: Mapping[str, Any]) -> tuple[str | None, ...]:
    """`texts` with the identifiers of `identity` (a header / record mapping with the DICOM keywords
    of `IDENTITY_KEYWORDS` and `INSTANCE_KEYWORD`) removed. Uncached: `Scrubber` for many files."""
    words, anywhere = identity_tokens(identity)
    return tuple(remove(t, words, anywhere) if isinstance(t, str) else t for t in texts)


def scrub_error(error: str | None, path: str | None = None) -> str | None:
    """An error note without quoted text and without the file's path or name."""
    if not error:
        return error
    error = _QUOTED.sub(REMOVED, error)
    if path:
        for part in sorted({path, *path.split("/")}, key=len, reverse=True):
            if len(part) >= MIN_LENGTH and part in error:
                error = error.replace(part, REMOVED)
    return error


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):  # DICOM JSON Person Name {"Alphabetic": ...}
        return "=".join(str(v) for v in value.values() if v)
    return str(value)


class Scrubber:
    """`scrub_texts` for a stream of files, caching what repeats along a series.

    `texts(values, identity, instance_uid)`: values is a tuple of texts (None allowed), identity the
    tuple of `IDENTITY_KEYWORDS` values, instance_uid the SOP Instance UID (or None). Per file: a
    lookup of each text's normalized form and of the patient's tokens (both cached), and one
    substring test per identifier; only when one is found are
    the texts rewritten (cached too: a series whose descriptions all hold the name costs it once).
    """

    def __init__(self) -> None:
        self._norms: dict[str, str] = {}  # text -> normalize(text)
        # texts -> (their normalized forms joined by "|", the longest one's length)
        self._joined: dict[tuple[str | None, ...], tuple[str, int]] = {}
        self._patients: dict[tuple[str | None, ...], tuple[list[str], list[str]]] = {}  # (name, ID, birth) -> tokens
        self._uids: dict[tuple[str | None, ...], list[str]] = {}  # (study, series UID) -> tokens
        self._scrubbed: dict[tuple[Any, ...], tuple[str | None, ...]] = {}  # (texts, tokens found) -> result

    def texts(self, values: tuple[str | None, ...], identity: tuple[str | None, ...],
              instance_uid: str | None) -> tuple[str | None, ...]:
        found = self._joined.get(values)
        if found is None:
            found = _remember(self._joined, values, self._join(values))
        joined, longest = found
        if longest < MIN_LENGTH:
            return values
        tokens = self._patients.get(identity[:3])
        if tokens is None:
            tokens = _remember(self._patients, identity[:3], identity_tokens(dict(zip(IDENTITY_KEYWORDS, identity[:3]))))
        uids = self._uids.get(identity[3:])
        if uids is None:
            uids = _remember(self._uids, identity[3:], identifier_tokens(identity[3:]))
        words = [t for t in tokens[0] if t in joined]
        anywhere = [t for t in (*tokens[1], *uids) if t in joined]
        if instance_uid:
            token = instance_uid.replace(".", "")
            if len(token) <= longest or not token.isalnum():  # else too long to be in any text
                token = token if token.isdigit() else normalize(instance_uid)
                if len(token) >= MIN_LENGTH and token in joined:
                    anywhere.append(token)
        if not words and not anywhere:
            return values
        key = (values, tuple(words), tuple(anywhere))
        scrubbed = self._scrubbed.get(key)
        if scrubbed is None:
            scrubbed = _remember(self._scrubbed, key, tuple(
                remove(t, words, anywhere) if isinstance(t, str) else t for t in values))
        return scrubbed

    def _join(self, values: tuple[str | None, ...]) -> tuple[str, int]:
        norms, parts = self._norms, []
        for text in values:
            if text is not None:
                norm = norms.get(text)
                parts.append(norm if norm is not None else _remember(norms, text, normalize(text)))
        return "|".join(parts), max(map(len, parts), default=0)


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    """cache[key] = value (the cache emptied first when full); returns value."""
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value
