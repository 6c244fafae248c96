"""Batch and transaction Bundles posted to the FHIR base."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.errors import status_for, status_line
from fhir_server.api.rendering import location
from fhir_server.api.request_parsing import check_format, json_body, utc_now
from fhir_server.api.responses import fhir_json
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.api.search import render_searchset
from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.outcome import operation_outcome
from fhir_server.services.context import FhirContext
from fhir_server.services.transaction import EntryResult, parse_bundle, run_batch, run_transaction

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
    runner = run_transaction if kind == "transaction" else run_batch
    results = await runner(ctx, entries, now=now)
    return fhir_json({
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "type": f"{kind}-response",
        "meta": {"lastUpdated": format_instant(now)},
        "entry": [_response_entry(ctx, result, now=now) for result in results],
    })


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
