"""What the embedded server advertises: only what it does (SMART App Launch 2.x discovery).

Not claimed: `context-standalone-encounter` (the picker chooses patients only) and a
userinfo endpoint (apps read the `fhirUser` claim of the ID token, as SMART intends).
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.server.authority import ASSERTION_ALGORITHMS, AUTH_METHODS, Endpoints

SCOPES_SUPPORTED = (
    "openid", "fhirUser", "launch", "launch/patient", "launch/encounter", "offline_access",
    "online_access", "patient/*.cruds", "patient/*.rs", "patient/*.read", "patient/*.write",
    "user/*.cruds", "user/*.rs", "user/*.read", "user/*.write",
    "system/*.cruds", "system/*.rs", "system/*.read", "system/*.write", "system/*.*",
)
CAPABILITIES = (
    "launch-ehr", "launch-standalone", "authorize-post",
    "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
    "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
    "context-banner", "context-style",
    "permission-offline", "permission-online", "permission-patient", "permission-user",
    "permission-v2", "permission-v1", "sso-openid-connect",
)


def smart_configuration(endpoints: Endpoints) -> dict[str, Any]:
    """The document served at `[base]/.well-known/smart-configuration`."""
    return {
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.jwks,
        "authorization_endpoint": endpoints.authorize,
        "token_endpoint": endpoints.token,
        "introspection_endpoint": endpoints.introspect,
        "revocation_endpoint": endpoints.revoke,
        "token_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": list(CAPABILITIES),
    }


def oauth_uris(endpoints: Endpoints) -> dict[str, str]:
    """The `oauth-uris` extension's URLs for the CapabilityStatement (legacy clients)."""
    return {"authorize": endpoints.authorize, "token": endpoints.token,
            "revoke": endpoints.revoke, "introspect": endpoints.introspect}


def openid_configuration(endpoints: Endpoints) -> dict[str, Any]:
    """`<issuer>/.well-known/openid-configuration`: where apps find the ID tokens' keys."""
    return {
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.jwks,
        "authorization_endpoint": endpoints.authorize,
        "token_endpoint": endpoints.token,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "fhirUser"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
                             "fhirUser"],
        "code_challenge_methods_supported": ["S256"],
    }
