"""`GET /metadata` and the definitional resources from `capability/` and `profiles/`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.request_parsing import check_format, utc_now
from fhir_server.api.responses import fhir_bytes, fhir_json
from fhir_server.fhir import bundles
from fhir_server.fhir.errors import ResourceNotFound
from fhir_server.services.conformance import CONFORMANCE_TYPES, ConformanceResources

import orjson

router = APIRouter()


def _conformance(request: Request) -> ConformanceResources:
    resources: ConformanceResources = request.app.state.conformance
    return resources


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    """The CapabilityStatement, built at start-up from what is implemented."""
    check_format(request)
    statement: bytes = request.app.state.capability_statement
    return fhir_bytes(statement)


def _conformance_routes(resource_type: str) -> None:
    @router.get(f"/{resource_type}/{{id}}", name=f"read-{resource_type}")
    async def read(id: str, request: Request) -> Response:
        resource = _conformance(request).get(resource_type, id)
        if resource is None:
            raise ResourceNotFound(f"{resource_type}/{id} is not known")
        return fhir_json(resource)

    @router.get(f"/{resource_type}", name=f"list-{resource_type}")
    async def list_all(request: Request) -> Response:
        base_url = request.app.state.fhir.base_url
        entries = [bundles.SearchEntry(resource_type, r["id"], orjson.dumps(r))
                   for r in _conformance(request).all_of(resource_type)]
        return fhir_json(bundles.searchset(
            base_url=base_url, entries=entries, total=len(entries),
            links=[("self", f"{base_url}/{resource_type}")], now=utc_now()))


for _type in CONFORMANCE_TYPES:
    _conformance_routes(_type)
