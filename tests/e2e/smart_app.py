"""A SMART app's side of the authorization-code flow, for the launch tests.

The app is authlib's `AsyncOAuth2Client` (PKCE S256); the user is a browser that reads the
server's HTML forms and posts them back, as a person clicking through would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from fhir_server.app import create_app
from fhir_server.auth.server.clients import ClientRegistry, new_client
from fhir_server.auth.server.users import UserRegistry
from fhir_server.services.seeding import seed_demo
from tests.e2e.conftest import make_settings
from tests.e2e.tokens import BASE

ISSUER = "http://testserver/auth"
AUTHORIZE_URL = f"{ISSUER}/authorize"
TOKEN_URL = f"{ISSUER}/token"
REDIRECT = "https://app.example/callback"
PUBLIC_APP = "appointments-app"
CONFIDENTIAL_APP = "clinic-portal"
APP_SECRET = "portal secret for tests"
APP_SCOPES = ("launch launch/patient launch/encounter openid fhirUser offline_access "
              "online_access patient/*.cruds user/*.cruds")
PASSWORDS = {"admin": "demo-admin-pass", "dr.okafor": "demo-doctor-pass",
             "front.desk": "demo-staff-pass", "maria.garcia": "demo-patient-pass"}


class FormReader(HTMLParser):
    """The hidden and named inputs of a page, and the patient buttons of the picker."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.patients: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("name") and found.get("type") == "hidden":
            self.fields[str(found["name"])] = found.get("value") or ""
        if tag == "button" and found.get("name") == "patient":
            self.patients.append(found.get("value") or "")


def read_form(html: str) -> FormReader:
    reader = FormReader()
    reader.feed(html)
    return reader


def register_apps(data_dir: Path) -> None:
    registry = ClientRegistry.in_data_dir(data_dir)
    registry.add(new_client(client_id=PUBLIC_APP, scope=APP_SCOPES, redirect_uris=[REDIRECT]))
    registry.add(new_client(client_id=CONFIDENTIAL_APP, scope=APP_SCOPES, secret=APP_SECRET,
                            redirect_uris=[REDIRECT]))


@asynccontextmanager
async def demo_server(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The demo clinic with its demo users and two registered SMART apps, over ASGI."""
    register_apps(tmp_path)
    UserRegistry.in_data_dir(tmp_path).add_demo_users()
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app):
        now = datetime.now(UTC)
        await seed_demo(app.state.fhir, today=now.date(), now=now)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as http:
            yield http


def smart_app(http: httpx.AsyncClient, *, scope: str, client_id: str = PUBLIC_APP,
              **kwargs: Any) -> AsyncOAuth2Client:
    """authlib's OAuth client as the app, talking to the same ASGI server as `http`."""
    if client_id == CONFIDENTIAL_APP:
        kwargs.setdefault("client_secret", APP_SECRET)
    else:
        kwargs.setdefault("token_endpoint_auth_method", "none")
    return AsyncOAuth2Client(client_id=client_id, scope=scope, redirect_uri=REDIRECT,
                             code_challenge_method="S256", transport=http._transport,
                             **kwargs)


async def log_in(http: httpx.AsyncClient, authorize_url: str, username: str,
                 password: str | None = None) -> httpx.Response:
    """Open the authorization URL and submit the login form; the server's answer."""
    page = await http.get(authorize_url)
    assert page.status_code == 200, page.text
    fields = read_form(page.text).fields
    return await http.post(f"{ISSUER}/login", data={
        **fields, "username": username, "password": password or PASSWORDS[username]})


async def pick(http: httpx.AsyncClient, picker: httpx.Response, patient: str) -> httpx.Response:
    assert picker.status_code == 200, picker.text
    ticket = read_form(picker.text).fields["ticket"]
    return await http.post(f"{ISSUER}/pick-patient", data={"ticket": ticket, "patient": patient})


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query of a redirect to the app's callback (`code` and `state`, or `error`)."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def authorization_url(app: AsyncOAuth2Client, verifier: str, **params: str) -> str:
    url, _ = app.create_authorization_url(AUTHORIZE_URL, code_verifier=verifier,
                                          **{"aud": BASE, **params})
    return str(url)


def new_verifier() -> str:
    return generate_token(48)


async def verified_id_token(http: httpx.AsyncClient, id_token: str,
                            client_id: str) -> dict[str, Any]:
    """The ID token's claims, its RS256 signature checked against the server's JWKS."""
    config = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    keys = (await http.get(config["jwks_uri"])).json()["keys"]
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    (jwk,) = [key for key in keys if key["kid"] == header["kid"]]
    claims: dict[str, Any] = jwt.decode(id_token, jwt.PyJWK(jwk).key, algorithms=["RS256"],
                                        audience=client_id, issuer=config["issuer"])
    return claims
