"""`validate_resource`: every check a resource must pass before it is written."""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import (
    InvalidRequest,
    Issue,
    UnsupportedResourceType,
    ValidationFailed,
)
from fhir_server.fhir.ids import FHIR_ID
from fhir_server.fhir.validation.bindings import binding_issues
from fhir_server.fhir.validation.cardinality import cardinality_issues
from fhir_server.fhir.validation.definitions import UnknownDefinition, resource_index
from fhir_server.fhir.validation.invariants import invariant_issues
from fhir_server.fhir.validation.references import reference_issues
from fhir_server.fhir.validation.structure import structure_issues
from fhir_server.fhir.validation.walker import iter_nodes


def validate_resource(resource: object, *, resource_type: str) -> None:
    """Raise InvalidRequest for a non-resource, ValidationFailed listing every content problem."""
    checked = _require_resource(resource, resource_type)
    issues = collect_issues(checked, resource_type)
    if issues:
        raise ValidationFailed(issues=issues)


def collect_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """All issues of a resource whose `resourceType` is already known to be `resource_type`."""
    try:
        index = resource_index(resource_type)
    except UnknownDefinition as error:  # without a definition there is nothing to check against
        raise UnsupportedResourceType(str(error), expression="resourceType") from error
    issues = structure_issues(resource, resource_type)
    issues.extend(identity_issues(resource, resource_type))
    for node in iter_nodes(index.root, resource):
        issues.extend(cardinality_issues(node))
        issues.extend(binding_issues(node))
        issues.extend(reference_issues(node))
        issues.extend(invariant_issues(node.definition.invariants, node.value, node.expression))
    return issues


def identity_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """A client-supplied `id` must be 1-64 of `[A-Za-z0-9-.]`; meta.versionId etc. may be sent."""
    resource_id = resource.get("id")
    if not isinstance(resource_id, str) or FHIR_ID.fullmatch(resource_id):
        return []  # a non-string id is a structure issue reported by the model
    return [Issue(code="value",
                  diagnostics=f"Invalid id {resource_id!r}: use 1-64 letters, digits, '-' or '.'",
                  expression=(f"{resource_type}.id",))]


def _require_resource(resource: object, resource_type: str) -> dict[str, Any]:
    """The resource as a JSON object whose resourceType is the one the request names."""
    if not isinstance(resource, dict):
        raise InvalidRequest(f"Expected a JSON object for a {resource_type} resource, "
                             f"got {type(resource).__name__}")
    actual = resource.get("resourceType")
    if actual is None:
        raise InvalidRequest("The resource has no resourceType", expression="resourceType")
    if actual != resource_type:
        raise InvalidRequest(f"resourceType {actual!r} does not match {resource_type!r}",
                             expression="resourceType")
    return resource
