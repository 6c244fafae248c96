"""What the embedded server advertises: only what it does today (backend services).

`authorization_endpoint` and the launch capabilities join once the authorization-code flow
exists; until then a SMART app that needs them sees they are missing instead of failing later.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.server.authority import ASSERTION_ALGORITHMS, AUTH_METHODS, Endpoints

# Backend services get system scopes; v2 letters and the v1 forms (normalised to v2).
SCOPES_SUPPORTED = ("system/*.cruds", "system/*.rs", "system/*.read", "system/*.write",
                    "system/*.*")
CAPABILITIES = ("client-confidential-asymmetric", "client-confidential-symmetric",
                "permission-v2", "permission-v1")


def smart_configuration(endpoints: Endpoints) -> dict[str, Any]:
    """The document served at `[base]/.well-known/smart-configuration`."""
    return {
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.jwks,
        "token_endpoint": endpoints.token,
        "introspection_endpoint": endpoints.introspect,
        "revocation_endpoint": endpoints.revoke,
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": list(CAPABILITIES),
    }


def oauth_uris(endpoints: Endpoints) -> dict[str, str]:
    """The `oauth-uris` extension's URLs for the CapabilityStatement (legacy clients)."""
    return {"token": endpoints.token, "revoke": endpoints.revoke,
            "introspect": endpoints.introspect}
