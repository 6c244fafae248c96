"""The login page and patient picker of SMART's standalone and EHR launch (server-rendered).

- `GET|POST /authorize`: authlib validates the authorization request (client, exact redirect
  URI, `aud`, scopes, PKCE S256, `launch`). An invalid request goes back to the app's redirect
  URI when that URI is registered for the client, and is a 400 page otherwise.
- `POST /login`: the login form carries the request's parameters, so they are validated again
  with the password, and the CSRF token of the browser's login session (`login_session.py`;
  without it, 403); failures are throttled per username and per client address, across
  worker processes (429 page with `Retry-After`). A patient gets their own record as
  context; an EHR launch brings its own; `launch/patient` for anyone else leads to the
  picker; then the code goes to the app.
- `POST /pick-patient`: the picker, by an unguessable ticket that stands for the login and
  works only with the same login session cookie; choosing a patient spends it.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Final

import jinja2
from authlib.oauth2.rfc6749 import AccessDeniedError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fhir_server.audit import metrics as security_events
from fhir_server.auth.roles import Role
from fhir_server.auth.server.adapter import (
    NO_STORE,
    StarletteAuthorizationServer,
    auth_server,
    converted,
    read_form,
)
from fhir_server.auth.server.launch import Grantee, LaunchContext, bare_id
from fhir_server.auth.server.login_session import FIELD as CSRF_FIELD
from fhir_server.auth.server.users import UserRecord
from fhir_server.fhir.ids import FHIR_ID
from fhir_server.services.launch_patients import chosen_patient, patient_choices

PAGES: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("fhir_server.auth.server", "templates"), autoescape=True)
HTML_HEADERS: Final = {
    **NO_STORE, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'",
}
LOGIN_FIELDS: Final = ("username", "password", CSRF_FIELD)
# The look SMART apps may adopt (`smart_style_url`), served at `<issuer>/smart-style.json`.
SMART_STYLE: Final = {
    "color_background": "#f5f7fa", "color_error": "#b42318", "color_highlight": "#0b5cad",
    "color_modal_backdrop": "", "color_success": "#027a48", "color_text": "#1f2933",
    "dim_border_radius": "8px", "dim_font_size": "16px", "dim_spacing_size": "16px",
    "font_family_body": "system-ui, sans-serif", "font_family_heading": "system-ui, sans-serif",
}


def routes() -> list[Route]:
    return [
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/pick-patient", pick_patient, methods=["POST"]),
        Route("/smart-style.json", smart_style, methods=["GET"]),
    ]


async def authorize(request: Request) -> Response:
    raw = await read_form(request) if request.method == "POST" else dict(request.query_params)
    params = _request_params(raw)
    grant = _consent(request, params)
    if isinstance(grant, Response):
        return grant
    session = auth_server(request).login_sessions.current_or_new(request)
    return _login_page(request, grant, params, session=session)


async def login(request: Request) -> Response:
    form = await read_form(request)
    server = auth_server(request)
    address = _address(request)
    session = server.login_sessions.verified(request, form)
    if session is None:
        security_events.auth_failed(reason="login csrf", client=address, path=request.url.path)
        return _page("error.html", status=403, title="This sign-in form has expired",
                     message="Go back to the app and sign in again.")
    params = _request_params(form)
    grant = _consent(request, params)
    if isinstance(grant, Response):
        return grant
    username = form.get("username", "")
    user, wait = await run_in_threadpool(_attempt, server, username, form.get("password", ""),
                                         (f"user:{username}", f"address:{address}"))
    if wait > 0:
        security_events.auth_failed(reason="login throttled", client=address,
                                    path=request.url.path)
        return _page("error.html", status=429, headers={"Retry-After": str(max(1, round(wait)))},
                     title="Too many attempts",
                     message="Too many failed sign-ins. Wait a moment and try again.")
    if user is None:
        security_events.auth_failed(reason="bad login", client=address, path=request.url.path)
        return _login_page(request, grant, params, session=session, status=401,
                           username=username, error="Wrong username or password.")
    return await _after_login(request, grant, params, user, auth_time=int(server.clock()),
                              session=session)


async def pick_patient(request: Request) -> Response:
    form = await read_form(request)
    server = auth_server(request)
    ticket = form.get("ticket", "")
    pending = await run_in_threadpool(server.pending_logins.get, ticket)
    user = server.users.get(pending.username) if pending and server.users else None
    if (pending is None or user is None
            or pending.session != server.login_sessions.session_of(request)):
        return _expired_page()
    grant = _consent(request, pending.params)
    if isinstance(grant, Response):
        return grant
    chosen = form.get("patient")
    if chosen is None:
        return await _picker_page(request, grant, user, ticket, name=form.get("name", ""))
    choice = None
    if FHIR_ID.fullmatch(chosen):
        choice = await chosen_patient(request.app.state.fhir, chosen, seen_by=_seen_by(user),
                                      now=datetime.now(UTC))
    if choice is None:
        return await _picker_page(request, grant, user, ticket, name="", status=400,
                                  error="That patient cannot be chosen.")
    if await run_in_threadpool(server.pending_logins.take, ticket) is None:
        return _expired_page()  # another request chose first
    context = LaunchContext(patient=choice.id, smart_style_url=_style_url(request))
    return await _issue_code(grant, Grantee(user=user, context=context,
                                            auth_time=pending.auth_time))


async def smart_style(request: Request) -> Response:
    return JSONResponse(SMART_STYLE, headers={"Cache-Control": "max-age=3600"})


async def _after_login(request: Request, grant: AuthorizationCodeGrant, params: dict[str, str],
                       user: UserRecord, *, auth_time: int, session: str) -> Response:
    """The launch context of this login, from the user, the EHR launch, or the picker."""
    ehr: LaunchContext | None = grant.request.ehr_launch
    style = ehr.smart_style_url if ehr and ehr.smart_style_url else _style_url(request)
    if user.own_patient is not None:
        own = bare_id(user.own_patient, "Patient")
        if ehr is not None and ehr.patient not in (None, own):
            return _authorization_error(AccessDeniedError(
                "A patient can only launch an app for their own record",
                redirect_uri=grant.redirect_uri, state=grant.request.payload.state))
        context = LaunchContext(patient=own, encounter=ehr.encounter if ehr else None,
                                need_patient_banner=ehr.need_patient_banner if ehr else True,
                                smart_style_url=style)
    elif ehr is not None:
        context = LaunchContext(patient=ehr.patient, encounter=ehr.encounter,
                                need_patient_banner=ehr.need_patient_banner,
                                smart_style_url=style)
    elif "launch/patient" in grant.request.scope.split():
        ticket = await run_in_threadpool(functools.partial(
            auth_server(request).pending_logins.add, username=user.username, params=params,
            auth_time=auth_time, session=session))
        return await _picker_page(request, grant, user, ticket, name="")
    else:
        context = LaunchContext(smart_style_url=style)
    return await _issue_code(grant, Grantee(user=user, context=context, auth_time=auth_time))


def _attempt(server: StarletteAuthorizationServer, username: str, password: str,
             keys: tuple[str, ...]) -> tuple[UserRecord | None, float]:
    """The user of a good password, or the seconds to wait first (0 when not throttled).

    Runs in the thread pool: scrypt and the shared state file both block.
    """
    wait = max(server.login_throttle.retry_after(key) for key in keys)
    if wait > 0:
        return None, wait
    user = server.users.authenticate(username, password) if server.users else None
    if user is None:
        for key in keys:
            server.login_throttle.failed(key)
    else:
        server.login_throttle.succeeded(keys[0])
    return user, 0.0


def _request_params(form: dict[str, str]) -> dict[str, str]:
    """The authorization request's parameters, without the login form's own fields."""
    return {name: value for name, value in form.items() if name not in LOGIN_FIELDS}


def _consent(request: Request, params: dict[str, str]) -> AuthorizationCodeGrant | Response:
    """The validated authorization request, or the error response the app or user gets."""
    try:
        grant: AuthorizationCodeGrant = auth_server(request).get_consent_grant(
            converted(request, params))
    except OAuth2Error as error:
        return _authorization_error(error)
    return grant


async def _issue_code(grant: AuthorizationCodeGrant, grantee: Grantee) -> Response:
    """Redirect to the app with a new code (or with the error that prevented one); saving the
    code writes the shared state file, so it runs in the thread pool."""
    try:
        _, _, headers = await run_in_threadpool(grant.create_authorization_response,
                                                grant.redirect_uri, grantee)
    except OAuth2Error as error:
        error.state = grant.request.payload.state
        return _authorization_error(error)
    return RedirectResponse(dict(headers)["Location"], status_code=302, headers=NO_STORE)


def _authorization_error(error: OAuth2Error) -> Response:
    """Back to a trusted redirect URI with `error`, else a page: never to an unchecked URI."""
    if error.redirect_uri:
        _, _, headers = error()
        return RedirectResponse(dict(headers)["Location"], status_code=302, headers=NO_STORE)
    return _page("error.html", status=400, title="This sign-in request is not valid",
                 message=error.description or error.error, code=error.error)


def _login_page(request: Request, grant: AuthorizationCodeGrant, params: dict[str, str], *,
                session: str, status: int = 200, username: str = "",
                error: str = "") -> Response:
    """The login form, with the CSRF token of the browser's login session (cookie set)."""
    sessions = auth_server(request).login_sessions
    scopes = grant.request.scope.split()
    page = _page("login.html", status=status, client_id=grant.request.client.client_id,
                 params=sorted(params.items()), scopes=scopes, username=username, error=error,
                 ehr_launch=grant.request.ehr_launch is not None,
                 offline="offline_access" in scopes, login_url=_url(request, "/login"),
                 csrf_field=CSRF_FIELD, csrf_token=sessions.form_token(session))
    sessions.keep(page, session)
    return page


