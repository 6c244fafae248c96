"""A per-resource-type index of the packaged StructureDefinition snapshots, built once.

Validation walks a resource against a tree of `ElementDef`s instead of re-reading the
snapshot, so every lookup (cardinality, binding, reference targets, invariants) is a
field access on a frozen object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server.fhir.validation.invariants import Invariant, compile_invariants

DEFINITIONS_DIR = Path(__file__).resolve().parent.parent / "definitions"
_BACKBONE_TYPES = frozenset({"BackboneElement", "Element"})
_ANY_RESOURCE = "Resource"


@dataclass(frozen=True, slots=True)
class RequiredBinding:
    """A `required` binding to a complete value set: the only codes a client may send."""

    value_set: str
    codes: frozenset[str]
    system_codes: frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True, eq=False)
class ElementDef:
    """One snapshot element with everything validation needs, children included."""

    path: str
    json_types: tuple[tuple[str, str], ...]  # (JSON property name, FHIR type code)
    min: int
    repeats: bool
    binding: RequiredBinding | None
    target_types: frozenset[str] | None  # None: any resource type may be referenced
    invariants: tuple[Invariant, ...]
    children: tuple[ElementDef, ...]
    # Derived once, because the walker and the cardinality check run per JSON object.
    json_names: tuple[str, ...] = field(init=False)
    required_children: tuple[ElementDef, ...] = field(init=False)
    child_by_name: dict[str, tuple[ElementDef, str]] = field(init=False)

    def __post_init__(self) -> None:
        """Precompute the lookups used on every validation."""
        set_ = object.__setattr__
        set_(self, "json_names", tuple(name for name, _ in self.json_types))
        set_(self, "required_children", tuple(c for c in self.children if c.min >= 1))
        set_(self, "child_by_name", {name: (child, code) for child in self.children
                                     for name, code in child.json_types})


@dataclass(frozen=True, slots=True)
class ResourceIndex:
    """The element tree of one resource type and the invariants fhirpathpy cannot run."""

    resource_type: str
    root: ElementDef
    skipped_invariants: tuple[str, ...]


class UnknownDefinition(LookupError):
    """No StructureDefinition is packaged for the requested resource type."""


@cache
def _structure_definitions() -> dict[str, dict[str, Any]]:
    """Packaged StructureDefinitions keyed by type, read from disk once per process."""
    raw = json.loads((DEFINITIONS_DIR / "structure-definitions.json").read_text("utf-8"))
    return {sd["type"]: sd for sd in raw}


@cache
def _required_value_sets() -> dict[str, dict[str, Any]]:
    """Expanded required value sets keyed by unversioned canonical URL."""
    return json.loads((DEFINITIONS_DIR / "required-valuesets.json").read_text("utf-8"))


@cache
def known_resource_types() -> frozenset[str]:
    """Every R4 resource type name, to tell `Type/id` references from arbitrary paths."""
    value_set = _required_value_sets()["http://hl7.org/fhir/ValueSet/resource-types"]
    return frozenset(code["code"] for code in value_set["codes"])


def definition_types() -> tuple[str, ...]:
    """The resource types that have a packaged StructureDefinition."""
    return tuple(_structure_definitions())


@cache
def resource_index(resource_type: str) -> ResourceIndex:
    """Build (once) the element tree of `resource_type` with compiled invariants."""
    sd = _structure_definitions().get(resource_type)
    if sd is None:
        raise UnknownDefinition(f"No StructureDefinition for {resource_type!r}")
    elements = sd["snapshot"]["element"]
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for element in elements[1:]:
        by_parent.setdefault(element["path"].rsplit(".", 1)[0], []).append(element)
    skipped: list[str] = []
    root = _build_element(elements[0], by_parent, skipped)
    return ResourceIndex(resource_type, root, tuple(sorted(set(skipped))))


def _build_element(element: dict[str, Any], by_parent: dict[str, list[dict[str, Any]]],
                   skipped: list[str]) -> ElementDef:
    """Turn one snapshot element (and, recursively, its children) into an ElementDef."""
    path: str = element["path"]
    type_codes = [t["code"] for t in element.get("type", [])]
    constraints = [c for c in element.get("constraint", []) if c.get("severity") == "error"]
    invariants, skipped_keys = compile_invariants(constraints, _fhirpath_base(path, type_codes),
                                                  root="." not in path)
    skipped.extend(skipped_keys)
    children = tuple(_build_element(child, by_parent, skipped) for child in by_parent.get(path, []))
    return ElementDef(
        path=path,
        json_types=_json_types(path, type_codes),
        min=int(element.get("min", 0)),
        repeats=element.get("max", "1") != "1",
        binding=_required_binding(element.get("binding")),
        target_types=_target_types(element.get("type", [])),
        invariants=invariants,
        children=children,
    )


def _json_types(path: str, type_codes: list[str]) -> tuple[tuple[str, str], ...]:
    """JSON names of an element: `value[x]` becomes `valueString`, `valueBoolean`, ..."""
    name = path.rsplit(".", 1)[-1]
    if not name.endswith("[x]"):
        return ((name, type_codes[0] if type_codes else ""),)
    stem = name[:-3]
    return tuple((stem + code[0].upper() + code[1:], code) for code in type_codes)


def _fhirpath_base(path: str, type_codes: list[str]) -> str:
    """The type fhirpathpy needs to resolve choice elements when starting at this element."""
    if len(type_codes) == 1 and type_codes[0] not in _BACKBONE_TYPES:
        return type_codes[0]
    return path


def _required_binding(binding: dict[str, Any] | None) -> RequiredBinding | None:
    """A checkable binding: strength `required` and a complete packaged expansion."""
    if not binding or binding.get("strength") != "required" or "valueSet" not in binding:
        return None
    url = binding["valueSet"].split("|", 1)[0]
    value_set = _required_value_sets().get(url)
    if value_set is None or not value_set.get("complete"):
        return None
    codes = value_set["codes"]
    return RequiredBinding(
        value_set=url,
        codes=frozenset(c["code"] for c in codes),
        system_codes=frozenset((c.get("system", ""), c["code"]) for c in codes),
    )


def _target_types(types: list[dict[str, Any]]) -> frozenset[str] | None:
    """Resource types a Reference element may point at, from its `targetProfile`s."""
    targets = {profile.rsplit("/", 1)[-1]
               for t in types if t["code"] == "Reference"
               for profile in t.get("targetProfile", [])}
    if not targets or _ANY_RESOURCE in targets:
        return None
    return frozenset(targets)
