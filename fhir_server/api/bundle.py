"""Batch and transaction Bundles posted to the FHIR base."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api import narrowing
from fhir_server.api.dependencies import fhir_context
from fhir_server.api.errors import status_for, status_line
from fhir_server.api.rendering import location
from fhir_server.api.request_parsing import check_format, json_body, utc_now
from fhir_server.api.responses import fhir_json
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.api.search import render_searchset, visible
from fhir_server.api.security import access_of
from fhir_server.auth.policy import Access, AccessDenied, decide
from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.outcome import operation_outcome
from fhir_server.services.context import FhirContext
from fhir_server.services.transaction import (
    EntryRequest,
    EntryResult,
    parse_bundle,
    run_batch,
    run_transaction,
)

router = FhirRouter()

STATUS_BY_RESULT = {"created": 201, "updated": 200, "deleted": 204, "unchanged": 200,
                    "read": 200, "searched": 200}


@fhir_route(router, "/", "POST")
async def process_bundle(request: Request) -> Response:
    """Run a batch entry by entry, or a transaction all-or-nothing."""
    check_format(request)
    ctx = fhir_context(request)
    now = utc_now()
    kind, entries = parse_bundle(await json_body(request), base_url=ctx.base_url)
    access = access_of(request)
    refusals = {entry.index: refusal for entry in entries
                if (refusal := await authorize_entry(ctx, access, entry)) is not None}
    if kind == "transaction":
        if refusals:
            raise AccessDenied("Transaction not applied: " + "; ".join(
                str(refusal) for refusal in refusals.values()))
        results = await run_transaction(ctx, entries, now=now)
    else:
        allowed = [entry for entry in entries if entry.index not in refusals]
        ran = dict(zip((e.index for e in allowed), await run_batch(ctx, allowed, now=now),
                       strict=True))
        results = [ran.get(e.index) or EntryResult("failed", error=refusals[e.index])
                   for e in entries]
    results = [_visible(ctx, access, result) for result in results]
    return fhir_json({
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "type": f"{kind}-response",
        "meta": {"lastUpdated": format_instant(now)},
        "entry": [_response_entry(ctx, result, now=now) for result in results],
    })


async def authorize_entry(ctx: FhirContext, access: Access,
                          entry: EntryRequest) -> AccessDenied | None:
    """The refusal of one Bundle entry, or None when the caller may run it.

    Writes are judged like their REST interaction (compartment, own schedule, overbooking).
    Reads and deletes that would need narrowing (a patient compartment, scope constraints)
    are refused inside Bundles: send them as plain REST requests, which narrow them.
    """
    where = f"Bundle.entry[{entry.index}]"
    kind = entry.resource_type
    decision = decide(access, interaction=_interaction(entry), resource_type=kind)
    if not decision.allowed:
        return AccessDenied(f"{where}: {decision.reason}")
    if entry.method == "GET":
        if narrowing.confines(decision, kind) or decision.constraints_on(kind):
            return AccessDenied(f"{where}: a restricted token reads {kind} through the REST "
                                "API, not inside a Bundle")
        return None
    current = await narrowing.current_json(ctx, kind, entry.id)
    after = entry.resource if entry.method != "DELETE" and isinstance(entry.resource, dict) \
        else None
    try:
        await narrowing.check_change(ctx, access, decision, kind, current=current, after=after)
    except AccessDenied as refusal:
        return AccessDenied(f"{where}: {refusal}")
    return None


def _interaction(entry: EntryRequest) -> str:
    if entry.method == "GET":
        if entry.id is None:
            return "search-type"
        return "vread" if entry.version is not None else "read"
    return {"POST": "create", "PUT": "update", "DELETE": "delete"}[entry.method]


def _visible(ctx: FhirContext, access: Access, result: EntryResult) -> EntryResult:
    if result.found is None:
        return result
    return EntryResult(result.status, result.stored, visible(ctx, access, result.found),
                       result.error)


def _response_entry(ctx: FhirContext, result: EntryResult, *, now: datetime) -> dict[str, Any]:
    if result.error is not None:
        return {"response": {"status": status_line(status_for(result.error)),
                             "outcome": operation_outcome(result.error.issues)}}
    response: dict[str, Any] = {"status": status_line(STATUS_BY_RESULT[result.status])}
    entry: dict[str, Any] = {"response": response}
    if result.found is not None:
        entry["resource"] = render_searchset(ctx, result.found, now=now)
    stored = result.stored
    if stored is not None:
        entry["fullUrl"] = f"{ctx.base_url}/{stored.resource_type}/{stored.id}"
        response["etag"] = f'W/"{stored.version_id}"'
        response["lastModified"] = format_instant(stored.last_updated)
        if result.status in ("created", "updated"):
            response["location"] = location(ctx.base_url, stored)
        if stored.body is not None:
            entry["resource"] = orjson.Fragment(stored.body)
    return entry
