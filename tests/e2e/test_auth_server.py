"""The embedded authorization server, backend-services part, driven as a client would.

A backend app (authlib's own OAuth2 client, `private_key_jwt`) gets a token and reads an
Appointment; confidential clients use `client_secret_basic`; the negatives follow Inferno's
SMART backend-services kit. Clients are registered in the data dir before the app starts.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from fhir_server.app import create_app
from fhir_server.auth.server.clients import ClientRegistry, new_client
from tests.e2e.conftest import make_settings
from tests.e2e.test_cli import CLI, cli_env
from tests.e2e.tokens import BASE, bearer, mint

ISSUER = "http://testserver/auth"
TOKEN_URL = f"{ISSUER}/token"
SECRET = "correct horse battery staple"
BACKEND_SCOPE = "system/Appointment.rs system/Slot.rs"
RS_KEY = RSAKey.generate_key(2048, parameters={"kid": "rs"}, private=True)
ES_KEY = ECKey.generate_key("P-384", parameters={"kid": "es"}, private=True)
APPOINTMENT = {"resourceType": "Appointment", "id": "appt-1", "status": "proposed",
               "participant": [{"actor": {"reference": "Patient/p1"}, "status": "needs-action"}]}


class SmartPrivateKeyJWT(PrivateKeyJWT):
    """authlib's `private_key_jwt` with SMART's limit: assertions live 5 minutes, not 60."""

    def sign(self, auth: Any, token_endpoint: str) -> str:
        now = int(time.time())
        return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id,
                                    token_endpoint=token_endpoint, header=self.headers,
                                    alg=self.alg, issued_at=now, expires_at=now + 300)


def public_jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def register_clients(data_dir: Path) -> None:
    registry = ClientRegistry.in_data_dir(data_dir)
    registry.add(new_client(client_id="scheduler-sync", secret=SECRET, scope=BACKEND_SCOPE))
    registry.add(new_client(client_id="bulk", jwks=public_jwks(RS_KEY, ES_KEY),
                            scope=BACKEND_SCOPE))


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path)
    register_clients(tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            response = await client.put(f"{BASE}/Appointment/appt-1", json=APPOINTMENT,
                                        headers=bearer(mint()))
            assert response.status_code in (200, 201), response.text
            yield client


def assertion(key: Any = RS_KEY, *, alg: str = "RS384", sub: str = "bulk",
              aud: str = TOKEN_URL, lifetime: int = 240, jti: str | None = None,
              issued: float | None = None) -> str:
    now = int(issued if issued is not None else time.time())
    claims = {"iss": sub, "sub": sub, "aud": aud, "exp": now + lifetime, "iat": now,
              "jti": jti or str(uuid4())}
    return jwt.encode({"alg": alg, "kid": key.kid or "k", "typ": "JWT"}, claims, key,
                      algorithms=[alg])


def with_assertion(signed: str, scope: str = "system/Appointment.rs") -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed}


def basic(client_id: str = "scheduler-sync", secret: str = SECRET) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def secret_token(http: httpx.AsyncClient, scope: str = "system/Appointment.rs") -> str:
    response = await http.post(TOKEN_URL, headers=basic(),
                               data={"grant_type": "client_credentials", "scope": scope})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_a_backend_app_with_authlib_and_private_key_jwt_reads_an_appointment(
        http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test server speaks http
    transport = http._transport
    for key, alg in ((RS_KEY, "RS384"), (ES_KEY, "ES384")):
        async with AsyncOAuth2Client(client_id="bulk", client_secret=key,
                                     token_endpoint_auth_method="private_key_jwt",
                                     scope="system/Appointment.rs",
                                     transport=transport) as app:
            app.register_client_auth_method(SmartPrivateKeyJWT(TOKEN_URL, alg=alg,
                                                          headers={"kid": key.kid}))
            token = await app.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert token["token_type"] == "Bearer" and 0 < token["expires_in"] <= 300
            assert token["scope"] == "system/Appointment.rs"
            response = await app.get(f"{BASE}/Appointment/appt-1")
            assert response.status_code == 200, response.text
            assert response.json()["id"] == "appt-1"
            assert (await app.get(f"{BASE}/Patient/p1")).status_code == 403


async def test_client_secret_basic_gets_a_no_store_token_of_the_clients_role(
        http: httpx.AsyncClient) -> None:
    response = await http.post(TOKEN_URL, headers=basic(),
                               data={"grant_type": "client_credentials"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["scope"] == BACKEND_SCOPE  # no scope asked: all registered ones
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert claims["fhir_scheduler_role"] == "staff" and claims["client_id"] == "scheduler-sync"
    assert claims["exp"] - claims["iat"] <= 300
    read = await http.get(f"{BASE}/Appointment/appt-1", headers=bearer(body["access_token"]))
    assert read.status_code == 200


@pytest.mark.parametrize("headers", [basic(secret="wrong"), basic(client_id="nobody")],
                         ids=["wrong secret", "unknown client"])
async def test_bad_client_credentials_are_401_invalid_client(
        http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await http.post(TOKEN_URL, headers=headers,
                               data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"


def bad_assertions() -> dict[str, str]:
    other = RSAKey.generate_key(2048, parameters={"kid": "rs"}, private=True)
    rs256 = assertion(alg="RS256")
    hs256 = jwt.encode({"alg": "HS256", "kid": "rs"},
                       {"iss": "bulk", "sub": "bulk", "aud": TOKEN_URL, "jti": "h",
                        "exp": int(time.time()) + 60},
                       OctKey.import_key(b"x" * 32), algorithms=["HS256"])
    return {
        "another key": assertion(other),
        "RS256": rs256,
        "HS256": hs256,
        "expired": assertion(issued=time.time() - 600, lifetime=120),
        "lives over 5 minutes": assertion(lifetime=3600),
        "wrong audience": assertion(aud=f"{BASE}"),
        "unknown client": assertion(sub="nobody"),
    }


@pytest.mark.parametrize("case", list(bad_assertions()))
async def test_bad_client_assertions_are_refused_as_invalid_client(
        http: httpx.AsyncClient, case: str) -> None:
    response = await http.post(TOKEN_URL, data=with_assertion(bad_assertions()[case]))
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "invalid_client"


async def test_a_replayed_assertion_jti_is_refused(http: httpx.AsyncClient) -> None:
    signed = assertion(ES_KEY, alg="ES384")
    assert (await http.post(TOKEN_URL, data=with_assertion(signed))).status_code == 200
    again = await http.post(TOKEN_URL, data=with_assertion(signed))
    assert again.status_code in (400, 401) and again.json()["error"] == "invalid_client"
    reused_jti = assertion(ES_KEY, alg="ES384", jti=json.loads(
        base64.urlsafe_b64decode(signed.split(".")[1] + "=="))["jti"])
    assert (await http.post(TOKEN_URL, data=with_assertion(reused_jti))).status_code != 200


async def test_a_scope_beyond_the_registration_is_invalid_scope(http: httpx.AsyncClient) -> None:
    response = await http.post(TOKEN_URL, headers=basic(), data={
        "grant_type": "client_credentials", "scope": "system/Appointment.rs system/*.cruds"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    by_assertion = await http.post(TOKEN_URL, data=with_assertion(
        assertion(), scope="system/Patient.cruds"))
    assert by_assertion.json()["error"] == "invalid_scope"


async def test_repeated_failures_are_throttled_with_retry_after(http: httpx.AsyncClient) -> None:
    statuses = [(await http.post(TOKEN_URL, headers=basic(secret="guess"),
                                 data={"grant_type": "client_credentials"})).status_code
                for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    throttled = await http.post(TOKEN_URL, headers=basic(),
                                data={"grant_type": "client_credentials"})
    assert throttled.status_code == 429 and throttled.json()["error"] == "invalid_client"
    assert int(throttled.headers["retry-after"]) >= 1


async def test_introspection_of_a_live_then_a_revoked_token(http: httpx.AsyncClient) -> None:
    token = await secret_token(http)
    live = await http.post(f"{ISSUER}/introspect", headers=basic(), data={"token": token})
    assert live.status_code == 200
    body = live.json()
    assert body["active"] is True and body["scope"] == "system/Appointment.rs"
    assert body["client_id"] == body["sub"] == "scheduler-sync"
    assert body["token_type"] == "Bearer" and body["exp"] > body["iat"]
    assert (await http.get(f"{BASE}/Appointment/appt-1", headers=bearer(token))).status_code \
        == 200

    revoked = await http.post(f"{ISSUER}/revoke", headers=basic(), data={"token": token})
    assert revoked.status_code == 200
    after = await http.post(f"{ISSUER}/introspect", headers=basic(), data={"token": token})
    assert after.json() == {"active": False}
    refused = await http.get(f"{BASE}/Appointment/appt-1", headers=bearer(token))
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]


async def test_a_client_cannot_introspect_or_revoke_another_clients_token(
        http: httpx.AsyncClient) -> None:
    token = await secret_token(http)
    foreign = await http.post(f"{ISSUER}/introspect", data={"token": token, **with_assertion(
        assertion())})
    assert foreign.json() == {"active": False}
    garbage = await http.post(f"{ISSUER}/introspect", headers=basic(), data={"token": "x.y.z"})
    assert garbage.json() == {"active": False}
    unauthenticated = await http.post(f"{ISSUER}/revoke", data={"token": token})
    assert unauthenticated.status_code == 401


async def test_jwks_publishes_the_public_keys_only(http: httpx.AsyncClient) -> None:
    keys = (await http.get(f"{ISSUER}/jwks")).json()["keys"]
    assert {key["alg"] for key in keys} == {"RS256", "RS384", "ES384"}
    assert not any("d" in key for key in keys)


async def test_smart_configuration_lists_only_what_is_supported(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/.well-known/smart-configuration")
    assert response.status_code == 200
    config = response.json()
    assert config["issuer"] == ISSUER and config["jwks_uri"] == f"{ISSUER}/jwks"
    assert config["token_endpoint"] == TOKEN_URL
    assert config["introspection_endpoint"] == f"{ISSUER}/introspect"
    assert config["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert set(config["token_endpoint_auth_methods_supported"]) == {
        "private_key_jwt", "client_secret_basic", "none"}
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert set(config["grant_types_supported"]) == {
        "authorization_code", "client_credentials", "refresh_token"}
    assert config["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["response_types_supported"] == ["code"]
    # Each capability is exercised in test_smart_launch.py / test_smart_negatives.py.
    assert set(config["capabilities"]) == {
        "launch-ehr", "launch-standalone", "authorize-post", "client-public",
        "client-confidential-symmetric", "client-confidential-asymmetric",
        "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
        "context-banner", "context-style", "permission-offline", "permission-online",
        "permission-patient", "permission-user", "permission-v2", "permission-v1",
        "sso-openid-connect"}
    assert "context-standalone-encounter" not in config["capabilities"]
    assert (await http.get(config["jwks_uri"])).status_code == 200


async def test_capability_statement_security_names_smart_and_the_oauth_uris(
        http: httpx.AsyncClient) -> None:
    security = (await http.get(f"{BASE}/metadata")).json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "SMART-on-FHIR"}
    (uris,) = [e for e in security["extension"] if e["url"] ==
               "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"]
    assert {e["url"]: e["valueUri"] for e in uris["extension"]} == {
        "authorize": f"{ISSUER}/authorize", "token": TOKEN_URL, "revoke": f"{ISSUER}/revoke",
        "introspect": f"{ISSUER}/introspect"}


async def test_external_mode_has_no_embedded_endpoints_or_discovery(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, auth_mode="external",
                                   auth_issuer="https://idp.example/realms/clinic"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            assert (await client.get(f"{BASE}/.well-known/smart-configuration")).status_code \
                == 404
            assert (await client.post(TOKEN_URL)).status_code == 404
            security = (await client.get(f"{BASE}/metadata")).json()["rest"][0]["security"]
            assert "extension" not in security


async def test_a_client_added_with_the_cli_gets_a_token(tmp_path: Path) -> None:
    jwks_file = tmp_path / "client-jwks.json"
    jwks_file.write_text(json.dumps(public_jwks(ES_KEY)))
    env = cli_env(tmp_path)
    added = subprocess.run(CLI + ["clients", "add", "--client-id", "cli-app", "--secret", SECRET,
                                  "--jwks", str(jwks_file), "--scope", "system/Appointment.rs",
                                  "--redirect-uri", "https://app.example/cb"],
                           env=env, capture_output=True, text=True, check=False)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run(CLI + ["clients", "list"], env=env, capture_output=True, text=True,
                            check=True)
    assert listed.stdout.startswith("cli-app\tclient_secret_basic,private_key_jwt\tstaff")
    assert oct(os.stat(tmp_path / "auth" / "clients.json").st_mode & 0o777) == "0o600"
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            by_secret = await client.post(TOKEN_URL, headers=basic("cli-app"),
                                          data={"grant_type": "client_credentials"})
            assert by_secret.status_code == 200, by_secret.text
            by_key = await client.post(TOKEN_URL, data=with_assertion(
                assertion(ES_KEY, alg="ES384", sub="cli-app")))
            assert by_key.status_code == 200, by_key.text
