"""The embedded authorization server under `fhir-scheduler serve --workers 2`.

Every request goes out on a new connection, so each step of a flow reaches whichever worker
process accepts it: a code issued by one is exchanged at the other, a picker ticket made by
one is used at the other, a refresh token or an assertion `jti` spent at one is spent at the
other, and a failed login seen by one counts at the other. One worker cannot be chosen, so
each check is repeated until both have surely been involved; with per-process state about
half of the launches would fail.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.e2e.smart_app import PASSWORDS, REDIRECT, new_verifier, read_form
from tests.e2e.test_cli import CLI, cli_env, running_server
from tests.e2e.tokens import bearer

APP = "workers-app"
BACKEND = "workers-backend"
LAUNCHES = 10
ASSERTIONS = 8
REFRESHES = 8
SCOPE = "launch/patient openid fhirUser patient/Appointment.rs"
KEY = ECKey.generate_key("P-384", parameters={"kid": "es"}, private=True)
NEW_CONNECTIONS = httpx.Limits(max_keepalive_connections=0)


@dataclass(frozen=True)
class Server:
    base: str
    issuer: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two worker processes over one data dir with the demo clinic, a SMART app and a
    backend client registered with the CLI."""
    data_dir = tmp_path_factory.mktemp("workers")
    jwks = data_dir / "backend-jwks.json"
    jwks.write_text(json.dumps({"keys": [KEY.as_dict(private=False)]}))
    for client in (["--client-id", APP, "--redirect-uri", REDIRECT,
                    "--scope", f"{SCOPE} offline_access"],
                   ["--client-id", BACKEND, "--jwks", str(jwks), "--scope", "system/Slot.rs"]):
        subprocess.run(CLI + ["clients", "add", *client], env=cli_env(data_dir), check=True,
                       capture_output=True)
    with running_server(data_dir, "--seed-if-empty", "--workers", "2",
                        embedded_worker="false") as base:
        yield Server(base=base, issuer=base.removesuffix("/fhir") + "/auth")


@pytest.fixture(autouse=True)
def _http_is_fine_for_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test server speaks http


def browser() -> httpx.Client:
    """A browser keeping cookies but opening a new connection for every request."""
    return httpx.Client(limits=NEW_CONNECTIONS, timeout=30)


def login_page(browser: httpx.Client, server: Server, verifier: str,
               scope: str = SCOPE) -> tuple[OAuth2Client, httpx.Response]:
    """The app's authorization URL opened in `browser`: the app and the login page."""
    app = OAuth2Client(client_id=APP, scope=scope, redirect_uri=REDIRECT,
                       code_challenge_method="S256", token_endpoint_auth_method="none",
                       limits=NEW_CONNECTIONS, timeout=30)
    url, _ = app.create_authorization_url(f"{server.issuer}/authorize", code_verifier=verifier,
                                          aud=server.base)
    page = browser.get(url)
    assert page.status_code == 200, page.text
    return app, page


def launch(server: Server, scope: str = SCOPE) -> dict[str, Any]:
    """A doctor's standalone launch with the patient picker; the app's token response."""
    verifier = new_verifier()
    with browser() as user:
        app, page = login_page(user, server, verifier, scope)
        picker = user.post(f"{server.issuer}/login", data={
            **read_form(page.text).fields, "username": "dr.okafor",
            "password": PASSWORDS["dr.okafor"]})
        assert picker.status_code == 200, picker.text
        callback = user.post(f"{server.issuer}/pick-patient", data={
            "ticket": read_form(picker.text).fields["ticket"], "patient": "maria-garcia"})
    assert callback.status_code == 302, callback.text
    with app:
        token: dict[str, Any] = app.fetch_token(
            f"{server.issuer}/token", code_verifier=verifier,
            authorization_response=callback.headers["location"])
    return token


def test_standalone_launches_succeed_whichever_worker_each_step_reaches(server: Server) -> None:
    for _ in range(LAUNCHES):
        token = launch(server)
        assert token["patient"] == "maria-garcia"
        found = httpx.get(f"{server.base}/Appointment", params={"patient": "maria-garcia"},
                          headers=bearer(token["access_token"]), timeout=30)
        assert found.status_code == 200 and found.json()["total"] == 1, found.text


def test_concurrent_uses_of_one_refresh_token_on_both_workers_succeed_once(
        server: Server) -> None:
    refresh = {"grant_type": "refresh_token", "client_id": APP,
               "refresh_token": launch(server, f"{SCOPE} offline_access")["refresh_token"]}
    with ThreadPoolExecutor(REFRESHES) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{server.issuer}/token", data=refresh,
                                                     timeout=30), range(REFRESHES)))
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * (REFRESHES - 1)


def test_a_replayed_assertion_is_refused_by_every_worker(server: Server) -> None:
    token_url = f"{server.issuer}/token"
    for _ in range(ASSERTIONS):
        signed = jwt.encode({"alg": "ES384", "kid": "es", "typ": "JWT"},
                            {"iss": BACKEND, "sub": BACKEND, "aud": token_url,
                             "exp": int(time.time()) + 240, "jti": str(uuid4())},
                            KEY, algorithms=["ES384"])
        form = {"grant_type": "client_credentials", "client_assertion": signed,
                "client_assertion_type":
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
        answers = [httpx.post(token_url, data=form, timeout=30) for _ in range(3)]
        assert answers[0].status_code == 200, answers[0].text
        assert [a.json().get("error") for a in answers[1:]] == ["invalid_client"] * 2


def test_a_login_form_without_its_session_and_token_is_refused(server: Server) -> None:
    with browser() as user:
        _, page = login_page(user, server, new_verifier())
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("fhir_scheduler_login=") and "Path=/auth" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        fields = read_form(page.text).fields
        credentials = {"username": "maria.garcia", "password": PASSWORDS["maria.garcia"]}
        without_token = {k: v for k, v in fields.items() if k != "csrf_token"}
        forged = {**fields, "csrf_token": "0" * 64}
        for data in (without_token, forged):
            refused = user.post(f"{server.issuer}/login", data={**data, **credentials})
            assert refused.status_code == 403 and "expired" in refused.text
        accepted = user.post(f"{server.issuer}/login", data={**fields, **credentials})
        assert accepted.status_code == 302, accepted.text
    with browser() as another_site:  # the right fields, posted without the victim's cookie
        refused = another_site.post(f"{server.issuer}/login", data={**fields, **credentials})
    assert refused.status_code == 403


def test_failed_logins_are_throttled_across_workers(server: Server) -> None:
    """Last in this module: it leaves the test client's address throttled for a moment."""
    with browser() as user:
        _, page = login_page(user, server, new_verifier())
        fields = read_form(page.text).fields
        statuses = [user.post(f"{server.issuer}/login", data={
            **fields, "username": "front.desk", "password": "not the password"}).status_code
            for _ in range(6)]
    assert statuses == [401] * 5 + [429]
