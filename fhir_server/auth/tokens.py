"""Access-token validation for the resource server: PyJWT, asymmetric algorithms pinned.

The algorithm is checked three times before PyJWT runs the signature: it must be one of
`ALLOWED_ALGORITHMS` (so `none` and every HMAC are out, whatever key a caller holds), the
token must name its key by `kid`, and the key found must be bound to that algorithm (an RSA
key never verifies an ES384 token, a P-256 key never an ES384 one). Time claims are checked
against an injected clock so tests and replays are deterministic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_server.auth.keys import RSA_KEY_SIZE, PublicKey
from fhir_server.auth.roles import ROLE_CLAIM
from fhir_server.fhir.errors import FhirError

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "ES256", "ES384"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384"})
EC_ALGORITHM_BY_CURVE: Mapping[str, str] = {"P-256": "ES256", "P-384": "ES384"}
DEFAULT_LEEWAY_S = 30.0
REFETCH_INTERVAL_S = 30.0
JWKS_MAX_AGE_S = 300.0
MAX_TOKEN_LENGTH = 16_384

RefusalReason = Literal[
    "malformed", "algorithm not allowed", "missing key id", "unknown key", "bad signature",
    "missing exp", "missing iss", "missing aud", "wrong issuer", "wrong audience", "expired",
    "not yet valid", "issued in the future", "malformed claims", "missing jti", "revoked",
]
_MISSING: Mapping[str, RefusalReason] = {
    "exp": "missing exp", "iss": "missing iss", "aud": "missing aud",
}


class InvalidToken(FhirError):
    """The bearer token cannot be trusted (401); `reason` is short, stable and leaks nothing."""

    default_code = "login"

    def __init__(self, reason: RefusalReason) -> None:
        self.reason: RefusalReason = reason
        super().__init__(f"Invalid access token: {reason}")


class MissingToken(FhirError):
    """The request carries no bearer token at all (401, challenge without an error code)."""

    default_code = "login"


class KeySetUnavailable(FhirError):
    """The issuer's keys cannot be fetched, so no token can be judged (503, not 401)."""

    default_code = "transient"


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key from a JWKS and the algorithms it may verify."""

    kid: str
    algorithms: frozenset[str]
    public_key: PublicKey


class JwksSource(Protocol):
    """Where the validator finds the public key a token names by `kid`."""

    def key_for(self, kid: str) -> VerificationKey | None:
        """The key with this `kid`, or None when the issuer does not publish it."""
        ...


@dataclass(frozen=True, slots=True)
class Claims:
    """What a validated access token says about its bearer."""

    subject: str | None
    scopes: tuple[str, ...]
    fhir_user: str | None
    patient: str | None
    role: str | None
    client_id: str | None
    jti: str | None
    expires_at: datetime
    raw: Mapping[str, Any] = field(compare=False, hash=False, repr=False)


def parse_jwks(jwks: Mapping[str, Any]) -> dict[str, VerificationKey]:
    """The usable signature keys of a JWK Set by `kid`; others (enc, oct, weak) are skipped."""
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("a JWK Set needs a 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for entry in entries:
        key = _parse_jwk(entry) if isinstance(entry, Mapping) else None
        if key is None:
            continue
        if key.kid in keys:
            logger.warning("jwks_duplicate_kid kid=%s: keeping the first key", key.kid)
            continue
        keys[key.kid] = key
    return keys


def _parse_jwk(jwk: Mapping[str, Any]) -> VerificationKey | None:
    """One JWK as a verification key, or None if it cannot verify our algorithms safely."""
    kid, kty, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
        return None
    public_only = {name: value for name, value in jwk.items()
                   if name not in {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}}
    try:
        if kty == "RSA":
            public_key: Any = RSAAlgorithm.from_jwk(dict(public_only))
            usable = RSA_ALGORITHMS
            if public_key.key_size < RSA_KEY_SIZE:
                return None
        elif kty == "EC":
            public_key = ECAlgorithm.from_jwk(dict(public_only))
            curve_alg = EC_ALGORITHM_BY_CURVE.get(str(jwk.get("crv")))
            usable = frozenset({curve_alg}) if curve_alg else frozenset()
        else:
            return None
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        logger.warning("jwks_unusable_key kid=%s", kid)
        return None
    algorithms = usable & {alg} if alg is not None else usable
    if not algorithms or not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return None
    return VerificationKey(kid=kid, algorithms=frozenset(algorithms), public_key=public_key)


class StaticJwks:
    """A key set known up front: the embedded authorization server's own `KeySet.jwks()`."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks)

    def key_for(self, kid: str) -> VerificationKey | None:
        """The published key with this `kid`."""
        return self._keys.get(kid)


