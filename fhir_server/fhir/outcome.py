"""Build OperationOutcome resources from domain issues."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_server.fhir.errors import Issue


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome carrying each issue with its code, severity and element."""
    rendered = []
    for issue in issues:
        entry: dict[str, Any] = {"severity": issue.severity, "code": issue.code}
        if issue.diagnostics:
            entry["diagnostics"] = issue.diagnostics
        if issue.expression:
            entry["expression"] = list(issue.expression)
        rendered.append(entry)
    if not rendered:
        rendered.append({"severity": "information", "code": "informational"})
    return {"resourceType": "OperationOutcome", "issue": rendered}


def information(diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome that reports success (for `Prefer: return=OperationOutcome`)."""
    return operation_outcome([Issue(code="informational", diagnostics=diagnostics,
                                    severity="information")])