def _expired_page() -> Response:
    return _page("error.html", status=400, title="Your sign-in expired",
                 message="Go back to the app and sign in again.")


async def _picker_page(request: Request, grant: AuthorizationCodeGrant, user: UserRecord,
                       ticket: str, *, name: str, status: int = 200,
                       error: str = "") -> Response:
    patients = await patient_choices(request.app.state.fhir, name=name, seen_by=_seen_by(user),
                                     now=datetime.now(UTC))
    return _page("pick_patient.html", status=status, client_id=grant.request.client.client_id,
                 username=user.username, ticket=ticket, name=name, patients=patients,
                 error=error, pick_url=_url(request, "/pick-patient"))


def _page(template: str, *, status: int = 200, headers: dict[str, str] | None = None,
          **values: Any) -> HTMLResponse:
    return HTMLResponse(PAGES.get_template(template).render(**values), status_code=status,
                        headers={**HTML_HEADERS, **(headers or {})})


def _seen_by(user: UserRecord) -> str | None:
    """A doctor picks among the patients they see; staff and administrators among all."""
    return user.fhir_user if user.role is Role.DOCTOR else None


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _url(request: Request, path: str) -> str:
    """An endpoint of the embedded server, as apps and browsers know it (under the issuer)."""
    return f"{auth_server(request).endpoints.issuer}{path}"


def _style_url(request: Request) -> str:
    return _url(request, "/smart-style.json")
