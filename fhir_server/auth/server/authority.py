"""authlib's framework-agnostic `AuthorizationServer`, configured for SMART.

SMART App Launch (authorization code with PKCE, refresh) lives in `grants.py`; this module
holds the server itself and backend services:

- `client_credentials` (authlib's `ClientCredentialsGrant`) with `client_secret_basic` or
  `private_key_jwt` (authlib's `JWTBearerClientAssertion`, RFC 7523): RS384 or ES384 only,
  `aud` the token endpoint, `exp` at most 5 minutes ahead, a `jti` used once.
- Requested scopes must be among the client's registered scopes (`invalid_scope`); no scope
  requested means all of them. Access tokens are our RFC 9068 JWTs (`issue_access_token`),
  valid for `ACCESS_TOKEN_LIFETIME`, carrying the client's role.
- Introspection (RFC 7662): a client sees its own tokens; any other token is `active: false`.
  Revocation (RFC 7009): a client revokes its own access and refresh tokens; the `jti` is
  kept until expiry.
- Client authentication failures are throttled per claimed client id (`FailureThrottle`):
  while a client must wait, every attempt is 429 `invalid_client` with `Retry-After`.
- Codes, seen assertion `jti`s and failure counts live in the state file shared by the
  worker processes (`state.py`), so none of them depends on which process a request reaches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jws
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet as JoseKeySet

from fhir_server.auth.issuing import issue_access_token
from fhir_server.auth.keys import KeySet
from fhir_server.auth.server.clients import ClientRecord, ClientRegistry
from fhir_server.auth.server.grants import (
    CodeStore,
    S256Only,
    SmartAuthorizationCodeGrant,
    SmartLaunch,
    SmartRefreshTokenGrant,
    user_token_response,
)
from fhir_server.auth.server.launch import Grantee, LaunchIds
from fhir_server.auth.server.refresh import RefreshGrant, RefreshTokens
from fhir_server.auth.server.revocations import FailureThrottle, RevocationList, SeenAssertions
from fhir_server.auth.server.state import AuthState
from fhir_server.auth.server.users import UserRegistry
from fhir_server.auth.tokens import Claims, InvalidToken, StaticJwks, TokenValidator

ACCESS_TOKEN_LIFETIME = timedelta(seconds=300)
ASSERTION_MAX_LIFETIME_S = 300
ASSERTION_ALGORITHMS = ("RS384", "ES384")
AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The embedded server's URLs; `issuer` is the `iss` of its tokens."""

    issuer: str

    @property
    def authorize(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def introspect(self) -> str:
        return f"{self.issuer}/introspect"

    @property
    def revoke(self) -> str:
        return f"{self.issuer}/revoke"


class TooManyFailures(InvalidClientError):
    """`invalid_client` with 429 and `Retry-After`: this client id failed too often lately."""

    status_code = 429

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(description="Too many failed client authentications; retry later")
        self.retry_after_s = retry_after_s

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(max(1, round(self.retry_after_s))))]


class PrivateKeyJwt(JWTBearerClientAssertion):
    """RFC 7523 client assertions, pinned to SMART's algorithms and a 5-minute lifetime."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_endpoint: str, seen: SeenAssertions,
                 clock: Callable[[], float]) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._token_endpoint = token_endpoint
        self._seen = seen
        self._clock = clock

    def get_audiences(self) -> list[str]:
        return [self._token_endpoint]

    def resolve_client_public_key(self, client: ClientRecord) -> JoseKeySet:
        return JoseKeySet.import_key_set(dict(client.jwks or {"keys": []}))

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jose_jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except (JoseError, ValueError) as error:
            raise InvalidClientError(description="The client assertion cannot be verified") \
                from error
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp - self._clock() > ASSERTION_MAX_LIFETIME_S:
            raise InvalidClientError(description="The client assertion lives over 5 minutes")
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: str) -> bool:
        return self._seen.first_use(f"{claims['sub']}:{jti}", float(claims["exp"]))


class BackendServicesGrant(ClientCredentialsGrant):
    """`client_credentials`, authenticated by secret or assertion, scopes ⊆ the registration."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        requested = (self.request.payload.scope or "").split()
        client: ClientRecord = self.request.client
        if not set(requested) <= set(client.scopes):
            raise InvalidScopeError(description="A requested scope is not registered for "
                                                "this client")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """One of our access tokens, verified, as authlib's `TokenMixin` sees it."""

    claims: Claims
    revocations: RevocationList
    clock: Callable[[], float]

    def check_client(self, client: ClientRecord) -> bool:
        return self.claims.client_id == client.client_id

    def get_scope(self) -> str:
        return " ".join(self.claims.scopes)

    def get_expires_in(self) -> int:
        return max(0, int(self.claims.expires_at.timestamp() - self.clock()))

    def is_expired(self) -> bool:
        return self.claims.expires_at.timestamp() <= self.clock()

    def is_revoked(self) -> bool:
        return self.claims.jti is None or self.revocations.is_revoked(self.claims.jti)


class _TokenLookup:
    """Shared by introspection and revocation: a token string → our verified token or None."""

    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)
    server: EmbeddedAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return self.server.verified_token(token_string)


