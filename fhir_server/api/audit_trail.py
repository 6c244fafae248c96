"""The router's observer: one `AuditRecord` per guarded FHIR request, buffered for the writer.

Runs after the endpoint (or after the guard or endpoint raised), so the status, the
version served or written (a `VersionResponse` carries it, with the patients it refers to;
otherwise `Location` and `ETag` tell) and the refusal are known. It only reads what the
request already holds and buffers a small record; logging it is the background writer's job
(`audit/writer.py`). Public routes (metadata, conformance resources) carry no caller and no
patient data and are not audited. `admitting` wraps the router's guard so that requests wait
while the writer's backlog is over its high-water mark, rather than events being dropped. Both
are built for one app and keep its state (`app.state`'s dict, where the lifespan puts the
writer), rather than looking it up on every request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from time import time_ns
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.errors import status_for, status_line
from fhir_server.api.rendering import VersionResponse
from fhir_server.api.routing import Guard, Observer
from fhir_server.api.security import ROUTE_ACCESS
from fhir_server.audit.events import AuditRecord
from fhir_server.audit.writer import AuditWriter
from fhir_server.auth.policy import Access, Decision
from fhir_server.fhir.errors import FhirError

log = logging.getLogger("fhir_server.audit")

_RECORD: Final = tuple.__new__  # an AuditRecord from its 15 fields, in one C call
# Interactions whose response body is the one resource acted on (scanned for patients).
_SINGLE_RESOURCE = frozenset({"read", "vread", "create", "update", "patch", "operation"})
# Interactions whose `VersionResponse` holds the version of the resource the route names.
_ONE_VERSION = frozenset({"read", "vread", "create", "update", "patch"})


def admitting(guard: Guard, app_state: dict[str, Any]) -> Guard:
    """`guard`, run once the app's audit writer has room for the request's record (without a
    coroutine of its own while there is room: it returns the guard's)."""

    async def wait_then_guard(writer: AuditWriter, request: Request, template: str,
                              method: str) -> None:
        await writer.wait_for_room()
        await guard(request, template, method)

    def admit_then_guard(request: Request, template: str, method: str) -> Awaitable[None]:
        writer: AuditWriter | None = app_state.get("audit_writer")
        if writer is not None and writer.congested:
            return wait_then_guard(writer, request, template, method)
        return guard(request, template, method)

    return admit_then_guard


def recording(app_state: dict[str, Any]) -> Observer:
    """The router's observer, buffering records for the app's audit writer."""

    def record_request(request: Request, template: str, method: str,
                       response: Response | None, error: BaseException | None) -> None:
        """Buffer the audit record of one finished request; never fails the request."""
        writer: AuditWriter | None = app_state.get("audit_writer")
        rule = ROUTE_ACCESS.get((template, method))
        if writer is None or rule is None or rule.interaction == "public":
            return
        try:
            writer.submit(_record(request, rule.interaction, rule.resource_type, rule.operation,
                                  response, error))
        except Exception:  # auditing must not turn a served request into a 500
            log.exception("could not record an AuditEvent for %s %s", method, template)

    return record_request


def _record(request: Request, interaction: str, fixed_type: str | None, operation: str | None,
            response: Response | None, error: BaseException | None) -> AuditRecord:
    scope = request.scope
    params = scope["path_params"]
    state = scope.get("state", {})  # what `request.state` reads, without the wrapper
    access: Access | None = state.get("access")
    decision: Decision | None = state.get("decision")
    resource_type = fixed_type if fixed_type not in (None, "*") else params.get("resource_type")
    resource_id, version_id = params.get("id"), params.get("version_id")
    body = description = served = None
    if response is None:
        status, description = _refusal(error)
    elif (status := response.status_code) < 400 and isinstance(response, VersionResponse):
        stored = response.stored  # what was served or written, with the patients it names
        if interaction in _ONE_VERSION and stored.resource_type == resource_type:
            resource_id, version_id = stored.id, str(stored.version_id)
        if interaction in _SINGLE_RESOURCE:
            served = stored.patients
            if served is None:  # a version stored before its patients were kept
                body = response.body
    elif status < 400:
        location, etag = _location_and_etag(response)
        if location and interaction in ("create", "update", "patch"):
            resource_id, version_id = _id_and_version(location, resource_id, version_id)
        elif interaction == "read" and etag:
            version_id = etag.removeprefix("W/").strip('"') or None  # `W/"3"` → `3`
        if interaction in _SINGLE_RESOURCE:
            body = getattr(response, "body", None)
        if interaction == "batch" and b'"transaction-response"' in getattr(response, "body", b""):
            interaction = "transaction"
    patient = access.patient_id if access is not None else None
    if patient is None and decision is not None and decision.compartment is not None:
        patient = decision.compartment.patient_id
    client = scope.get("client")
    return _RECORD(AuditRecord, (
        interaction, status, time_ns() // 1000, resource_type, resource_id, version_id,
        operation, _query(request) if interaction == "search-type" else None, description,
        access.client_id if access else None, access.fhir_user if access else None, patient,
        client[0] if client else None, body, served))


def _refusal(error: BaseException | None) -> tuple[int, str]:
    """The status sent for a request that ended in `error`, and a short description (its
    diagnostics); a served response's status line is rendered when the event is read."""
    if isinstance(error, FhirError):
        status = status_for(error)
        return status, f"{status_line(status)}: {error}"
    if isinstance(error, HTTPException):
        return error.status_code, f"{status_line(error.status_code)}: {error.detail}"
    return 500, status_line(500)


def _id_and_version(location: str, resource_id: str | None,
                    version_id: str | None) -> tuple[str | None, str | None]:
    """`.../Type/id/_history/v` → (id, v)."""
    head, _, version = location.partition("/_history/")
    return head.rstrip("/").rsplit("/", 1)[-1] or resource_id, version or version_id


def _location_and_etag(response: Response) -> tuple[str | None, str | None]:
    """The Location and ETag headers, in one pass over the raw headers."""
    location = etag = None
    for name, value in response.raw_headers:
        if name == b"location":
            location = value.decode("latin-1")
        elif name == b"etag":
            etag = value.decode("latin-1")
    return location, etag


def _query(request: Request) -> str:
    """The search as sent: the query string, plus the form of a `POST _search`."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    form: str | None = request.scope.get("state", {}).get("search_form")
    return "&".join(part for part in (query, form) if part)
