"""Required code bindings: a `code`, `Coding` or `CodeableConcept` must come from its value set.

fhir.resources accepts `Appointment.status = "bogus"`; the packaged expansions do not.
"""

from __future__ import annotations

from fhir_server.fhir.errors import Issue
from fhir_server.fhir.validation.definitions import RequiredBinding
from fhir_server.fhir.validation.walker import Node


def binding_issues(node: Node) -> list[Issue]:
    """A `code-invalid` issue when this value is outside its required value set."""
    binding = node.definition.binding
    if binding is None:
        return []
    if node.type_code == "CodeableConcept":
        return _codeable_concept_issues(binding, node)
    if node.type_code == "Coding":
        valid = not isinstance(node.value, dict) or _coding_is_valid(binding, node.value)
        shown = node.value.get("code") if isinstance(node.value, dict) else None
    else:
        valid = not isinstance(node.value, str) or node.value in binding.codes
        shown = node.value
    return [] if valid else [_invalid(binding, shown, node.expression)]


def _coding_is_valid(binding: RequiredBinding, coding: dict[str, object]) -> bool:
    """A Coding matches on system and code, or on code alone when it names no system."""
    code = coding.get("code")
    if not isinstance(code, str):
        return True  # nothing coded here (structure errors are reported by pydantic)
    system = coding.get("system")
    if isinstance(system, str):
        return (system, code) in binding.system_codes
    return code in binding.codes


def _codeable_concept_issues(binding: RequiredBinding, node: Node) -> list[Issue]:
    """At least one coding must be in the value set; text alone does not satisfy `required`."""
    concept = node.value
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    codings = [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []
    if any(_coding_is_valid(binding, c) and isinstance(c.get("code"), str) for c in codings):
        return []
    shown = ", ".join(str(c.get("code")) for c in codings) or None
    return [_invalid(binding, shown, node.expression)]


def _invalid(binding: RequiredBinding, code: object, expression: str) -> Issue:
    """The issue naming the rejected code and the value set it had to come from."""
    return Issue(code="code-invalid",
                 diagnostics=f"The code {code!r} is not in the required value set {binding.value_set}",
                 expression=(expression,))
