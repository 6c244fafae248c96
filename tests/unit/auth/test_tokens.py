"""Access-token validation, with the negatives of the Inferno SMART test kit and a few more."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_server.auth.issuing import issue_access_token
from fhir_server.auth.keys import KeySet
from fhir_server.auth.tokens import (
    InvalidToken,
    KeySetUnavailable,
    RemoteJwks,
    StaticJwks,
    TokenValidator,
)
from fhir_server.fhir.errors import FhirError

ISSUER = "http://127.0.0.1:8080/auth"
BASE_URL = "http://127.0.0.1:8080/fhir"
NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
LIFETIME = timedelta(minutes=5)


def make_validator(keys: KeySet, *, at: float = NOW,
                   is_revoked: Callable[[str], bool] | None = None) -> TokenValidator:
    return TokenValidator(issuer=ISSUER, audience=BASE_URL, jwks=StaticJwks(keys.jwks()),
                          is_revoked=is_revoked, clock=lambda: at)


def make_token(keys: KeySet, *, alg: str = "RS384", **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "issuer": ISSUER, "audience": BASE_URL, "subject": "user-1",
        "scopes": "launch/patient patient/Appointment.rs openid fhirUser",
        "lifetime": LIFETIME, "now": datetime.fromtimestamp(NOW, UTC),
        "fhir_user": "Patient/p1", "patient": "p1", "role": "patient", "client_id": "app-1",
    }
    return issue_access_token(keys, alg=alg, **{**fields, **overrides})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value).encode("utf-8"))


def payload_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def sign(keys: KeySet, claims: Mapping[str, Any], *, alg: str = "RS384") -> str:
    key = keys.signing_key(alg)
    return jwt.encode(dict(claims), key.private_key, algorithm=alg, headers={"kid": key.kid})


def refusal(validator: TokenValidator, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    return caught.value.reason


@pytest.mark.parametrize("alg", ["RS384", "ES384", "RS256"])
def test_a_valid_token_passes_with_its_claims(keys: KeySet, alg: str) -> None:
    token = make_token(keys, alg=alg)

    claims = make_validator(keys).validate(token)

    assert claims.subject == "user-1"
    assert claims.scopes == ("launch/patient", "patient/Appointment.rs", "openid", "fhirUser")
    assert (claims.fhir_user, claims.patient, claims.role, claims.client_id) == (
        "Patient/p1", "p1", "patient", "app-1")
    assert claims.jti == payload_of(token)["jti"]
    assert claims.expires_at == datetime.fromtimestamp(NOW, UTC) + LIFETIME
    assert claims.raw["iss"] == ISSUER
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"


def test_every_token_gets_its_own_jti(keys: KeySet) -> None:
    assert payload_of(make_token(keys))["jti"] != payload_of(make_token(keys))["jti"]


def test_a_token_without_exp_is_refused(keys: KeySet) -> None:
    claims = payload_of(make_token(keys))
    del claims["exp"]

    assert refusal(make_validator(keys), sign(keys, claims)) == "missing exp"


def test_an_expired_token_is_refused_after_the_leeway(keys: KeySet) -> None:
    token = make_token(keys)
    expiry = NOW + LIFETIME.total_seconds()

    assert make_validator(keys, at=expiry + 29).validate(token).subject == "user-1"
    assert refusal(make_validator(keys, at=expiry + 30), token) == "expired"


def test_a_token_from_the_future_is_refused(keys: KeySet) -> None:
    claims = payload_of(make_token(keys))
    not_yet = sign(keys, {**claims, "nbf": NOW + 120})
    issued_later = sign(keys, {**claims, "iat": NOW + 120})

    assert refusal(make_validator(keys), not_yet) == "not yet valid"
    assert refusal(make_validator(keys), issued_later) == "issued in the future"
    assert make_validator(keys, at=NOW + 120).validate(not_yet).subject == "user-1"


@pytest.mark.parametrize("aud", ["http://127.0.0.1:8080/other", "http://evil.example/fhir",
                                 ["http://evil.example/fhir"]])
def test_a_token_for_another_audience_is_refused(keys: KeySet, aud: Any) -> None:
    claims = payload_of(make_token(keys))

    assert refusal(make_validator(keys), sign(keys, {**claims, "aud": aud})) == "wrong audience"


@pytest.mark.parametrize("aud", [f"{BASE_URL}/", [BASE_URL, "https://other.example"]])
def test_the_base_url_with_a_trailing_slash_or_in_a_list_is_our_audience(
        keys: KeySet, aud: Any) -> None:
    claims = payload_of(make_token(keys))

    assert make_validator(keys).validate(sign(keys, {**claims, "aud": aud})).subject == "user-1"


def test_a_token_from_another_issuer_is_refused(keys: KeySet) -> None:
    claims = payload_of(make_token(keys))
    no_iss = {name: value for name, value in claims.items() if name != "iss"}

    wrong = sign(keys, {**claims, "iss": "http://127.0.0.1:8080/aut"})
    assert refusal(make_validator(keys), wrong) == "wrong issuer"
    assert refusal(make_validator(keys), sign(keys, no_iss)) == "missing iss"


def test_a_tampered_payload_is_refused(keys: KeySet) -> None:
    header, _, signature = make_token(keys).split(".")
    escalated = {**payload_of(make_token(keys)), "scope": "system/*.cruds",
                 "fhir_scheduler_role": "administrator"}

    token = f"{header}.{b64url_json(escalated)}.{signature}"

    assert refusal(make_validator(keys), token) == "bad signature"


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_tampered_signature_is_refused(keys: KeySet, alg: str) -> None:
    header, payload, signature = make_token(keys, alg=alg).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01

    token = f"{header}.{payload}.{b64url(bytes(raw))}"

    assert refusal(make_validator(keys), token) == "bad signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_token_is_refused(keys: KeySet, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": keys.signing_key("RS384").kid}
    claims = payload_of(make_token(keys))

    token = f"{b64url_json(header)}.{b64url_json(claims)}."

    assert refusal(make_validator(keys), token) == "algorithm not allowed"


def test_hs256_signed_with_the_public_key_as_secret_is_refused(keys: KeySet) -> None:
    key = keys.signing_key("RS384")
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (f"{b64url_json({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}."
                     f"{b64url_json(payload_of(make_token(keys)))}")
    mac = hmac.new(public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()

    token = f"{signing_input}.{b64url(mac)}"

    assert refusal(make_validator(keys), token) == "algorithm not allowed"


def test_a_token_signed_by_another_key_under_our_kid_is_refused(
        keys: KeySet, other_keys: KeySet) -> None:
    ours = keys.signing_key("RS384")
    claims = payload_of(make_token(keys))

    forged = jwt.encode(claims, other_keys.signing_key("RS384").private_key, algorithm="RS384",
                        headers={"kid": ours.kid})

    assert refusal(make_validator(keys), forged) == "bad signature"


def test_a_key_verifies_only_the_algorithm_it_is_bound_to(keys: KeySet) -> None:
    claims = payload_of(make_token(keys))
    rs256_under_rs384_kid = jwt.encode(claims, keys.signing_key("RS384").private_key,
                                       algorithm="RS256",
                                       headers={"kid": keys.signing_key("RS384").kid})
    rsa_under_ec_kid = jwt.encode(claims, keys.signing_key("RS384").private_key,
                                  algorithm="RS384",
                                  headers={"kid": keys.signing_key("ES384").kid})

    assert refusal(make_validator(keys), rs256_under_rs384_kid) == "algorithm not allowed"
    assert refusal(make_validator(keys), rsa_under_ec_kid) == "algorithm not allowed"


def test_an_ec_key_without_alg_is_bound_by_its_curve() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(p256.public_key(), as_dict=True), "kid": "p256"}
    validator = TokenValidator(issuer=ISSUER, audience=BASE_URL,
                               jwks=StaticJwks({"keys": [jwk]}), clock=lambda: NOW)
    claims = {"iss": ISSUER, "aud": BASE_URL, "exp": NOW + 60}

    es256 = jwt.encode(claims, p256, algorithm="ES256", headers={"kid": "p256"})
    es384 = jwt.encode(claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384",
                       headers={"kid": "p256"})

    assert validator.validate(es256).scopes == ()
    assert refusal(validator, es384) == "algorithm not allowed"


def test_a_token_without_kid_or_with_an_unknown_kid_is_refused(keys: KeySet) -> None:
    claims = payload_of(make_token(keys))
    private_key = keys.signing_key("RS384").private_key

    no_kid = jwt.encode(claims, private_key, algorithm="RS384")
    unknown = jwt.encode(claims, private_key, algorithm="RS384", headers={"kid": "nope"})

    assert refusal(make_validator(keys), no_kid) == "missing key id"
    assert refusal(make_validator(keys), unknown) == "unknown key"


def test_symmetric_weak_and_encryption_keys_in_a_jwks_are_ignored() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    strong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = StaticJwks({"keys": [
        {"kty": "oct", "k": b64url(b"secret"), "kid": "oct", "alg": "HS256"},
        {**RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True), "kid": "weak"},
        {**RSAAlgorithm.to_jwk(strong.public_key(), as_dict=True), "kid": "enc", "use": "enc"},
        {**RSAAlgorithm.to_jwk(strong, as_dict=True), "kid": "private-parts"},
    ]})

    assert [jwks.key_for(kid) for kid in ("oct", "weak", "enc")] == [None, None, None]
    published = jwks.key_for("private-parts")
    assert published is not None and isinstance(published.public_key, rsa.RSAPublicKey)


def test_a_revoked_token_is_refused(keys: KeySet) -> None:
    token = make_token(keys)
    revoked = {payload_of(token)["jti"]}

    assert refusal(make_validator(keys, is_revoked=revoked.__contains__), token) == "revoked"
    fresh = make_token(keys)
    assert make_validator(keys, is_revoked=revoked.__contains__).validate(fresh).jti


def test_with_revocation_on_a_token_without_jti_is_refused(keys: KeySet) -> None:
    claims = payload_of(make_token(keys))
    del claims["jti"]
    token = sign(keys, claims)

    assert refusal(make_validator(keys, is_revoked=lambda jti: False), token) == "missing jti"
    assert make_validator(keys).validate(token).jti is None


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 20_000,
                                   f"{b64url_json({'alg': 'RS384', 'kid': 'k'})}.!!.x"])
def test_garbage_is_malformed(keys: KeySet, token: str) -> None:
    assert refusal(make_validator(keys), token) == "malformed"


@pytest.mark.parametrize("claim", [{"scope": 7}, {"fhirUser": ["Patient/p1"]},
                                   {"fhir_scheduler_role": {"name": "x"}}, {"exp": "soon"}])
def test_claims_of_the_wrong_type_are_refused(keys: KeySet, claim: dict[str, Any]) -> None:
    token = sign(keys, {**payload_of(make_token(keys)), **claim})

    assert refusal(make_validator(keys), token) == "malformed claims"


def test_the_refusal_is_a_login_outcome_that_does_not_echo_the_token(keys: KeySet) -> None:
    token = make_token(keys)

    with pytest.raises(InvalidToken) as caught:
        make_validator(keys, at=NOW + 3600).validate(token)

    assert isinstance(caught.value, FhirError)
    assert caught.value.issues[0].code == "login"
    assert str(caught.value) == "Invalid access token: expired"


class FakeIdP:
    """An external issuer whose discovery document and JWKS are local dicts."""

    def __init__(self, issuer: str, jwks: dict[str, Any]) -> None:
        self.issuer = issuer
        self.jwks = jwks
        self.requests: list[str] = []
        self.down = False

    def fetch(self, url: str) -> dict[str, Any]:
        self.requests.append(url)
        if self.down:
            raise ConnectionError(url)
        if url == f"{self.issuer}/.well-known/openid-configuration":
            return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/protocol/certs"}
        if url == f"{self.issuer}/protocol/certs":
            return self.jwks
        raise LookupError(url)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def remote_validator(idp: FakeIdP, clock: FakeClock) -> TokenValidator:
    return TokenValidator(issuer=idp.issuer, audience=BASE_URL,
                          jwks=RemoteJwks(idp.issuer, idp.fetch, clock=clock),
                          clock=lambda: NOW)


def test_remote_keys_are_discovered_once_and_cached(keys: KeySet) -> None:
    idp, clock = FakeIdP(ISSUER, keys.jwks()), FakeClock()
    validator = remote_validator(idp, clock)

    for _ in range(3):
        validator.validate(make_token(keys))

    assert idp.requests == [f"{ISSUER}/.well-known/openid-configuration",
                            f"{ISSUER}/protocol/certs"]


def test_an_unknown_kid_refetches_once_then_fails_and_is_rate_limited(
        keys: KeySet, other_keys: KeySet) -> None:
    idp, clock = FakeIdP(ISSUER, keys.jwks()), FakeClock()
    validator = remote_validator(idp, clock)
    validator.validate(make_token(keys))
    idp.requests.clear()

    assert refusal(validator, make_token(other_keys)) == "unknown key"
    assert idp.requests == [f"{ISSUER}/protocol/certs"]
    clock.now += 29
    assert refusal(validator, make_token(other_keys)) == "unknown key"
    assert len(idp.requests) == 1
    clock.now += 1
    assert refusal(validator, make_token(other_keys)) == "unknown key"
    assert len(idp.requests) == 2


def test_a_rotated_in_key_is_picked_up_on_its_first_token(
        keys: KeySet, other_keys: KeySet) -> None:
    idp, clock = FakeIdP(ISSUER, keys.jwks()), FakeClock()
    validator = remote_validator(idp, clock)
    validator.validate(make_token(keys))

    idp.jwks = {"keys": keys.jwks()["keys"] + other_keys.jwks()["keys"]}

    assert validator.validate(make_token(other_keys)).subject == "user-1"


def test_a_key_the_idp_withdrew_stops_working_once_the_cache_is_stale(keys: KeySet,
                                                                      other_keys: KeySet) -> None:
    idp, clock = FakeIdP(ISSUER, keys.jwks()), FakeClock()
    validator = remote_validator(idp, clock)
    validator.validate(make_token(keys))

    idp.jwks = other_keys.jwks()
    clock.now += 300

    assert refusal(validator, make_token(keys)) == "unknown key"


def test_an_unreachable_idp_is_unavailable_not_an_invalid_token(keys: KeySet) -> None:
    idp, clock = FakeIdP(ISSUER, keys.jwks()), FakeClock()
    idp.down = True
    validator = remote_validator(idp, clock)

    with pytest.raises(KeySetUnavailable):
        validator.validate(make_token(keys))
    with pytest.raises(KeySetUnavailable):  # within the rate limit: no new request, same answer
        validator.validate(make_token(keys))
    assert len(idp.requests) == 1


def test_cached_keys_survive_an_idp_outage(keys: KeySet) -> None:
    idp, clock = FakeIdP(ISSUER, keys.jwks()), FakeClock()
    validator = remote_validator(idp, clock)
    validator.validate(make_token(keys))

    idp.down = True
    clock.now += 600

    assert validator.validate(make_token(keys)).subject == "user-1"


def test_a_discovery_document_naming_another_issuer_is_not_trusted(keys: KeySet) -> None:
    idp = FakeIdP(ISSUER, keys.jwks())
    jwks = RemoteJwks(f"{ISSUER}/", idp.fetch, clock=FakeClock())

    with pytest.raises(KeySetUnavailable):
        jwks.key_for(keys.signing_key("RS384").kid)
    assert idp.requests == [f"{ISSUER}/.well-known/openid-configuration"]


def test_issuing_refuses_a_naive_clock_and_splits_scope_strings(keys: KeySet) -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_token(keys, now=datetime(2025, 6, 15, 12, 0))

    token = make_token(keys, scopes=["patient/Slot.rs", "openid"], patient="Patient/p9")

    assert payload_of(token)["scope"] == "patient/Slot.rs openid"
    assert payload_of(token)["patient"] == "p9"
