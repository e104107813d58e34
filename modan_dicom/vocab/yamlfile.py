"""Reading vocabulary YAML and checking its fields: every problem is one VocabularyError naming file and entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import VocabularyError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def problem(path: Path | str, entry: str, problem: str) -> VocabularyError:
    return VocabularyError(f"{path}: {entry}: {problem}")


def read_yaml(path: Path) -> Any:
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
        raise problem(path, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def strings(value: Any, path: Path, entry: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise problem(path, entry, f"'{key}' must be a list of strings")
    return tuple(str(v).strip() for v in value if str(v).strip())


def optional_string(value: Any, path: Path, entry: str, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise problem(path, entry, f"'{key}' must be a string")
    return str(value).strip() or None


def mapping_items(data: Any, key: str, path: Path) -> list[Any]:
    if not isinstance(data, dict):
        raise problem(path, "file", "expected a mapping at the top level")
    items = data.get(key)
    if not isinstance(items, list):
        raise problem(path, key, "expected a list")
    return items


def optional_list(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise problem(path, key, "expected a list")
    return value


def entry_dict(item: Any, allowed: frozenset[str], path: Path, label: str, index: int, id_re: re.Pattern[str],
                id_rule: str) -> tuple[dict[str, Any], str, str]:
    if not isinstance(item, dict):
        raise problem(path, f"{label} #{index + 1}", "expected a mapping with an 'id'")
    ident = item.get("id")
    if not isinstance(ident, str) or not id_re.fullmatch(ident):
        raise problem(path, f"{label} #{index + 1}", f"id must be {id_rule} (got {ident!r})")
    entry = f"{label} '{ident}'"
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise problem(path, entry, f"unknown field(s) {', '.join(map(repr, unknown))}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise problem(path, entry, "'name' must be a non-empty string")
    return item, ident, entry


class Claims:
    """A namespace of normalised keys, each owned by one term; a second owner is a validation error."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label
        self.owner: dict[str, tuple[str, str, str]] = {}  # key -> (term, kind, value as written)

    def claim(self, key: str, term: str, kind: str, value: str) -> None:
        if not key:
            raise problem(self.path, f"{self.label} '{term}'", f"{kind} {value!r} has no letters or digits")
        previous = self.owner.setdefault(key, (term, kind, value))
        if previous[0] != term:
            raise problem(self.path, f"{self.label} '{term}'",
                           f"{kind} '{value}' is already claimed by {self.label} '{previous[0]}' "
                           f"(as {previous[1]} '{previous[2]}')")

