"""`GET /metadata` and the definitional resources from `capability/` and `profiles/`."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.request_parsing import check_format, utc_now
from fhir_server.api.responses import fhir_bytes, fhir_json
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir import bundles
from fhir_server.fhir.errors import ResourceNotFound
from fhir_server.services.conformance import CONFORMANCE_TYPES, ConformanceResources

router = FhirRouter()


def _conformance(request: Request) -> ConformanceResources:
    resources: ConformanceResources = request.app.state.conformance
    return resources


@fhir_route(router, "/metadata", "GET")
async def metadata(request: Request) -> Response:
    """The CapabilityStatement, built at start-up from what is implemented."""
    check_format(request)
    statement: bytes = request.app.state.capability_statement
    return fhir_bytes(statement)


def _conformance_routes(resource_type: str) -> None:
    @fhir_route(router, f"/{resource_type}/{{id}}", "GET")
    async def read(request: Request) -> Response:
        id = request.path_params["id"]
        resource = _conformance(request).get(resource_type, id)
        if resource is None:
            raise ResourceNotFound(f"{resource_type}/{id} is not known")
        return fhir_json(resource)

    @fhir_route(router, f"/{resource_type}", "GET")
    async def list_all(request: Request) -> Response:
        base_url = request.app.state.fhir.base_url
        entries = [bundles.SearchEntry(resource_type, r["id"], orjson.dumps(r))
                   for r in _conformance(request).all_of(resource_type)]
        return fhir_json(bundles.searchset(
            base_url=base_url, entries=entries, total=len(entries),
            links=[("self", f"{base_url}/{resource_type}")], now=utc_now()))


for _type in CONFORMANCE_TYPES:
    _conformance_routes(_type)
