"""The thin Starlette adapter: Starlette requests in, authlib's (status, body, headers) out.

authlib's server is synchronous, and checking a secret costs tens of milliseconds of scrypt,
so each call runs in the thread pool after the form has been read on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from fhir_server.auth.server.authority import EmbeddedAuthorizationServer

MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class StarletteOAuth2Request(OAuth2Request):
    """An already-read Starlette request as authlib's `OAuth2Request`."""

    def __init__(self, *, method: str, uri: str, headers: Mapping[str, str],
                 form: dict[str, str], args: dict[str, str]) -> None:
        # authlib refuses plain-http URIs; TLS ends at the reverse proxy in front of us, so
        # the scheme this process sees says nothing about the client's connection.
        super().__init__(method, "https://localhost/", headers=headers)
        self.uri = uri
        self._form = form
        self._args = args
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return self._args


class StarletteAuthorizationServer(EmbeddedAuthorizationServer):
    """Requests arrive converted; responses leave as Starlette `Response`s."""

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        merged = {**dict(headers or []), **NO_STORE}
        merged.pop("Content-Type", None)
        return Response(json.dumps(body), status_code=status, headers=merged,
                        media_type="application/json")


async def _converted(request: Request) -> StarletteOAuth2Request:
    """OAuth posts `application/x-www-form-urlencoded` (RFC 6749 §4.4.2, RFC 7009, RFC 7662);
    any other body reads as no parameters and gets `invalid_request`."""
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", errors="replace")
        for name, value in parse_qsl(body, keep_blank_values=True):
            form.setdefault(name, value)  # a repeated parameter: the first one counts
    return StarletteOAuth2Request(method=request.method, uri=str(request.url),
                                  headers=request.headers, form=form,
                                  args=dict(request.query_params))


def _server(request: Request) -> StarletteAuthorizationServer:
    server: StarletteAuthorizationServer = request.app.state.auth_server
    return server


async def token(request: Request) -> Response:
    converted = await _converted(request)
    response: Response = await run_in_threadpool(_server(request).create_token_response,
                                                 converted)
    return response


async def introspect(request: Request) -> Response:
    converted = await _converted(request)
    response: Response = await run_in_threadpool(
        _server(request).create_endpoint_response, "introspection", converted)
    return response


async def revoke(request: Request) -> Response:
    converted = await _converted(request)
    response: Response = await run_in_threadpool(
        _server(request).create_endpoint_response, "revocation", converted)
    return response


async def jwks(request: Request) -> Response:
    return JSONResponse(_server(request).keys.jwks(), headers={"Cache-Control": "max-age=300"})


def auth_router() -> Router:
    """`/token`, `/introspect`, `/revoke` and `/jwks`, mounted at the issuer's path; the
    server itself is built at start-up and found on `app.state.auth_server`."""
    return Router(routes=[
        Route("/token", token, methods=["POST"]),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/jwks", jwks, methods=["GET"]),
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
