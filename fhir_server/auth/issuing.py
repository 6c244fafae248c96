"""Signing access tokens: the embedded authorization server and `fhir-scheduler token` use this.

Tokens follow RFC 9068 (`typ: at+jwt`, `iss`, `aud`, `sub`, `exp`, `iat`, `jti`, `client_id`,
space-separated `scope`) plus the SMART context the resource server needs (`fhirUser`,
`patient`) and our role claim, so `TokenValidator` reads exactly what this writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt

from fhir_server.auth.keys import KeySet
from fhir_server.auth.roles import ROLE_CLAIM


def issue_access_token(keys: KeySet, *, issuer: str, audience: str, subject: str,
                       scopes: str | Iterable[str], lifetime: timedelta, now: datetime,
                       fhir_user: str | None = None, patient: str | None = None,
                       role: str | None = None, client_id: str | None = None,
                       alg: str = "RS384") -> str:
    """A signed access token for `audience` (the FHIR base URL), valid from `now` for `lifetime`.

    `patient` is stored as SMART's bare id: `Patient/123` and `123` both become `123`.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if lifetime <= timedelta(0):
        raise ValueError("lifetime must be positive")
    key = keys.signing_key(alg)
    issued_at = int(now.timestamp())
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued_at,
        "exp": issued_at + int(lifetime.total_seconds()),
        "jti": str(uuid4()),
        "scope": _scope_claim(scopes),
    }
    optional = {
        "fhirUser": fhir_user,
        "patient": patient.removeprefix("Patient/") if patient else None,
        ROLE_CLAIM: role,
        "client_id": client_id,
    }
    payload.update({name: value for name, value in optional.items() if value is not None})
    return jwt.encode(payload, key.private_key, algorithm=key.alg,
                      headers={"kid": key.kid, "typ": "at+jwt"})


def issue_id_token(keys: KeySet, *, issuer: str, client_id: str, subject: str,
                   fhir_user: str | None, now: datetime, lifetime: timedelta,
                   nonce: str | None = None, auth_time: int | None = None) -> str:
    """An OpenID Connect ID token (RS256, as SMART requires) for the app `client_id`."""
    key = keys.signing_key("RS256")
    issued_at = int(now.timestamp())
    payload: dict[str, Any] = {
        "iss": issuer, "sub": subject, "aud": client_id, "iat": issued_at,
        "exp": issued_at + int(lifetime.total_seconds()),
        "auth_time": auth_time if auth_time is not None else issued_at,
    }
    optional = {"fhirUser": fhir_user, "nonce": nonce}
    payload.update({name: value for name, value in optional.items() if value is not None})
    return jwt.encode(payload, key.private_key, algorithm="RS256",
                      headers={"kid": key.kid, "typ": "JWT"})


def sign_server_jwt(keys: KeySet, payload: dict[str, Any], *, typ: str) -> str:
    """A JWT only this server reads back (launch ids, refresh tokens), signed RS384."""
    key = keys.signing_key("RS384")
    return jwt.encode(payload, key.private_key, algorithm=key.alg,
                      headers={"kid": key.kid, "typ": typ})


def _scope_claim(scopes: str | Iterable[str]) -> str:
    """One space-separated string; a bare string is split, not iterated character by character."""
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    for scope in items:
        if not scope or any(character.isspace() for character in scope):
            raise ValueError(f"invalid scope {scope!r}")
    return " ".join(items)
