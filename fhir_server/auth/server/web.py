"""The thin Starlette adapter: Starlette requests in, authlib's (status, body, headers) out.

authlib's server is synchronous, and checking a secret costs tens of milliseconds of scrypt,
so each call runs in the thread pool after the form has been read on the event loop.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from fhir_server.auth.server import discovery, login
from fhir_server.auth.server.adapter import (
    StarletteOAuth2Request,
    auth_server,
    converted,
    read_form,
)


async def _converted(request: Request) -> StarletteOAuth2Request:
    return converted(request, await read_form(request))


async def token(request: Request) -> Response:
    oauth_request = await _converted(request)
    response: Response = await run_in_threadpool(auth_server(request).create_token_response,
                                                 oauth_request)
    return response


async def introspect(request: Request) -> Response:
    oauth_request = await _converted(request)
    response: Response = await run_in_threadpool(
        auth_server(request).create_endpoint_response, "introspection", oauth_request)
    return response


async def revoke(request: Request) -> Response:
    oauth_request = await _converted(request)
    response: Response = await run_in_threadpool(
        auth_server(request).create_endpoint_response, "revocation", oauth_request)
    return response


async def jwks(request: Request) -> Response:
    return JSONResponse(auth_server(request).keys.jwks(),
                        headers={"Cache-Control": "max-age=300"})


async def openid_configuration(request: Request) -> Response:
    return JSONResponse(discovery.openid_configuration(auth_server(request).endpoints),
                        headers={"Cache-Control": "max-age=300"})


def auth_router() -> Router:
    """`/token`, `/introspect`, `/revoke`, `/jwks` and the login pages, mounted at the
    issuer's path; the server is built at start-up and found on `app.state.auth_server`."""
    return Router(routes=[
        Route("/token", token, methods=["POST"]),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        *login.routes(),
    ])


async def smart_configuration(request: Request) -> Response:
    """`[base]/.well-known/smart-configuration`: public; 404 when an external IdP issues
    tokens (its own discovery document is the place to look)."""
    document = request.app.state.smart_configuration
    if document is None:
        return JSONResponse({"error": "not_found",
                             "error_description": "Tokens come from an external issuer; "
                                                  "see its OpenID configuration"},
                            status_code=404)
    return JSONResponse(document)
