"""Search parameter definitions: the official R4 ones we ship plus custom ones from `capability/`.

Only parameters the server can really index and match are kept, so the CapabilityStatement
never advertises a parameter that silently does nothing. FHIRPath is evaluated by
`fhirpathpy`; the R4 `resolve() is Type` idiom is rewritten into a reference-prefix test
because fhirpathpy has no `resolve()`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import fhirpathpy
from fhirpathpy.models import models as fhirpath_models

from fhir_server.fhir.search.simple_paths import PathEvaluator, compile_simple_path

ParamType = Literal["token", "reference", "date", "string", "uri"]

INDEXABLE_TYPES: Final[frozenset[str]] = frozenset({"token", "reference", "date", "string", "uri"})
COMMON_BASES: Final[frozenset[str]] = frozenset({"Resource", "DomainResource"})
DATE_COMPARATORS: Final = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")

# Phonetic search promises sound-alike matching; we would only do starts-with on the name.
UNSUPPORTED_CODES: Final[frozenset[str]] = frozenset({"phonetic"})

_MODIFIERS: Final[Mapping[str, tuple[str, ...]]] = {
    "token": ("not", "missing"),
    "uri": ("not", "missing"),
    "date": ("missing",),
    "string": ("exact", "contains", "missing"),
    "reference": ("type",),
}
_RESOLVE_IS = re.compile(r"resolve\(\)\s+is\s+([A-Za-z]+)")
_COMMON_ROOT = re.compile(r"(?<![\w.])(?:Domain)?Resource\.")

Evaluator = Callable[[dict[str, Any]], list[Any]]
_UNCOMPILED = object()


@dataclass(frozen=True, slots=True)
class SearchParameterDef:
    """One search parameter as the server supports it (what the CapabilityStatement advertises)."""

    code: str
    type: ParamType
    expression: str
    base: tuple[str, ...]
    targets: tuple[str, ...] = ()
    url: str = ""
    description: str = ""
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    fhirpath: str = ""
    """The expression actually evaluated (rewritten for fhirpathpy); empty for `_id`."""

    @property
    def is_common(self) -> bool:
        """True for Resource-level parameters (`_id`, `_lastUpdated`, `_tag`, ...)."""
        return bool(COMMON_BASES.intersection(self.base))


def to_evaluable(expression: str) -> str:
    """Rewrite R4 FHIRPath idioms fhirpathpy lacks: `resolve() is T` and `Resource.` roots."""

    def by_prefix(match: re.Match[str]) -> str:
        # One regex (relative or absolute, optional _history) is ~2x faster in fhirpathpy than
        # `startsWith(...) or contains(...)`, and it runs on every write.
        kind = match.group(1)
        return f"reference.matches('^(.*/)?{kind}/[^/]+(/_history/[^/]+)?$')"

    rewritten = _RESOLVE_IS.sub(by_prefix, expression)
    # fhirpathpy does not treat `Resource` as the type of every resource: evaluate from the root.
    return _COMMON_ROOT.sub("", rewritten)


class SearchParameterRegistry:
    """The search parameters per resource type, with compiled FHIRPath evaluators."""

    def __init__(self, resources_: Iterable[Mapping[str, Any]]) -> None:
        self._by_type: dict[str, dict[str, SearchParameterDef]] = {}
        self._common: dict[str, SearchParameterDef] = {}
        self._evaluators: dict[str, Evaluator] = {}
        self._excluded: dict[str, str] = {}
        self._views: dict[str, Mapping[str, SearchParameterDef]] = {}
        self._fast: dict[tuple[str, str], PathEvaluator | None | object] = {}
        model = fhirpath_models["r4"]
        for resource in resources_:
            self._add(resource, model)

    def _add(self, resource: Mapping[str, Any], model: dict[str, Any]) -> None:
        """Keep one SearchParameter resource if we can index it; remember why not otherwise."""
        code, url = str(resource.get("code", "")), str(resource.get("url", ""))
        reason = _unsupported_reason(resource)
        definition = None if reason else _definition(resource)
        if definition is not None and definition.code != "_id":
            try:
                evaluator = fhirpathpy.compile(definition.fhirpath, model)
                # fhirpathpy parses leniently and reports unknown functions or bad arity only
                # when evaluating, so probe each base once with an empty resource.
                for base in definition.base:
                    evaluator({"resourceType": "Basic" if base in COMMON_BASES else base})
                self._evaluators[definition.url] = evaluator
            except Exception as exc:  # fhirpathpy raises assorted, untyped errors
                reason = f"fhirpathpy cannot compile {definition.fhirpath!r}: {exc}"
        if reason or definition is None:
            self._excluded[url or code] = reason or "invalid definition"
            return
        if definition.is_common:
            self._common[code] = definition
        for base in definition.base:
            if base not in COMMON_BASES:
                self._by_type.setdefault(base, {})[code] = definition

    def for_type(self, resource_type: str) -> Mapping[str, SearchParameterDef]:
        """Every parameter usable on `resource_type`, common ones included, by code."""
        found = self._views.get(resource_type)
        if found is None:
            found = MappingProxyType({**self._common, **self._by_type.get(resource_type, {})})
            self._views[resource_type] = found
        return found

    def get(self, resource_type: str, code: str) -> SearchParameterDef | None:
        """The parameter `code` on `resource_type`, or None when unsupported."""
        found = self._by_type.get(resource_type, {}).get(code)
        return found if found is not None else self._common.get(code)

    def evaluate(self, definition: SearchParameterDef, resource: dict[str, Any]) -> list[Any]:
        """The values `definition`'s expression selects in `resource` (raw JSON values)."""
        key = (definition.url, resource.get("resourceType", ""))
        fast = self._fast.get(key, _UNCOMPILED)
        if fast is _UNCOMPILED:
            fast = compile_simple_path(definition.expression, key[1], choice_element_paths())
            self._fast[key] = fast
        if fast is not None:
            return fast(resource)
        return self.evaluate_with_fhirpathpy(definition, resource)

    def evaluate_with_fhirpathpy(self, definition: SearchParameterDef,
                                 resource: dict[str, Any]) -> list[Any]:
        """The reference evaluation by fhirpathpy (what the fast path must always equal)."""
        evaluator = self._evaluators.get(definition.url)
        return evaluator(resource) if evaluator is not None else []

    @property
    def excluded(self) -> Mapping[str, str]:
        """Definitions left out (url or code → reason), for diagnostics and the report."""
        return MappingProxyType(self._excluded)


