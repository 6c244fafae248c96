"""Turn stored versions and write results into FHIR HTTP responses with the right headers."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from fhir_server.api.request_parsing import ReturnPreference
from fhir_server.api.responses import FHIR_JSON
from fhir_server.fhir.instants import http_date
from fhir_server.fhir.outcome import information
from fhir_server.store.protocol import StoredResource


class VersionResponse(Response):
    """A response about one stored version, which it keeps: the audit trail takes the id,
    version and patients from it rather than from headers and body."""

    stored: StoredResource


def _about(stored: StoredResource, body: bytes | None, *, status: int,
           headers: Mapping[str, str]) -> VersionResponse:
    """A `VersionResponse` (set after construction: no `__init__` of its own per read)."""
    response = VersionResponse(content=body, status_code=status, headers=headers,
                               media_type=FHIR_JSON if body is not None else None)
    response.stored = stored
    return response


def version_headers(stored: StoredResource) -> dict[str, str]:
    """ETag and Last-Modified of a version."""
    return {"ETag": f'W/"{stored.version_id}"', "Last-Modified": http_date(stored.last_updated)}


def location(base_url: str, stored: StoredResource) -> str:
    """The versioned URL of a version, for the Location header."""
    return f"{base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"


def resource_response(stored: StoredResource, *, status: int = 200) -> VersionResponse:
    """A stored version, served as stored."""
    return _about(stored, stored.body or b"{}", status=status, headers=version_headers(stored))


def write_response(stored: StoredResource, *, created: bool, base_url: str,
                   preference: ReturnPreference) -> VersionResponse:
    """201/200 after a write, shaped by `Prefer: return`."""
    status = 201 if created else 200
    headers = version_headers(stored)
    headers["Location"] = location(base_url, stored)
    if preference == "minimal":
        return _about(stored, None, status=status, headers=headers)
    if preference == "OperationOutcome":
        verb = "created" if created else "updated"
        outcome = information(f"{stored.resource_type}/{stored.id} {verb}, version "
                              f"{stored.version_id}")
        return _about(stored, orjson.dumps(outcome), status=status, headers=headers)
    return _about(stored, stored.body or b"{}", status=status, headers=headers)
