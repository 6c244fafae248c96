"""Reference targets: `Slot.schedule` must point at a Schedule, as the snapshot's targetProfile says.

Contained (`#id`), `urn:uuid:`/`urn:oid:` (resolved inside transactions) and identifier-only
references are not checked here.
"""

from __future__ import annotations

from fhir_server.fhir.errors import Issue
from fhir_server.fhir.validation.definitions import known_resource_types
from fhir_server.fhir.validation.walker import Node

_UNCHECKED_PREFIXES = ("#", "urn:uuid:", "urn:oid:")


def reference_issues(node: Node) -> list[Issue]:
    """`invalid` issues for a Reference whose target (or `type`) is not an allowed type."""
    if node.type_code != "Reference" or not isinstance(node.value, dict):
        return []
    targets = node.definition.target_types
    issues: list[Issue] = []
    reference = node.value.get("reference")
    if isinstance(reference, str) and not reference.startswith(_UNCHECKED_PREFIXES):
        issues.extend(_reference_issues(reference, targets, node.expression))
    declared = node.value.get("type")
    if targets is not None and isinstance(declared, str) and declared not in targets:
        issues.append(_wrong_target(declared, targets, f"{node.expression}.type"))
    return issues


def _reference_issues(reference: str, targets: frozenset[str] | None,
                      expression: str) -> list[Issue]:
    """Check a literal reference; absolute URLs are judged by their last `Type/id` segments."""
    target_type = referenced_type(reference)
    absolute = "://" in reference
    if target_type is None:
        if absolute:
            return []  # some other server's URL that does not look like a FHIR REST path
        return [Issue(code="invalid",
                      diagnostics=f"Reference {reference!r} is not of the form Type/id",
                      expression=(f"{expression}.reference",))]
    if targets is not None and target_type not in targets:
        return [_wrong_target(target_type, targets, expression)]
    return []


def referenced_type(reference: str) -> str | None:
    """The resource type in `Type/id`, `Type/id/_history/v` or `http://x/fhir/Type/id`."""
    segments = [s for s in reference.split("?", 1)[0].split("/") if s]
    if len(segments) >= 4 and segments[-2] == "_history":
        segments = segments[:-2]
    if len(segments) < 2 or segments[-2] not in known_resource_types():
        return None
    return segments[-2]


def _wrong_target(target_type: str, targets: frozenset[str], expression: str) -> Issue:
    """The issue for a reference to a type the element does not allow."""
    allowed = ", ".join(sorted(targets))
    return Issue(code="invalid",
                 diagnostics=f"A reference to {target_type} is not allowed here (allowed: {allowed})",
                 expression=(expression,))
