"""Starlette requests as authlib's `OAuth2Request`, and the server they are handled by.

Shared by the token endpoints (`web.py`) and the login pages (`login.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.auth.server.authority import EmbeddedAuthorizationServer
from fhir_server.auth.server.launch import PendingLogins
from fhir_server.auth.server.login_session import LoginSessions
from fhir_server.auth.server.revocations import FailureThrottle

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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Failed logins, per username and per client address, users at the patient picker,
        # and the login form's CSRF check (`login.py`), shared by the worker processes.
        self.login_throttle = FailureThrottle(self.state, "login", clock=self.clock)
        self.pending_logins = PendingLogins(self.state, self.clock)
        self.login_sessions = LoginSessions(self.state.secret("login-csrf"),
                                            self.endpoints.issuer)

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        merged = {**dict(headers or []), **NO_STORE}
        merged.pop("Content-Type", None)
        return Response(json.dumps(body), status_code=status, headers=merged,
                        media_type="application/json")


async def read_form(request: Request) -> dict[str, str]:
    """OAuth posts `application/x-www-form-urlencoded` (RFC 6749 §4.4.2, RFC 7009, RFC 7662);
    any other body reads as no parameters and gets `invalid_request`."""
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", errors="replace")
        for name, value in parse_qsl(body, keep_blank_values=True):
            form.setdefault(name, value)  # a repeated parameter: the first one counts
    return form


def converted(request: Request, form: dict[str, str]) -> StarletteOAuth2Request:
    """The request with its already-read parameters, as authlib sees it."""
    return StarletteOAuth2Request(method=request.method, uri=str(request.url),
                                  headers=request.headers, form=form,
                                  args=dict(request.query_params))


def auth_server(request: Request) -> StarletteAuthorizationServer:
    """The embedded server, built at start-up and kept on `app.state`."""
    server: StarletteAuthorizationServer = request.app.state.auth_server
    return server
