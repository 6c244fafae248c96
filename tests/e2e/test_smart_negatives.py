"""Inferno-style negatives for the SMART App Launch part of the embedded server: PKCE,
codes, redirect URIs, clients, launch ids, refresh tokens, login throttling and the login
session."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.e2e.smart_app import (
    APP_SECRET,
    AUTHORIZE_URL,
    CONFIDENTIAL_APP,
    ISSUER,
    PUBLIC_APP,
    REDIRECT,
    TOKEN_URL,
    demo_server,
    log_in,
    new_verifier,
    read_form,
    redirect_params,
)
from tests.e2e.tokens import BASE, bearer

SCOPE = "openid fhirUser user/Appointment.rs"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with demo_server(tmp_path) as client:
        yield client


def authorize_url(verifier: str | None = None, **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": PUBLIC_APP, "redirect_uri": REDIRECT,
        "scope": SCOPE, "state": "st-1", "aud": BASE,
        "code_challenge": create_s256_code_challenge(verifier or new_verifier()),
        "code_challenge_method": "S256"}
    params.update(overrides)
    return f"{AUTHORIZE_URL}?{urlencode({k: v for k, v in params.items() if v is not None})}"


async def code_for(http: httpx.AsyncClient, verifier: str, *, user: str = "front.desk",
                   **overrides: str | None) -> str:
    callback = redirect_params(await log_in(http, authorize_url(verifier, **overrides), user))
    assert callback["state"] == "st-1"
    return callback["code"]


async def exchange(http: httpx.AsyncClient, code: str, verifier: str | None, *,
                   client_id: str = PUBLIC_APP, redirect_uri: str = REDIRECT,
                   headers: dict[str, str] | None = None) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id}
    if verifier is not None:
        form["code_verifier"] = verifier
    return await http.post(TOKEN_URL, data=form, headers=headers or {})


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.mark.parametrize("overrides, reason", [
    ({"code_challenge": None, "code_challenge_method": None}, "missing"),
    ({"code_challenge_method": None}, "method defaults to plain"),
    ({"code_challenge_method": "plain"}, "plain"),
    ({"aud": "https://other.example/fhir"}, "wrong aud"),
    ({"launch": "not-a-launch-we-issued"}, "unknown launch"),
])
async def test_bad_authorization_requests_go_back_to_the_app_as_invalid_request(
        http: httpx.AsyncClient, overrides: dict[str, str | None], reason: str) -> None:
    response = await http.get(authorize_url(**overrides))
    error = redirect_params(response)
    assert error["error"] == "invalid_request", reason
    assert error["state"] == "st-1" and "code" not in error


async def test_a_plain_challenge_is_refused_even_when_it_would_match(
        http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    response = await http.get(authorize_url(code_challenge=verifier,
                                            code_challenge_method="plain"))
    assert redirect_params(response)["error"] == "invalid_request"


@pytest.mark.parametrize("overrides", [
    {"redirect_uri": "https://evil.example/callback"},
    {"redirect_uri": REDIRECT + "/"},  # exact match only
    {"client_id": "no-such-app"},
])
async def test_an_untrusted_redirect_or_unknown_client_gets_a_page_not_a_redirect(
        http: httpx.AsyncClient, overrides: dict[str, str]) -> None:
    response = await http.get(authorize_url(**overrides))
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


async def test_a_wrong_code_verifier_is_invalid_grant(http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    code = await code_for(http, verifier)
    wrong = await exchange(http, code, new_verifier())
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = await exchange(http, await code_for(http, verifier), None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_a_code_works_once(http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    code = await code_for(http, verifier)
    first = await exchange(http, code, verifier)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    again = await exchange(http, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_code_is_bound_to_its_client_and_redirect_uri(http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    other_redirect = await exchange(http, await code_for(http, verifier), verifier,
                                    redirect_uri="https://app.example/other")
    assert other_redirect.json()["error"] == "invalid_grant"
    other_client = await exchange(http, await code_for(http, verifier), verifier,
                                  client_id=CONFIDENTIAL_APP,
                                  headers=basic(CONFIDENTIAL_APP, APP_SECRET))
    assert other_client.json()["error"] == "invalid_grant"


async def test_a_confidential_app_must_authenticate(http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    code = await code_for(http, verifier, client_id=CONFIDENTIAL_APP)
    unauthenticated = await exchange(http, code, verifier, client_id=CONFIDENTIAL_APP)
    assert unauthenticated.json()["error"] == "invalid_client"
    code = await code_for(http, verifier, client_id=CONFIDENTIAL_APP)
    wrong_secret = await exchange(http, code, verifier, client_id=CONFIDENTIAL_APP,
                                  headers=basic(CONFIDENTIAL_APP, "not the secret"))
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    code = await code_for(http, verifier, client_id=CONFIDENTIAL_APP)
    good = await exchange(http, code, verifier, client_id=CONFIDENTIAL_APP,
                          headers=basic(CONFIDENTIAL_APP, APP_SECRET))
    assert good.status_code == 200, good.text


async def test_a_public_app_cannot_use_client_credentials(http: httpx.AsyncClient) -> None:
    response = await http.post(TOKEN_URL, data={"grant_type": "client_credentials",
                                                "client_id": PUBLIC_APP})
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_client", "unauthorized_client")


async def test_no_refresh_token_without_offline_or_online_access(
        http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    token = (await exchange(http, await code_for(http, verifier), verifier)).json()
    assert "refresh_token" not in token
    forged = await http.post(TOKEN_URL, data={"grant_type": "refresh_token",
                                              "refresh_token": token["access_token"],
                                              "client_id": PUBLIC_APP})
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_grant"


async def test_online_access_gets_a_refresh_token_too(http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    code = await code_for(http, verifier, scope="online_access user/Appointment.rs")
    token = (await exchange(http, code, verifier)).json()
    assert token["scope"] == "online_access user/Appointment.rs" and token["refresh_token"]


async def refreshable(http: httpx.AsyncClient) -> dict[str, str]:
    verifier = new_verifier()
    code = await code_for(http, verifier, scope="offline_access user/Appointment.rs")
    response = await exchange(http, code, verifier)
    assert response.status_code == 200, response.text
    token: dict[str, str] = response.json()
    assert token["scope"] == "offline_access user/Appointment.rs"
    return token


async def refresh(http: httpx.AsyncClient, refresh_token: str,
                  **extra: str) -> httpx.Response:
    return await http.post(TOKEN_URL, data={"grant_type": "refresh_token",
                                            "refresh_token": refresh_token,
                                            "client_id": PUBLIC_APP, **extra})


async def test_a_refresh_token_is_rotated_and_a_used_one_refused(
        http: httpx.AsyncClient) -> None:
    token = await refreshable(http)
    as_bearer = await http.get(f"{BASE}/Appointment", headers=bearer(token["refresh_token"]))
    assert as_bearer.status_code == 401  # a refresh token is no access token
    first = await refresh(http, token["refresh_token"])
    assert first.status_code == 200, first.text
    replay = await refresh(http, token["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await refresh(http, first.json()["refresh_token"])).status_code == 200


async def test_a_refresh_cannot_widen_scopes(http: httpx.AsyncClient) -> None:
    token = await refreshable(http)
    wider = await refresh(http, token["refresh_token"],
                          scope="offline_access user/Appointment.cruds")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrower = await refresh(http, token["refresh_token"], scope="user/Appointment.rs")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "user/Appointment.rs"


async def test_a_revoked_refresh_token_is_refused(http: httpx.AsyncClient) -> None:
    token = await refreshable(http)
    revoked = await http.post(f"{ISSUER}/revoke", data={
        "token": token["refresh_token"], "token_type_hint": "refresh_token",
        "client_id": PUBLIC_APP})
    assert revoked.status_code == 200, revoked.text
    refused = await refresh(http, token["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_a_public_app_revokes_its_access_token(http: httpx.AsyncClient) -> None:
    token = await refreshable(http)
    headers = bearer(token["access_token"])
    assert (await http.get(f"{BASE}/Appointment", headers=headers)).status_code == 200
    revoked = await http.post(f"{ISSUER}/revoke", data={"token": token["access_token"],
                                                        "client_id": PUBLIC_APP})
    assert revoked.status_code == 200, revoked.text
    assert (await http.get(f"{BASE}/Appointment", headers=headers)).status_code == 401


async def test_failed_logins_are_throttled_even_for_the_right_password(
        http: httpx.AsyncClient) -> None:
    url = authorize_url()
    for _ in range(5):
        wrong = await log_in(http, url, "front.desk", "not the password")
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    throttled = await log_in(http, url, "front.desk")
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    # The address is throttled too: guessing another user's password waits as well.
    other = await log_in(http, url, "admin")
    assert other.status_code == 429


async def test_the_authorization_request_may_be_posted(http: httpx.AsyncClient) -> None:
    verifier = new_verifier()
    params = dict(httpx.URL(authorize_url(verifier)).params)
    page = await http.post(AUTHORIZE_URL, data=params)
    assert page.status_code == 200 and 'name="code_challenge"' in page.text


async def test_a_picker_ticket_works_only_in_the_browser_that_logged_in(
        http: httpx.AsyncClient) -> None:
    url = authorize_url(scope="launch/patient user/Appointment.rs")
    picker = await log_in(http, url, "front.desk")
    ticket = read_form(picker.text).fields["ticket"]
    choice = {"ticket": ticket, "patient": "maria-garcia"}
    async with httpx.AsyncClient(transport=http._transport,
                                 base_url="http://testserver") as elsewhere:
        stolen = await elsewhere.post(f"{ISSUER}/pick-patient", data=choice)
    assert stolen.status_code == 400 and "expired" in stolen.text
    assert redirect_params(await http.post(f"{ISSUER}/pick-patient", data=choice))["code"]
    again = await http.post(f"{ISSUER}/pick-patient", data=choice)  # the ticket is spent
    assert again.status_code == 400
