"""Create, read, vread, update, patch and delete of one resource."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.rendering import resource_response, write_response
from fhir_server.api.request_parsing import (
    PATCH_TYPES,
    check_format,
    if_match_version,
    json_body,
    return_preference,
    utc_now,
)
from fhir_server.api.responses import empty
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.services import resources

router = FhirRouter()


@fhir_route(router, "/{resource_type}", "POST")
async def create(request: Request) -> Response:
    """POST a resource: 201 with Location and ETag (200 if If-None-Exist matched)."""
    resource_type = request.path_params["resource_type"]
    check_format(request)
    resources.require_supported(resource_type)
    ctx = fhir_context(request)
    body = await json_body(request)
    done = await resources.create(ctx, resource_type, body, now=utc_now(),
                                  if_none_exist=request.headers.get("if-none-exist"))
    return write_response(done.stored, created=done.created, base_url=ctx.base_url,
                          preference=return_preference(request))


@fhir_route(router, "/{resource_type}/{id}", "GET")
async def read(request: Request) -> Response:
    """The current version as stored (an AuditEvent: as logged, see `resources.read`)."""
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    check_format(request)
    return resource_response(await resources.read(fhir_context(request), resource_type, id))


@fhir_route(router, "/{resource_type}/{id}/_history/{version_id}", "GET")
async def vread(request: Request) -> Response:
    """One version as stored."""
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    version_id = request.path_params["version_id"]
    check_format(request)
    stored = await resources.vread(fhir_context(request), resource_type, id, version_id)
    return resource_response(stored)


@fhir_route(router, "/{resource_type}/{id}", "PUT")
async def update(request: Request) -> Response:
    """Replace or create with a client id; If-Match makes it version-checked."""
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    check_format(request)
    resources.require_supported(resource_type)
    ctx = fhir_context(request)
    body = await json_body(request)
    done = await resources.update(ctx, resource_type, id, body, now=utc_now(),
                                  if_match=if_match_version(request))
    return write_response(done.stored, created=done.created, base_url=ctx.base_url,
                          preference=return_preference(request))


@fhir_route(router, "/{resource_type}/{id}", "PATCH")
async def patch(request: Request) -> Response:
    """Apply a JSON Patch (application/json-patch+json)."""
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    check_format(request)
    resources.require_supported(resource_type)
    ctx = fhir_context(request)
    operations = await json_body(request, accepted=PATCH_TYPES)
    done = await resources.patch(ctx, resource_type, id, operations, now=utc_now(),
                                 if_match=if_match_version(request))
    return write_response(done.stored, created=False, base_url=ctx.base_url,
                          preference=return_preference(request))


@fhir_route(router, "/{resource_type}/{id}", "DELETE")
async def delete(request: Request) -> Response:
    """Logical delete: later reads answer 410; If-Match makes it version-checked."""
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    await resources.delete(fhir_context(request), resource_type, id, now=utc_now(),
                           if_match=if_match_version(request))
    return empty(204)
