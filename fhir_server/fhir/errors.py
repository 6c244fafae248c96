"""Domain errors: raised by the pure layers and services, mapped to HTTP only in `api/`.

Each error carries FHIR `OperationOutcome.issue` content, so the API layer never has to
invent diagnostics; it only chooses the status code from the error class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IssueSeverity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One `OperationOutcome.issue`: what went wrong and, where known, which element."""

    code: str
    diagnostics: str
    severity: IssueSeverity = "error"
    expression: tuple[str, ...] = ()


class FhirError(Exception):
    """Base of every error the server reports as an OperationOutcome."""

    default_code = "exception"

    def __init__(self, diagnostics: str | None = None, *, issues: list[Issue] | None = None,
                 expression: str | None = None, code: str | None = None) -> None:
        if issues is None:
            issues = [Issue(code=code or self.default_code, diagnostics=diagnostics or "",
                            expression=(expression,) if expression else ())]
        self.issues = issues
        super().__init__(diagnostics or "; ".join(i.diagnostics for i in issues))

    def __str__(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues)


class InvalidRequest(FhirError):
    """Malformed input: unparsable JSON, wrong resourceType, bad search syntax (400)."""

    default_code = "invalid"


class UnknownSearchParameter(InvalidRequest):
    """A search parameter this server does not support (400 unless handling=lenient)."""

    default_code = "not-supported"


class ValidationFailed(FhirError):
    """Well-formed but invalid content: bindings, cardinalities, invariants (422)."""

    default_code = "invariant"


class BusinessRuleViolation(FhirError):
    """A rule of the domain refuses the change, e.g. an impossible status move (422)."""

    default_code = "business-rule"


class UnsupportedResourceType(FhirError):
    """The type is not one this server serves (404)."""

    default_code = "not-supported"


class ResourceNotFound(FhirError):
    """No resource (or version) with that id (404)."""

    default_code = "not-found"


class ResourceGone(FhirError):
    """The resource existed and was deleted (410)."""

    default_code = "deleted"


class VersionConflict(FhirError):
    """The stored version is not the one the caller expected (412 for If-Match)."""

    default_code = "conflict"


class MultipleMatches(FhirError):
    """A conditional interaction matched more than one resource (412)."""

    default_code = "multiple-matches"


class Conflict(FhirError):
    """The request lost a race or clashes with existing state, e.g. a taken slot (409)."""

    default_code = "conflict"


class NotAllowed(FhirError):
    """The interaction is not allowed on this resource, e.g. updating an AuditEvent (405)."""

    default_code = "not-supported"


class StoreUnavailable(FhirError):
    """The store cannot be reached (503)."""

    default_code = "transient"


class UnsupportedMediaType(FhirError):
    """The request body is not FHIR JSON (415)."""

    default_code = "not-supported"


class NotAcceptable(FhirError):
    """The client asked for a format the server does not produce, e.g. XML (406)."""

    default_code = "not-supported"
