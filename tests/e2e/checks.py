"""Assertions the e2e tests share: OperationOutcome errors and "nothing was written"."""

from __future__ import annotations

from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


def outcome_issues(response: httpx.Response, status: int) -> list[dict[str, Any]]:
    """The issues of an OperationOutcome error response, after checking its status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    return list(body["issue"])


def expressions(issues: list[dict[str, Any]]) -> set[str]:
    """Every element an OperationOutcome's issues point at."""
    return {e for issue in issues for e in issue.get("expression", [])}


async def versions_written(client: httpx.AsyncClient) -> int:
    """How many versions of anything the server holds (system `_history` total)."""
    response = await client.get("_history", params={"_count": "0"})
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


async def created(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    """POST `resource` and return what the server stored (failing the test otherwise)."""
    response = await client.post(resource["resourceType"], json=resource)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
