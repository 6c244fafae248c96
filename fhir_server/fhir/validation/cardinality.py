"""Required elements (`min >= 1`), checked wherever their parent element is present.

fhir.resources accepts an empty `participant` list and reports only some missing elements,
so the snapshot's cardinalities are checked here for every object present in the resource.
"""

from __future__ import annotations

from fhir_server.fhir.errors import Issue
from fhir_server.fhir.validation.definitions import ElementDef
from fhir_server.fhir.validation.walker import Node


def cardinality_issues(node: Node) -> list[Issue]:
    """Missing required children of one JSON object (choice `[x]` elements: any variant)."""
    data = node.value
    if not isinstance(data, dict) or not node.definition.required_children:
        return []
    issues: list[Issue] = []
    for child in node.definition.required_children:
        present = [name for name in child.json_names if _is_present(data, name)]
        if _count(data, present) < child.min:
            issues.append(_missing(child, node.expression))
    return issues


def _is_present(data: dict[str, object], name: str) -> bool:
    """A value, or an extension-only primitive (`_status`), counts; null and `[]` do not."""
    for key in (name, f"_{name}"):
        value = data.get(key)
        if value is not None and value != [] and value != {}:
            return True
    return False


def _count(data: dict[str, object], present: list[str]) -> int:
    """How many values the present JSON properties carry (a list counts its items)."""
    total = 0
    for name in present:
        value = data.get(name, data.get(f"_{name}"))
        total += len(value) if isinstance(value, list) else 1
    return total


def _missing(child: ElementDef, parent_expression: str) -> Issue:
    """The `required` issue for an absent element, named as the client would write it."""
    name = child.path.rsplit(".", 1)[-1]
    minimum = f"at least {child.min}" if child.min > 1 else "a value"
    return Issue(code="required",
                 diagnostics=f"{child.path} requires {minimum} ({child.min}..{'*' if child.repeats else '1'})",
                 expression=(f"{parent_expression}.{name}",))
