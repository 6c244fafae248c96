"""FHIRPath invariants (`constraint` with severity `error`), compiled once with fhirpathpy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from fhir_server.fhir.errors import Issue

_R4_MODEL: Mapping[str, Any] = models["r4"]
CompiledPath = Callable[..., list[Any]]


@dataclass(frozen=True, slots=True)
class Invariant:
    """One compiled constraint, evaluated on each instance of the element it is declared on."""

    key: str
    human: str
    expression: str
    base: str  # element type or path, so fhirpathpy resolves `value` to `valueString`
    root: bool  # declared on the resource itself
    evaluate: CompiledPath


def compile_invariants(constraints: list[dict[str, Any]], base: str,
                       *, root: bool) -> tuple[tuple[Invariant, ...], list[str]]:
    """Compile constraints; those fhirpathpy cannot parse or run are returned as skipped keys."""
    compiled: list[Invariant] = []
    skipped: list[str] = []
    for constraint in constraints:
        invariant = _compile(constraint, base, root=root)
        if invariant is None:
            skipped.append(constraint["key"])
        else:
            compiled.append(invariant)
    return tuple(compiled), skipped


def _compile(constraint: dict[str, Any], base: str, *, root: bool) -> Invariant | None:
    """Compile and dry-run one constraint on an empty element, so failures show at load time."""
    try:
        evaluate = fhirpathpy.compile(constraint["expression"], model=_R4_MODEL)
        evaluate({"resourceType": base} if root else ResourceNode.create_node({}, base), {})
    except Exception:  # noqa: BLE001 - any fhirpathpy failure means "cannot check this one"
        return None
    return Invariant(key=constraint["key"], human=constraint.get("human", ""),
                     expression=constraint["expression"], base=base, root=root,
                     evaluate=evaluate)


def invariant_issues(invariants: tuple[Invariant, ...], value: object,
                     expression: str) -> list[Issue]:
    """Issues for each invariant that evaluates to false on this element instance."""
    if not invariants or not isinstance(value, dict):
        return []
    issues: list[Issue] = []
    for invariant in invariants:
        if _violated(invariant, value):
            issues.append(Issue(code="invariant",
                                diagnostics=f"{invariant.key}: {invariant.human}",
                                expression=(expression,)))
    return issues


def _typed(invariant: Invariant, value: dict[str, Any]) -> object:
    """Tell fhirpathpy the element's type, so choice names like `value` resolve."""
    # A resource root stays a plain dict: wrapped, `Appointment.status` would match nothing.
    return value if invariant.root else ResourceNode.create_node(value, invariant.base)


def _violated(invariant: Invariant, value: dict[str, Any]) -> bool:
    """True only for a definite `false`; an empty result or a fhirpathpy error is not a failure."""
    try:
        result = invariant.evaluate(_typed(invariant, value), {})
    except Exception:  # noqa: BLE001 - malformed input is already reported structurally
        return False
    return result == [False]
