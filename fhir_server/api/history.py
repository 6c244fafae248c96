"""`_history` at system, type and instance level."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import check_format, utc_now
from fhir_server.api.responses import fhir_json
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir import bundles
from fhir_server.fhir.paging import page_links
from fhir_server.services import history as history_service

router = FhirRouter()


@fhir_route(router, "/_history", "GET")
async def system_history(request: Request) -> Response:
    """Every version of every resource, newest first."""
    return await _history(request, None, None, "_history")


@fhir_route(router, "/{resource_type}/_history", "GET")
async def type_history(request: Request) -> Response:
    """Every version of one type's resources."""
    resource_type = request.path_params["resource_type"]
    return await _history(request, resource_type, None, f"{resource_type}/_history")


@fhir_route(router, "/{resource_type}/{id}/_history", "GET")
async def instance_history(request: Request) -> Response:
    """Every version of one resource."""
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    return await _history(request, resource_type, id, f"{resource_type}/{id}/_history")


async def _history(request: Request, resource_type: str | None, id: str | None,
                   path: str) -> Response:
    check_format(request)
    ctx = fhir_context(request)
    params = list(request.query_params.multi_items())
    parsed = history_service.parse_history_params(params)
    page = await history_service.history(ctx, resource_type, id, parsed)
    links = page_links(f"{ctx.base_url}/{path}", params, count=parsed.count,
                       offset=parsed.offset, shown=len(page.versions), total=page.total)
    entries = [bundles.HistoryEntry(v.resource_type, v.id, v.version_id, v.last_updated,
                                    v.method, v.body) for v in page.versions]
    return fhir_json(bundles.history(base_url=ctx.base_url, entries=entries, total=page.total,
                                     links=links, now=utc_now()))
