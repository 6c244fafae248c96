"""Build the resource server's token validator from the settings, once at start-up.

Embedded mode trusts exactly the keys under `data_dir/keys` (created on first start);
external mode trusts the IdP's JWKS, found through its OIDC discovery document and fetched
with a short timeout, so a slow IdP turns into a 503 rather than a hung worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from fhir_server.auth.keys import load_or_create_keys
from fhir_server.auth.server.adapter import StarletteAuthorizationServer
from fhir_server.auth.server.authority import Endpoints
from fhir_server.auth.server.clients import ClientRegistry
from fhir_server.auth.server.revocations import RevocationList
from fhir_server.auth.server.state import AuthState
from fhir_server.auth.server.users import UserRegistry
from fhir_server.auth.tokens import RemoteJwks, StaticJwks, TokenValidator
from fhir_server.settings import Settings


def http_fetcher(timeout_s: float) -> Callable[[str], Mapping[str, Any]]:
    """A blocking JSON GET for `RemoteJwks` (it runs in a worker thread, off the event loop)."""

    def fetch(url: str) -> Mapping[str, Any]:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=False,
                             headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, Mapping):
            raise ValueError(f"{url} did not answer a JSON object")
        return document

    return fetch


def build_token_validator(settings: Settings,
                          revocations: RevocationList | None = None) -> TokenValidator:
    """The validator for the configured mode; audience is always the FHIR base URL.

    With the embedded server's `revocations`, a revoked token is refused at once.
    """
    if settings.auth_mode == "external":
        jwks: StaticJwks | RemoteJwks = RemoteJwks(
            settings.issuer, http_fetcher(settings.auth_jwks_timeout_s))
    else:
        jwks = StaticJwks(load_or_create_keys(settings.data_dir).jwks())
    return TokenValidator(issuer=settings.issuer, audience=settings.base_url, jwks=jwks,
                          is_revoked=revocations.is_revoked if revocations else None)


def build_authorization_server(settings: Settings) -> StarletteAuthorizationServer:
    """The embedded authorization server over the data dir's keys, clients, users,
    revocations and shared state."""
    return StarletteAuthorizationServer(
        keys=load_or_create_keys(settings.data_dir),
        clients=ClientRegistry.in_data_dir(settings.data_dir),
        users=UserRegistry.in_data_dir(settings.data_dir),
        revocations=RevocationList.in_data_dir(settings.data_dir),
        state=AuthState.in_data_dir(settings.data_dir),
        endpoints=Endpoints(settings.issuer), audience=settings.base_url)
