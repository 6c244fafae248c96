"""Structural and datatype checks with fhir.resources' R4B models, as OperationOutcome issues."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fhir_server.fhir.errors import Issue

# Missing elements are reported by the snapshot cardinality check, once and for every one.
_MISSING_TYPES = frozenset({"missing", "model_field_validation.missing"})
_STRUCTURE_TYPES = frozenset({"extra_forbidden", "json_invalid", "model_validation_format"})
_WRAPPER_SEGMENTS = frozenset({"root"})


@cache
def model_class(resource_type: str) -> type[BaseModel]:
    """The fhir.resources model for a type, looked up once."""
    return get_fhir_model_class(resource_type)


def structure_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """Issues for unknown elements, wrong JSON shapes and malformed primitive values."""
    try:
        model_class(resource_type).model_validate(resource)
    except ValidationError as error:
        return [_issue(detail, resource_type) for detail in error.errors(include_url=False)
                if detail["type"] not in _MISSING_TYPES and not _is_id_syntax(detail)]
    return []


def _is_id_syntax(detail: ErrorDetails) -> bool:
    """A string id's syntax is checked (with its length limit) by `identity_issues`."""
    return tuple(detail["loc"]) == ("id",) and isinstance(detail.get("input"), str)


def _issue(detail: ErrorDetails, resource_type: str) -> Issue:
    """One pydantic error as an issue: a wrong shape is `structure`, a bad value is `value`."""
    kind = detail["type"]
    code = "structure" if kind in _STRUCTURE_TYPES or kind.endswith("_type") else "value"
    expression = loc_expression(resource_type, detail["loc"])
    message = "Unknown element" if kind == "extra_forbidden" else detail["msg"]
    return Issue(code=code, diagnostics=f"{expression}: {message}", expression=(expression,))


def loc_expression(resource_type: str, loc: Sequence[int | str]) -> str:
    """`('participant', 0, 'actor')` -> `Appointment.participant[0].actor`."""
    parts = [resource_type]
    for segment in loc:
        if isinstance(segment, int):
            parts[-1] += f"[{segment}]"
        elif segment not in _WRAPPER_SEGMENTS:
            parts.append(segment[1:] if segment.startswith("_") else segment)
    return ".".join(parts)
