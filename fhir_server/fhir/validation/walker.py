"""Walk a resource's JSON alongside its element tree, naming each value by a FHIRPath-like path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fhir_server.fhir.validation.definitions import ElementDef


@dataclass(frozen=True, slots=True)
class Node:
    """One present value of an element: `Appointment.participant[0].status` -> `"accepted"`."""

    definition: ElementDef
    type_code: str
    value: object
    expression: str


def iter_nodes(root: ElementDef, resource: dict[str, object]) -> Iterator[Node]:
    """Every present value in JSON order, root first; malformed shapes are not entered."""
    root_node = Node(root, "", resource, root.path)
    yield root_node
    yield from _iter_children(root_node)


def _iter_children(parent: Node) -> Iterator[Node]:
    """Nodes below `parent` for each child element present in its JSON object."""
    data = parent.value
    if not isinstance(data, dict):
        return
    child_by_name = parent.definition.child_by_name
    for name, raw in data.items():
        found = child_by_name.get(name)
        if found is None:
            continue  # `_name` extensions and unknown elements (reported by the model)
        child, type_code = found
        for node in _present_values(child, name, type_code, raw, parent.expression):
            yield node
            if node.definition.children:
                yield from _iter_children(node)


def _present_values(child: ElementDef, name: str, type_code: str, raw: object,
                    parent_expression: str) -> Iterator[Node]:
    """The values of one JSON property; a shape that contradicts `max` is left to pydantic."""
    expression = f"{parent_expression}.{name}"
    if child.repeats:
        if isinstance(raw, list):
            for index, item in enumerate(raw):
                if item is not None:  # null placeholders pair with `_name` extensions
                    yield Node(child, type_code, item, f"{expression}[{index}]")
    elif not isinstance(raw, list) and raw is not None:
        yield Node(child, type_code, raw, expression)