class Introspection(_TokenLookup, IntrospectionEndpoint):
    def check_permission(self, token: IssuedToken, client: ClientRecord,
                         request: OAuth2Request) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        claims = token.claims
        fields = {"active": True, "scope": token.get_scope(), "client_id": claims.client_id,
                  "exp": claims.raw.get("exp"), "iat": claims.raw.get("iat"),
                  "sub": claims.subject, "fhirUser": claims.fhir_user,
                  "patient": claims.patient, "token_type": "Bearer",
                  "iss": claims.raw.get("iss"), "aud": claims.raw.get("aud")}
        return {name: value for name, value in fields.items() if value is not None}


class Revocation(_TokenLookup, RevocationEndpoint):
    """Access and refresh tokens; public apps revoke theirs by `client_id` alone (RFC 7009)."""

    CLIENT_AUTH_METHODS = [*AUTH_METHODS, "none"]
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def query_token(self, token_string: str,
                    token_type_hint: str | None) -> IssuedToken | RefreshGrant | None:
        return (self.server.verified_token(token_string)
                or self.server.refresh_tokens.verified(token_string))

    def revoke_token(self, token: IssuedToken | RefreshGrant, request: OAuth2Request) -> None:
        if isinstance(token, RefreshGrant):
            self.server.revocations.revoke(token.jti, token.expires_at)
        elif token.claims.jti is not None:
            self.server.revocations.revoke(token.claims.jti, token.claims.expires_at.timestamp())


class EmbeddedAuthorizationServer(AuthorizationServer):
    """The framework-agnostic server; `web.py` converts Starlette requests and responses."""

    def __init__(self, *, keys: KeySet, clients: ClientRegistry, revocations: RevocationList,
                 state: AuthState, endpoints: Endpoints, audience: str,
                 users: UserRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.keys = keys
        self.clients = clients
        self.users = users
        self.revocations = revocations
        self.endpoints = endpoints
        self.audience = audience
        self.clock = clock
        self.state = state
        self.throttle = FailureThrottle(state, "client", clock=clock)
        self._validator = TokenValidator(issuer=endpoints.issuer, audience=audience,
                                         jwks=StaticJwks(keys.jwks()), clock=clock)
        self.register_client_auth_method(
            "private_key_jwt", PrivateKeyJwt(endpoints.token, SeenAssertions(state), clock))
        self.register_token_generator("default", self._generate_token)
        self.codes = CodeStore(state, users)
        self.refresh_tokens = RefreshTokens(keys, issuer=endpoints.issuer,
                                            revocations=revocations, clock=clock)
        self.launch_ids = LaunchIds(keys, issuer=endpoints.issuer, clock=clock)
        self.register_grant(BackendServicesGrant)
        self.register_grant(SmartAuthorizationCodeGrant,
                            [S256Only(), SmartLaunch(self.launch_ids, audience)])
        self.register_grant(SmartRefreshTokenGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> ClientRecord | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to store: tokens are self-contained JWTs; revocation keeps their `jti`."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No framework signals here."""

    def authenticate_client(self, request: OAuth2Request, methods: list[str],
                            endpoint: str = "token") -> ClientRecord:
        """authlib's client authentication, throttled per claimed client id."""
        claimed = _claimed_client_id(request)
        wait = self.throttle.retry_after(claimed)
        if wait > 0:
            raise TooManyFailures(wait)
        try:
            client: ClientRecord = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            self.throttle.failed(claimed)
            raise
        self.throttle.succeeded(claimed)
        return client

    def verified_token(self, token: str) -> IssuedToken | None:
        """One of our tokens with a good signature and claims (maybe expired or revoked)."""
        try:
            claims = self._validator.validate(token)
        except InvalidToken:
            return None
        return IssuedToken(claims=claims, revocations=self.revocations, clock=self.clock)

    def _generate_token(self, *, grant_type: str, client: ClientRecord, user: Any = None,
                        scope: str | None = None, expires_in: int | None = None,
                        include_refresh_token: bool = False) -> dict[str, Any]:
        if isinstance(user, Grantee):
            return user_token_response(self, client=client, grantee=user,
                                       scopes=(scope or "").split(),
                                       include_refresh_token=include_refresh_token)
        granted = scope.split() if scope else list(client.scopes)
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        token = issue_access_token(
            self.keys, issuer=self.endpoints.issuer, audience=self.audience,
            subject=client.client_id, scopes=granted, lifetime=ACCESS_TOKEN_LIFETIME, now=now,
            role=client.role, client_id=client.client_id)
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
                "scope": " ".join(granted)}


def _claimed_client_id(request: OAuth2Request) -> str:
    """Who the request says it is, before any check: Basic user, assertion `sub`, or form."""
    basic_id, _ = extract_basic_authorization(request.headers)
    if basic_id:
        return str(basic_id)
    assertion = request.form.get("client_assertion")
    if assertion:
        try:
            unverified = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
        except (JoseError, ValueError, UnicodeError):
            return "<malformed assertion>"
        subject = unverified.get("sub") if isinstance(unverified, dict) else None
        return subject if isinstance(subject, str) else "<malformed assertion>"
    return str(request.form.get("client_id") or "<anonymous>")
