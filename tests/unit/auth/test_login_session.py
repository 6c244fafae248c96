"""The login session's cookie and CSRF token: bound to each other, scoped to the issuer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.auth.server.login_session import COOKIE, FIELD, LoginSessions


def request_with(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "POST", "path": "/auth/login", "headers": headers})


def test_a_form_is_accepted_only_with_its_sessions_cookie_and_token() -> None:
    sessions = LoginSessions(b"k" * 32, "http://127.0.0.1:8080/auth")
    session = sessions.current_or_new(request_with(None))
    token = sessions.form_token(session)
    assert sessions.verified(request_with(session), {FIELD: token}) == session
    assert sessions.current_or_new(request_with(session)) == session
    other = sessions.current_or_new(request_with(None))
    assert sessions.verified(request_with(other), {FIELD: token}) is None
    assert sessions.verified(request_with(None), {FIELD: token}) is None
    assert sessions.verified(request_with(session), {}) is None
    assert LoginSessions(b"o" * 32, "http://x/auth").verified(
        request_with(session), {FIELD: token}) is None  # another server's secret


def test_the_cookie_is_http_only_lax_and_secure_behind_an_https_issuer() -> None:
    response = Response()
    LoginSessions(b"k" * 32, "https://clinic.example/auth").keep(response, "s" * 43)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={'s' * 43};")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "Path=/auth" in cookie
