"""Type-level search by GET and by `POST _search`, rendered as a searchset Bundle."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api import narrowing
from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import check_format, is_lenient, search_params, utc_now
from fhir_server.api.responses import fhir_json
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.api.security import access_of, decision_of
from fhir_server.auth.policy import Access, Decision
from fhir_server.fhir import bundles
from fhir_server.fhir.elements import keep_elements, without_text
from fhir_server.fhir.errors import Issue
from fhir_server.fhir.outcome import operation_outcome
from fhir_server.services import resources
from fhir_server.services.context import FhirContext
from fhir_server.services.search import SearchResult, search
from fhir_server.store.protocol import StoredResource

router = FhirRouter()


@fhir_route(router, "/{resource_type}", "GET")
async def search_get(request: Request) -> Response:
    """GET search on a type."""
    resource_type = request.path_params["resource_type"]
    return await _search(resource_type, request)


@fhir_route(router, "/{resource_type}/_search", "POST")
async def search_post(request: Request) -> Response:
    """POST search with form-encoded parameters."""
    resource_type = request.path_params["resource_type"]
    return await _search(resource_type, request)


async def _search(resource_type: str, request: Request) -> Response:
    check_format(request)
    resources.require_supported(resource_type)
    ctx = fhir_context(request)
    now = utc_now()
    extra = await narrowing.search_clauses(ctx, decision_of(request), resource_type)
    result = await search(ctx, resource_type, await search_params(request), now=now,
                          lenient=is_lenient(request), extra=extra)
    return fhir_json(render_searchset(ctx, visible(ctx, access_of(request), result), now=now))


def visible(ctx: FhirContext, access: Access, result: SearchResult) -> SearchResult:
    """The result without included resources the caller may not read (`_include` obeys the
    same rules as a read: role, scopes, compartment)."""
    if not result.included:
        return result
    decisions: dict[str, Decision] = {}
    included = [stored for stored in result.included
                if narrowing.admits_included(access, stored, ctx=ctx, decisions=decisions)]
    return replace(result, included=included)


def render_searchset(ctx: FhirContext, result: SearchResult, *,
                     now: datetime) -> dict[str, Any]:
    """The searchset Bundle of a search result, honouring `_elements` and `_summary`."""
    entries = [_entry(r, "match", result) for r in result.matches]
    entries += [_entry(r, "include", result) for r in result.included]
    outcome = None
    if result.request.ignored:
        outcome = operation_outcome([Issue(
            code="not-supported", severity="warning",
            diagnostics=f"Ignored unknown parameter(s): {', '.join(result.request.ignored)}")])
    return bundles.searchset(base_url=ctx.base_url, entries=entries, total=result.total,
                             links=result.links, now=now, outcome=outcome)


def _entry(stored: StoredResource, mode: bundles.SearchMode,
           result: SearchResult) -> bundles.SearchEntry:
    body = stored.body or b"{}"
    request = result.request
    if mode == "match" and request.elements:
        body = orjson.dumps(keep_elements(orjson.loads(body), request.elements))
    elif mode == "match" and request.summary == "data":
        body = orjson.dumps(without_text(orjson.loads(body)))
    return bundles.SearchEntry(stored.resource_type, stored.id, body, mode)