class RemoteJwks:
    """An external IdP's keys: found by OIDC discovery, cached, re-fetched on an unknown `kid`.

    Re-fetches (on an unknown `kid`, or when the cache is older than `max_age_s` so a key the
    IdP withdrew stops working) happen at most once per `min_refetch_interval_s`, so a flood of
    forged `kid`s cannot turn into a flood of requests to the IdP. `fetch` does the I/O.
    """

    def __init__(self, issuer: str, fetch: Callable[[str], Mapping[str, Any]], *,
                 min_refetch_interval_s: float = REFETCH_INTERVAL_S,
                 max_age_s: float = JWKS_MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._issuer = issuer
        self._fetch = fetch
        self._min_interval = min_refetch_interval_s
        self._max_age = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None

    def key_for(self, kid: str) -> VerificationKey | None:
        """The key with this `kid`, fetching the key set first if it is missing or stale."""
        with self._lock:
            key = self._keys.get(kid)
            if (key is None or self._is_stale()) and self._may_refetch():
                self._refetch()
                key = self._keys.get(kid)
            if self._fetched_at is None:
                raise KeySetUnavailable("The token issuer's signing keys cannot be fetched")
            return key

    def _is_stale(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at >= self._max_age

    def _may_refetch(self) -> bool:
        return (self._last_attempt is None
                or self._clock() - self._last_attempt >= self._min_interval)

    def _refetch(self) -> None:
        """Replace the cached keys; on failure keep the old ones and log (the fetcher may fail)."""
        first_load = self._fetched_at is None
        self._last_attempt = self._clock()
        try:
            if self._jwks_uri is None:
                self._jwks_uri = self._discover_jwks_uri()
            keys = parse_jwks(self._fetch(self._jwks_uri))
        except Exception as error:  # noqa: BLE001 - the transport's errors are not ours to list
            logger.warning("jwks_fetch_failed issuer=%s error=%s", self._issuer,
                           type(error).__name__)
            return
        self._keys = keys
        self._fetched_at = self._last_attempt
        if first_load:
            self._last_attempt = None  # loading is not re-fetching: a new kid may still trigger one

    def _discover_jwks_uri(self) -> str:
        """`jwks_uri` from the issuer's discovery document, which must name the same issuer."""
        document = self._fetch(f"{self._issuer.rstrip('/')}/.well-known/openid-configuration")
        if not isinstance(document, Mapping) or document.get("issuer") != self._issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise ValueError("the discovery document has no jwks_uri")
        return jwks_uri


VERIFIED_TTL_S = 60.0
VERIFIED_CACHE_SIZE = 4096
# Remembered tokens are keyed by their signature's last characters: a dict hashes its whole
# key, and hashing a ~1 kB JWT on every request costs more than the rest of the lookup. A
# hit counts only for the very same token (`_Verified.token`).
TOKEN_KEY_CHARS = 32


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature and claims passed: trusted until `fresh_until`, when either
    the remembering window ends (verify again) or `exp` plus the leeway passes (expired)."""

    token: str
    claims: Claims
    fresh_until: float
    expires: float  # exp + leeway
    jti: str  # "" only when revocation is off (then a token needs no jti)


class TokenValidator:
    """Turns a bearer token into `Claims`, or refuses it with `InvalidToken`."""

    def __init__(self, *, issuer: str, audience: str, jwks: JwksSource,
                 is_revoked: Callable[[str], bool] | None = None,
                 leeway_s: float = DEFAULT_LEEWAY_S, role_claim: str = ROLE_CLAIM,
                 clock: Callable[[], float] = time.time) -> None:
        self._issuer = issuer
        # The FHIR base URL is configured without a trailing slash; clients may add one.
        base = audience.rstrip("/")
        self._audiences = [base, f"{base}/"]
        self._jwks = jwks
        self._is_revoked = is_revoked
        self._leeway = leeway_s
        self._role_claim = role_claim
        self._clock = clock
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    def validate(self, token: str) -> Claims:
        """The token's claims once its algorithm, key, signature, iss, aud, times and jti pass.

        A client sends the same token with every request, and an RS384 check plus claim
        parsing cost more than serving a read, so a verified token is remembered for up to
        `VERIFIED_TTL_S` (see `remembered`).
        """
        claims = self.remembered(token)
        if claims is not None:
            return claims
        claims, exp = self._verify(token)
        expires = exp + self._leeway
        self._verified[token[-TOKEN_KEY_CHARS:]] = _Verified(
            token, claims, min(self._clock() + VERIFIED_TTL_S, expires), expires,
            claims.jti or "")
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def remembered(self, token: str) -> Claims | None:
        """The claims of a token verified in the last `VERIFIED_TTL_S`, checked for expiry and
        revocation (a clock read and a set lookup, never I/O); None when it must be verified.

        `nbf` and `iat` passed when it was verified, so only `exp` can change the answer.
        """
        key = token[-TOKEN_KEY_CHARS:]
        found = self._verified.get(key)
        if found is None or found.token != token:
            return None
        now = self._clock()
        if now >= found.fresh_until:
            if now >= found.expires:
                del self._verified[key]
                raise InvalidToken("expired")
            return None
        if self._is_revoked is not None and self._is_revoked(found.jti):
            raise InvalidToken("revoked")
        return found.claims

    def _verify(self, token: str) -> tuple[Claims, float]:
        """The full check: header, key, signature, claims, times, revocation; and `exp`."""
        alg, kid = self._header(token)
        key = self._jwks.key_for(kid)
        if key is None:
            raise InvalidToken("unknown key")
        if alg not in key.algorithms:
            raise InvalidToken("algorithm not allowed")
        payload = self._verified_payload(token, key, alg)
        exp = self._check_times(payload)
        claims = self._claims(payload, exp)
        self._check_revocation(claims)
        return claims, exp

    def _check_revocation(self, claims: Claims) -> None:
        """Refuse a revoked token, and any token without a `jti` when revocation is on."""
        if self._is_revoked is not None:
            if claims.jti is None:
                raise InvalidToken("missing jti")  # a token that cannot be revoked
            if self._is_revoked(claims.jti):
                raise InvalidToken("revoked")

    def _header(self, token: str) -> tuple[str, str]:
        """The header's `alg` and `kid`, refusing anything outside the pinned algorithms."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing key id")
        return alg, kid

    def _verified_payload(self, token: str, key: VerificationKey, alg: str) -> dict[str, Any]:
        """PyJWT checks signature, then required claims, `iss` and `aud`; times are ours."""
        options: jwt.types.Options = {
            "require": ["exp", "iss", "aud"], "verify_exp": False, "verify_nbf": False,
            "verify_iat": False, "enforce_minimum_key_length": True,
        }
        try:
            return jwt.decode(token, key.public_key, algorithms=[alg], options=options,
                              audience=self._audiences, issuer=self._issuer)
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("algorithm not allowed") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(_MISSING.get(error.claim, "malformed claims")) from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.DecodeError:
            raise InvalidToken("malformed") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed claims") from None

    def _check_times(self, payload: Mapping[str, Any]) -> float:
        """Refuse expired, not-yet-valid and future-issued tokens; return `exp`."""
        now = self._clock()
        exp = _numeric_date(payload, "exp")
        if exp is None or now >= exp + self._leeway:
            raise InvalidToken("expired")
        nbf = _numeric_date(payload, "nbf")
        if nbf is not None and now + self._leeway < nbf:
            raise InvalidToken("not yet valid")
        iat = _numeric_date(payload, "iat")
        if iat is not None and now + self._leeway < iat:
            raise InvalidToken("issued in the future")
        return exp

    def _claims(self, payload: Mapping[str, Any], exp: float) -> Claims:
        """Typed claims; a claim of the wrong JSON type refuses the token rather than guess."""
        client_id = _optional_str(payload, "client_id") or _optional_str(payload, "azp")
        return Claims(
            subject=_optional_str(payload, "sub"),
            scopes=_scopes(payload.get("scope")),
            fhir_user=_optional_str(payload, "fhirUser"),
            patient=_optional_str(payload, "patient"),
            role=_optional_str(payload, self._role_claim),
            client_id=client_id,
            jti=_optional_str(payload, "jti"),
            expires_at=datetime.fromtimestamp(exp, tz=UTC),
            raw=MappingProxyType(dict(payload)),
        )


def _numeric_date(payload: Mapping[str, Any], name: str) -> float | None:
    """An RFC 7519 NumericDate claim, None when absent."""
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken("malformed claims")
    return float(value)


def _optional_str(payload: Mapping[str, Any], name: str) -> str | None:
    """A string claim, None when absent."""
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidToken("malformed claims")
    return value


def _scopes(value: Any) -> tuple[str, ...]:
    """The space-separated `scope` claim (RFC 9068), or a list of scopes as some IdPs send."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise InvalidToken("malformed claims")