def _unsupported_reason(resource: Mapping[str, Any]) -> str | None:
    """Why a SearchParameter resource cannot be served, or None if it can."""
    if resource.get("resourceType") != "SearchParameter":
        return "not a SearchParameter resource"
    if resource.get("status") == "retired":
        return "retired"
    if resource.get("type") not in INDEXABLE_TYPES:
        return f"type {resource.get('type')!r} is not indexed"
    if not resource.get("code") or not resource.get("base"):
        return "missing code or base"
    if resource.get("code") in UNSUPPORTED_CODES:
        return "phonetic matching is not implemented"
    if not resource.get("expression"):
        return "no FHIRPath expression"
    return None


def _definition(resource: Mapping[str, Any]) -> SearchParameterDef:
    """Build the typed definition, with the modifiers and comparators we actually implement."""
    kind: ParamType = resource["type"]
    code = str(resource["code"])
    expression = str(resource["expression"])
    return SearchParameterDef(
        code=code,
        type=kind,
        expression=expression,
        base=tuple(resource["base"]),
        targets=tuple(resource.get("target", ())),
        url=str(resource.get("url") or f"urn:search-parameter:{'-'.join(resource['base'])}-{code}"),
        description=str(resource.get("description", "")),
        modifiers=("not",) if code == "_id" else _MODIFIERS[kind],
        comparators=DATE_COMPARATORS if kind == "date" else (),
        fhirpath="" if code == "_id" else to_evaluable(expression),
    )


@functools.cache
def choice_element_paths() -> frozenset[str]:
    """`Patient.deceased` for `Patient.deceased[x]`: paths only fhirpathpy navigates correctly."""
    source = resources.files("fhir_server.fhir").joinpath("definitions/structure-definitions.json")
    structures = json.loads(source.read_text(encoding="utf-8"))
    return frozenset(element["path"].removesuffix("[x]") for structure in structures
                     for element in structure["snapshot"]["element"]
                     if element["path"].endswith("[x]"))


def packaged_definitions() -> list[dict[str, Any]]:
    """The official R4 SearchParameters shipped with the package."""
    source = resources.files("fhir_server.fhir").joinpath("definitions/search-parameters.json")
    loaded: list[dict[str, Any]] = json.loads(source.read_text(encoding="utf-8"))
    return loaded


def custom_definitions(capability_dir: Path) -> list[dict[str, Any]]:
    """Every `SearchParameter-*.json` in `capability_dir`; a broken file stops start-up loudly."""
    found: list[dict[str, Any]] = []
    for path in sorted(capability_dir.glob("SearchParameter-*.json")):
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read search parameter {path}: {exc}") from exc
        if not isinstance(resource, dict) or resource.get("resourceType") != "SearchParameter":
            raise ValueError(f"{path} is not a SearchParameter resource")
        found.append(resource)
    return found


@functools.lru_cache(maxsize=8)
def _load_cached(capability_dir: Path | None) -> SearchParameterRegistry:
    """One registry per capability directory: compiling ~190 expressions takes a moment."""
    custom = custom_definitions(capability_dir) if capability_dir is not None else []
    # Custom definitions come last so they override an official one with the same base and code.
    return SearchParameterRegistry([*packaged_definitions(), *custom])


def load_registry(capability_dir: Path | None = None) -> SearchParameterRegistry:
    """The registry of packaged R4 parameters plus the custom ones in `capability_dir`."""
    return _load_cached(capability_dir.resolve() if capability_dir is not None else None)
