"""Profiles: parsing profiles.yaml, and projecting full-vocabulary terms onto a profile's axes.

A term projects onto the axis covering it or its nearest covered ancestor (``cervical_spine`` -> ``spine``). A
multi-region term that no axis covers itself (``chest_abdomen_pelvis``) projects onto every axis its parts
project onto (``lung`` and ``abdomen``), or, with ``multi_region: leave_out``, onto none when that is more than
one. ``exclude`` names (modality, subtrees) the profile has no place for (RadImageNet's ultrasound has no
cardiac class: an echocardiogram is left out, not projected onto ``lung`` through the chest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .catalog import Catalog
from .terms import MULTI_REGION, Axis, Profile
from .yamlfile import problem, strings

_PROFILE_KEYS = {"description", "modalities", "anatomy", "multi_region", "exclude"}


def parse_profiles(data: Any, path: Path, catalog: Catalog) -> dict[str, Profile]:
    """Profiles of a profiles file (``profiles: {name: spec}``) or of a one-profile file (``name:`` + spec)."""
    if isinstance(data, dict) and "profiles" in data:
        specs = data["profiles"]
        if not isinstance(specs, dict) or not specs:
            raise problem(path, "profiles", "expected a mapping of profile names to profiles")
    elif isinstance(data, dict) and isinstance(data.get("name"), str):
        specs = {data["name"]: {k: v for k, v in data.items() if k != "name"}}
    else:
        raise problem(path, "file", "expected 'profiles:' (or a single profile with 'name:')")
    known = {"modality": {m.id for m in catalog.modalities}, "anatomy": set(catalog.by_id)}
    every = {"modality": [m.id for m in catalog.modalities], "anatomy": [t.id for t in catalog.anatomy]}
    profiles: dict[str, Profile] = {}
    for name, spec in specs.items():
        entry = f"profile '{name}'"
        if not isinstance(spec, dict):
            raise problem(path, entry, "expected a mapping with 'modalities' and 'anatomy'")
        unknown = sorted(set(spec) - _PROFILE_KEYS)
        if unknown:
            raise problem(path, entry, f"unknown field(s) {', '.join(map(repr, unknown))}")
        axes: list[Axis] = []
        for kind, key in (("modality", "modalities"), ("anatomy", "anatomy")):
            value = spec.get(key, [])
            if value == "all":
                value = every[kind]
            if not isinstance(value, list):
                raise problem(path, entry, f"'{key}' must be a list of axes or 'all'")
            covered: dict[str, str] = {}
            for item in value:
                axis_id, covers = (item, None) if isinstance(item, str) else (
                    (item.get("axis"), item.get("covers")) if isinstance(item, dict) else (None, None))
                if not isinstance(axis_id, str):
                    raise problem(path, entry, f"{kind} axis {item!r}: expected an id or {{axis, covers}}")
                where = f"{entry}: {kind} axis '{axis_id}'"
                covers_t = strings(covers, path, where, "covers") or (axis_id,)
                if any(a.id == axis_id for a in axes):
                    raise problem(path, where, "duplicate axis")
                for term in (axis_id, *covers_t):
                    if term not in known[kind]:
                        raise problem(path, where, f"unknown {kind} term '{term}'")
                    if covered.get(term, axis_id) != axis_id:
                        raise problem(path, where, f"'{term}' is already covered by axis '{covered[term]}'")
                for term in covers_t:
                    covered[term] = axis_id
                axes.append(Axis(axis_id, kind, covers_t))
            for axis in axes:  # an axis term must project onto its own axis (else decode would lie)
                if axis.kind != kind:
                    continue
                chain = (axis.id, *catalog.ancestors[axis.id]) if kind == "anatomy" else (axis.id,)
                nearest = next((covered[t] for t in chain if t in covered), None)
                if nearest != axis.id:
                    raise problem(path, f"{entry}: {kind} axis '{axis.id}'",
                                   f"its own term projects onto {nearest!r}; cover it (or an ancestor)")
        if not axes:
            raise problem(path, entry, "has no axes")
        multi = spec.get("multi_region", "project")
        if multi not in MULTI_REGION:
            raise problem(path, entry, f"'multi_region' must be one of {', '.join(MULTI_REGION)} (got {multi!r})")
        profiles[str(name)] = Profile(str(name), tuple(axes), multi, _exclusions(spec.get("exclude"), path, entry,
                                                                                   known))
    return profiles



def _exclusions(value: Any, path: Path, entry: str, known: dict[str, set[str]]
                ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``exclude: [{modality: US, anatomy: [heart]}]`` checked against the known ids."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise problem(path, entry, "'exclude' must be a list of {modality, anatomy}")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"modality", "anatomy"}:
            raise problem(path, entry, f"exclude entry {item!r}: expected {{modality, anatomy}}")
        modality = item["modality"]
        if modality not in known["modality"]:
            raise problem(path, entry, f"exclude: unknown modality term {modality!r}")
        terms = strings(item["anatomy"], path, entry, "exclude anatomy")
        for term in terms:
            if term not in known["anatomy"]:
                raise problem(path, entry, f"exclude: unknown anatomy term '{term}'")
        out.append((str(modality), terms))
    return tuple(out)


class Projection:
    """One profile's tables: modality id -> axis, anatomy id -> axes (profile order), per-modality exclusions."""

    def __init__(self, catalog: Catalog, profile: Profile, expand_ancestors: bool = False) -> None:
        self.axes = profile.axes
        self.index = {a.id: i for i, a in enumerate(self.axes)}
        self.modality_axis: dict[str, str | None] = {m.id: None for m in catalog.modalities}
        cover: dict[str, str] = {}
        for axis in self.axes:
            for term in axis.covers:
                (cover if axis.kind == "anatomy" else self.modality_axis)[term] = axis.id
        self.anatomy_axes: dict[str, tuple[str, ...]] = {}
        for term in catalog.anatomy:
            self.anatomy_axes[term.id] = self._axes_of(term.id, catalog, cover, profile.multi_region)
        self.bits: dict[str, tuple[int, ...]] = {}
        for term in catalog.anatomy:
            found = set(self.anatomy_axes[term.id])
            if expand_ancestors:  # the axes covering its ancestors themselves (never through their parts)
                found |= {cover[t] for t in catalog.ancestors[term.id] if t in cover}
            self.bits[term.id] = tuple(sorted(self.index[a] for a in found))
        self.excluded: dict[str, frozenset[str]] = {}
        for modality, roots in profile.exclude:
            left_out = {t.id for t in catalog.anatomy
                        if t.id in roots or any(a in roots for a in catalog.ancestors[t.id])}
            self.excluded[modality] = self.excluded.get(modality, frozenset()) | frozenset(left_out)

    def _axes_of(self, term: str, catalog: Catalog, cover: dict[str, str], multi_region: str,
                 seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        if term in cover:
            return (cover[term],)
        parts = catalog.by_id[term].parts
        if parts and term not in seen:
            found = {a for p in parts for a in self._axes_of(p, catalog, cover, multi_region, seen | {term})}
            if len(found) > 1 and multi_region == "leave_out":
                return ()
            return tuple(a.id for a in self.axes if a.id in found)
        return next(((cover[a],) for a in catalog.ancestors[term] if a in cover), ())

    def axes_for(self, anatomy: str, modality: str | None = None) -> tuple[str, ...]:
        """The anatomy axes of a term, seen with a modality (KeyError for an unknown term)."""
        axes = self.anatomy_axes[anatomy]
        if axes and modality is not None and anatomy in self.excluded.get(modality, ()):
            return ()
        return axes
