"""A verified token is remembered briefly, but never past its expiry or its revocation."""

from __future__ import annotations

import base64
import json

from fhir_server.auth.keys import KeySet
from fhir_server.auth.tokens import (
    VERIFIED_TTL_S,
    StaticJwks,
    TokenValidator,
    VerificationKey,
)
from tests.unit.auth.test_tokens import BASE_URL, ISSUER, LIFETIME, NOW, make_token, refusal


class RotatingJwks:
    """An issuer's key set that the test can replace, as a real issuer rotates keys."""

    def __init__(self, keys: KeySet) -> None:
        self.current = StaticJwks(keys.jwks())

    def key_for(self, kid: str) -> VerificationKey | None:
        return self.current.key_for(kid)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_a_remembered_token_still_expires(keys: KeySet) -> None:
    clock = Clock(NOW)
    validator = TokenValidator(issuer=ISSUER, audience=BASE_URL,
                               jwks=StaticJwks(keys.jwks()), clock=clock)
    token = make_token(keys)
    validator.validate(token)

    clock.at = NOW + LIFETIME.total_seconds() + 31  # past exp plus the leeway

    assert refusal(validator, token) == "expired"


def test_a_remembered_token_can_be_revoked_at_once(keys: KeySet) -> None:
    revoked: set[str] = set()
    validator = TokenValidator(issuer=ISSUER, audience=BASE_URL, jwks=StaticJwks(keys.jwks()),
                               is_revoked=revoked.__contains__, clock=Clock(NOW))
    token = make_token(keys)
    claims = validator.validate(token)
    assert claims.jti is not None

    revoked.add(claims.jti)

    assert refusal(validator, token) == "revoked"


def test_a_remembered_token_is_verified_again_after_a_while(
        keys: KeySet, other_keys: KeySet) -> None:
    clock = Clock(NOW)
    jwks = RotatingJwks(keys)
    validator = TokenValidator(issuer=ISSUER, audience=BASE_URL, jwks=jwks, clock=clock)
    token = make_token(keys)
    validator.validate(token)

    # The issuer withdraws the key: after the remembering window the token is checked anew.
    jwks.current = StaticJwks(other_keys.jwks())
    clock.at = NOW + VERIFIED_TTL_S + 1

    assert refusal(validator, token) == "unknown key"


def test_a_token_sharing_a_remembered_tokens_signature_is_verified_not_remembered(
        keys: KeySet) -> None:
    validator = TokenValidator(issuer=ISSUER, audience=BASE_URL,
                               jwks=StaticJwks(keys.jwks()), clock=Clock(NOW))
    token = make_token(keys)
    validator.validate(token)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "system/*.cruds"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    forged = f"{header}.{forged_payload.decode()}.{signature}"  # same signature, same key

    assert validator.remembered(forged) is None
    assert refusal(validator, forged) == "bad signature"
    assert validator.remembered(token) is not None  # the real one is still remembered
