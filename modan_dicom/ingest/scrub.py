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

What repeats along a series (the texts, the patient and the study / series UIDs) is scrubbed once
and cached; the SOP Instance UID, new in every file, costs one substring test per file.
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
    tokens = (normalize(v) for v in values if v)
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


def scrub_texts(texts: Sequence[str | None], identity: Mapping[str, Any]) -> tuple[str | None, ...]:
    """`texts` with the identifiers of `identity` (a header / record mapping with the DICOM keywords
    of `IDENTITY_KEYWORDS` and `INSTANCE_KEYWORD`) removed. Uncached: `Scrubber` for many files."""
    words, wholes = name_tokens(_text(identity.get("PatientName")))
    anywhere = [*wholes, *date_tokens(_text(identity.get("PatientBirthDate"))),
                *identifier_tokens(_text(identity.get(k)) for k in
                                   ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", INSTANCE_KEYWORD))]
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
    tuple of `IDENTITY_KEYWORDS` values, instance_uid the SOP Instance UID (or None).
    """

    def __init__(self) -> None:
        # (values, identity) -> (scrubbed values, their normalized texts joined, or None without digits)
        self._cache: dict[tuple[Any, ...], tuple[tuple[str | None, ...], str | None]] = {}

    def texts(self, values: tuple[str | None, ...], identity: tuple[str | None, ...],
              instance_uid: str | None) -> tuple[str | None, ...]:
        key = (values, identity)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[key] = self._series(values, identity)
        scrubbed, joined = found
        if instance_uid and joined is not None:
            token = instance_uid.replace(".", "")
            if not token.isdigit():
                token = normalize(instance_uid)
            if len(token) >= MIN_LENGTH and token in joined:
                scrubbed = tuple(remove(t, (), (token,)) for t in scrubbed)
        return scrubbed

    @staticmethod
    def _series(values: tuple[str | None, ...], identity: tuple[str | None, ...]
                ) -> tuple[tuple[str | None, ...], str | None]:
        scrubbed = scrub_texts(values, dict(zip(IDENTITY_KEYWORDS, identity)))
        joined = "|".join(normalize(t) for t in scrubbed if t)
        return scrubbed, joined if any(c.isdigit() for c in joined) else None
