"""Keyed pseudonyms for patient and study / series / instance identifiers.

A pseudonym is HMAC-SHA256(salt, kind + ":" + value), cut to 20 hex characters (80 bits) and
prefixed by its kind: `pat-…`, `stu-…`, `ser-…`, `ins-…`, and for the index's row key and source
`fil-…` (of the relative path), `src-…` (of the source folder or archive address). The same value and salt always give
the same pseudonym (patient-level grouping survives, across runs and between the file index and
the PACS census); without the salt the value cannot be recovered or confirmed by guessing.

The salt comes from, in order: the `salt` argument (`--salt`), the environment variable
MODAN_SALT, or a file `.modan-salt` beside the index, generated once (32 random bytes, hex, mode
0600) and reused by every later run writing into that folder. Runs that start together agree on
one salt file (`create_once`: the first to create it wins, the others read it). Only a fingerprint of the salt
(a slow hash of it) is written into the index metadata, never the salt itself.

With `keep_uids=True` the Study / Series / SOP Instance UIDs are kept as they are (UIDs are not
names, and some pipelines need to join back to the archive), but the Patient ID is still
pseudonymised: it is a direct identifier.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import MARKER_PREFIX, create_once
from ..errors import ConfigError, OutputError

SALT_ENV = "MODAN_SALT"
SALT_FILE = MARKER_PREFIX + "salt"
KEY_HEX = 20
PREFIX = {"patient": "pat-", "study": "stu-", "series": "ser-", "instance": "ins-",
          "file": "fil-", "source": "src-"}  # file: a relative path (`file_key`); source: the indexed folder
# key column -> (kind, raw DICOM keyword)
KEY_COLUMNS = {
    "patient_key": ("patient", "PatientID"),
    "study_key": ("study", "StudyInstanceUID"),
    "series_key": ("series", "SeriesInstanceUID"),
    "instance_key": ("instance", "SOPInstanceUID"),
}


def pseudonym(salt: bytes, kind: str, value: str) -> str:
    """`kind` ("patient", "study", "series", "instance") pseudonym of `value` under `salt`."""
    # hmac.digest: the one-shot C implementation, same bytes as hmac.new(...).digest()
    digest = hmac.digest(salt, f"{kind}:{value}".encode(), "sha256")
    return PREFIX[kind] + digest[:KEY_HEX // 2].hex()


def salt_fingerprint(salt: bytes) -> str:
    """A short, slow-to-invert tag of the salt: tells whether two indexes share a salt."""
    return hashlib.pbkdf2_hmac("sha256", salt, b"modan-dicom salt fingerprint", 20_000)[:6].hex()


@dataclass
class Pseudonymizer:
    """Turns raw identifiers into the index's key columns (with a per-process cache)."""

    salt: bytes
    keep_uids: bool = False
    # kind -> {value: pseudonym}; patients, studies and series repeat (one HMAC each), instances do not
    _cache: dict[str, dict[str, str]] = field(default_factory=lambda: {kind: {} for kind in PREFIX}, repr=False)

    def key(self, kind: str, value: str | None) -> str | None:
        if not value:
            return None
        if self.keep_uids and kind != "patient":
            return value
        cache = self._cache[kind]
        cached = cache.get(value)
        if cached is None:
            if kind == "instance":
                return pseudonym(self.salt, kind, value)
            if len(cache) > 100_000:  # bounded
                cache.clear()
            cached = cache[value] = pseudonym(self.salt, kind, value)
        return cached

    def keys(self, raw: Mapping[str, Any]) -> dict[str, str | None]:
        """{patient_key, study_key, series_key, instance_key} for a mapping of raw DICOM values."""
        return {column: self.key(kind, raw.get(keyword)) for column, (kind, keyword) in KEY_COLUMNS.items()}

    def key_tuple(self, patient: str | None, study: str | None, series: str | None,
                  instance: str | None) -> tuple[str | None, str | None, str | None, str | None]:
        """(patient_key, study_key, series_key, instance_key), as `key` gives them, without the
        dicts of `keys` (the file index calls it once per file)."""
        key = self.key
        if self.keep_uids:
            return key("patient", patient), study or None, series or None, instance or None
        cache = self._cache
        return (
            (cache["patient"].get(patient) or key("patient", patient)) if patient else None,
            (cache["study"].get(study) or key("study", study)) if study else None,
            (cache["series"].get(series) or key("series", series)) if series else None,
            pseudonym(self.salt, "instance", instance) if instance else None,
        )

    def file_key(self, path: str) -> str:
        """The row key of a relative path (`fil-…`): whatever `keep_uids` says, paths are never kept."""
        return pseudonym(self.salt, "file", path)

    def source_key(self, source: str) -> str:
        """The keyed pseudonym of an index's source folder or archive address (`src-…`)."""
        return pseudonym(self.salt, "source", source)

    @property
    def fingerprint(self) -> str:
        return salt_fingerprint(self.salt)


def resolve_salt(salt: str | bytes | None, index_dir: str | os.PathLike[str] | None) -> tuple[bytes, str]:
    """Return (salt bytes, where it came from: "argument" | "environment" | "file" | "new file" |
    "ephemeral").

    Without an argument or MODAN_SALT, the salt file in `index_dir` is read, or created (0600)
    when absent. Without `index_dir` (an index kept in memory) a random salt is used for this
    call only: the keys are then not comparable with any other run.
    """
    if salt is not None and salt != "":
        return (salt.encode() if isinstance(salt, str) else bytes(salt)), "argument"
    env = os.environ.get(SALT_ENV)
    if env:
        return env.encode(), "environment"
    if index_dir is None:
        return secrets.token_hex(32).encode(), "ephemeral"
    path = Path(index_dir) / SALT_FILE
    if path.exists():
        return _read_salt_file(path), "file"
    value = secrets.token_hex(32)
    try:
        created = create_once(path, (value + "\n").encode("ascii"), mode=0o600)
    except OSError as exc:
        raise OutputError(f"cannot create the salt file {path}: {exc.strerror or exc}") from exc
    if not created:  # another run created it first: its salt is the one kept
        return _read_salt_file(path), "file"
    return value.encode(), "new file"


def creates_salt_file(salt: str | bytes | None, index_dir: str | os.PathLike[str] | None) -> bool:
    """Whether `resolve_salt(salt, index_dir)` would create a new salt file (none given, none there)."""
    return ((salt is None or salt == "") and not os.environ.get(SALT_ENV) and index_dir is not None
            and not (Path(index_dir) / SALT_FILE).exists())


def _read_salt_file(path: Path) -> bytes:
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the salt file {path}: {exc}") from exc
    if not value:
        raise ConfigError(f"the salt file {path} is empty; delete it or pass --salt")
    return value.encode()
