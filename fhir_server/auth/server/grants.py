"""SMART App Launch on authlib's grants: authorization code with PKCE S256, and refresh.

- `/authorize` (authlib's `AuthorizationCodeGrant`) needs a registered client, its exact
  redirect URI, `aud` = the FHIR base URL, scopes, and PKCE with `S256` (`plain` or no
  challenge is `invalid_request`). An EHR launch's `launch` id must be one we issued.
- Codes live 60 s in the state file shared by the worker processes (`state.py`), are bound to
  the client, the redirect URI, the challenge and the user's launch context, and are removed
  on first presentation, so a second use fails whichever process it reaches.
- Granted scopes = requested ∩ the client's registration ∩ the user's role, minus launch
  scopes whose context the flow did not produce.
- Tokens: an access token carrying the user's role, `fhirUser` and launch patient; an RS256 ID
  token for `openid`; a refresh token for `offline_access`/`online_access`, rotated on use
  (spent atomically in the shared state, so two concurrent uses never both succeed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN

from fhir_server.auth.issuing import issue_access_token, issue_id_token
from fhir_server.auth.roles import definition_of
from fhir_server.auth.scopes import InvalidScope, parse_scopes
from fhir_server.auth.server.clients import ClientRecord
from fhir_server.auth.server.launch import Grantee, LaunchContext, LaunchIds
from fhir_server.auth.server.refresh import RefreshGrant, wants_refresh
from fhir_server.auth.server.scope_grant import narrowed_to_role
from fhir_server.auth.server.state import AuthState
from fhir_server.auth.server.users import UserRegistry

if TYPE_CHECKING:
    from fhir_server.auth.server.authority import EmbeddedAuthorizationServer

AUTHORIZATION_CODE_LIFETIME_S = 60
CODE_KIND = "authorization-code"
REFRESH_KIND = "spent-refresh-token"
USER_ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
ID_TOKEN_LIFETIME = timedelta(hours=1)
USER_AUTH_METHODS = ["none", "client_secret_basic", "private_key_jwt"]


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """An issued code and everything it is bound to."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    grantee: Grantee
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class CodeStore:
    """Issued codes in the shared state: any worker process takes one, once, before it expires."""

    def __init__(self, state: AuthState, users: UserRegistry | None) -> None:
        self._state = state
        self._users = users

    def save(self, code: AuthorizationCode) -> None:
        grantee = code.grantee
        self._state.put(CODE_KIND, code.code, {
            "client_id": code.client_id, "redirect_uri": code.redirect_uri,
            "scope": code.scope, "code_challenge": code.code_challenge,
            "username": grantee.user.username, "context": grantee.context.token_fields(),
            "auth_time": grantee.auth_time, "nonce": grantee.nonce,
            "expires_at": code.expires_at}, code.expires_at)

    def take(self, code: str, client_id: str) -> AuthorizationCode | None:
        """The code if it is live and was issued to `client_id`; it is gone afterwards."""
        stored = self._state.take(CODE_KIND, code)
        if stored is None or stored["client_id"] != client_id or self._users is None:
            return None
        user = self._users.get(stored["username"])
        if user is None:
            return None
        grantee = Grantee(user=user, context=LaunchContext(**stored["context"]),
                          auth_time=stored["auth_time"], nonce=stored["nonce"])
        return AuthorizationCode(
            code=code, client_id=client_id, redirect_uri=stored["redirect_uri"],
            scope=stored["scope"], code_challenge=stored["code_challenge"], grantee=grantee,
            expires_at=stored["expires_at"])


class S256Only(CodeChallenge):
    """PKCE as SMART requires it: a challenge is mandatory and its method must be `S256`."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if not challenge:
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if method != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported")
        if not CODE_CHALLENGE_PATTERN.match(challenge):
            raise InvalidRequestError("Invalid 'code_challenge'")

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, code: AuthorizationCode) -> str:
        return "S256"


class SmartLaunch:
    """Checks SMART's `aud` and `redirect_uri`, and resolves an EHR `launch` id."""

    def __init__(self, launch_ids: LaunchIds, audience: str) -> None:
        self._launch_ids = launch_ids
        self._audiences = {audience.rstrip("/"), audience.rstrip("/") + "/"}

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.validate)

    def validate(self, grant: Any, redirect_uri: str) -> None:
        request: OAuth2Request = grant.request
        data = request.payload.data
        if not request.payload.redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri'")
        if data.get("aud") not in self._audiences:
            raise InvalidRequestError("'aud' must be this server's FHIR base URL")
        launch = data.get("launch")
        context = self._launch_ids.context_of(launch) if launch else None
        if launch and context is None:
            raise InvalidRequestError("Unknown or expired 'launch'")
        request.ehr_launch = context  # type: ignore[attr-defined]


def final_scopes(scope: str, grantee: Grantee, *, ehr_launch: bool) -> tuple[str, ...]:
    """The scopes a code grants: the role's share, minus launch scopes without context."""
    scopes = narrowed_to_role(scope.split(), definition_of(grantee.user.role))
    missing = {"launch": not ehr_launch, "launch/patient": grantee.context.patient is None,
               "launch/encounter": grantee.context.encounter is None}
    return tuple(s for s in scopes if not missing.get(s, False))


class SmartAuthorizationCodeGrant(AuthorizationCodeGrant):
    """authlib's code grant with SMART's scope rules, shared single-use codes and our users."""

    TOKEN_ENDPOINT_AUTH_METHODS = USER_AUTH_METHODS
    server: EmbeddedAuthorizationServer

    def validate_requested_scope(self) -> None:
        scope = self.request.payload.scope
        if not scope:
            raise InvalidScopeError(description="SMART apps must request scopes")
        try:
            parse_scopes(scope)
        except InvalidScope:
            raise InvalidScopeError(description="A requested scope is malformed") from None

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        grantee = replace(request.user, nonce=request.payload.data.get("nonce"))
        ehr_launch = getattr(request, "ehr_launch", None) is not None
        self.server.codes.save(AuthorizationCode(
            code=code, client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=" ".join(final_scopes(request.scope, grantee, ehr_launch=ehr_launch)),
            code_challenge=request.payload.data["code_challenge"], grantee=grantee,
            expires_at=self.server.clock() + AUTHORIZATION_CODE_LIFETIME_S))

    def query_authorization_code(self, code: str,
                                 client: ClientRecord) -> AuthorizationCode | None:
        return self.server.codes.take(code, client.client_id)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing left to do: `query_authorization_code` already took the code."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Grantee:
        return authorization_code.grantee


class SmartRefreshTokenGrant(RefreshTokenGrant):
    """authlib's refresh grant over our signed refresh tokens; each is spent on first use."""

    TOKEN_ENDPOINT_AUTH_METHODS = USER_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: EmbeddedAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshGrant | None:
        grant = self.server.refresh_tokens.verified(refresh_token)
        if grant is None or grant.is_expired() or grant.is_revoked():
            return None
        return grant

    def authenticate_user(self, refresh_token: RefreshGrant) -> Grantee | None:
        user = self.server.users.get(refresh_token.username) if self.server.users else None
        if user is None:
            return None
        return Grantee(user=user, context=refresh_token.context,
                       auth_time=refresh_token.auth_time)

    def create_token_response(self) -> Any:
        """Spend the token first: the shared state lets one of two concurrent uses through,
        whichever processes they reach; the revocation list then remembers it as used."""
        grant: RefreshGrant = self.request.refresh_token
        if (not self.server.state.first_use(REFRESH_KIND, grant.jti, grant.expires_at)
                or not self.server.refresh_tokens.spend(grant)):
            raise InvalidGrantError("The refresh token was already used")
        return super().create_token_response()

    def revoke_old_credential(self, refresh_token: RefreshGrant) -> None:
        """Already done: `create_token_response` spent the token before issuing new ones."""


def user_token_response(server: EmbeddedAuthorizationServer, *, client: ClientRecord,
                        grantee: Grantee, scopes: Sequence[str],
                        include_refresh_token: bool) -> dict[str, Any]:
    """The token response of a user's grant: access token, launch context, ID and refresh."""
    user, now = grantee.user, datetime.fromtimestamp(server.clock(), tz=UTC)
    context: LaunchContext = grantee.context
    token: dict[str, Any] = {
        "access_token": issue_access_token(
            server.keys, issuer=server.endpoints.issuer, audience=server.audience,
            subject=user.username, scopes=scopes, lifetime=USER_ACCESS_TOKEN_LIFETIME,
            now=now, fhir_user=user.fhir_user, patient=context.patient,
            role=user.role.value, client_id=client.client_id),
        "token_type": "Bearer",
        "expires_in": int(USER_ACCESS_TOKEN_LIFETIME.total_seconds()),
        "scope": " ".join(scopes),
        **context.token_fields(),
    }
    if "openid" in scopes:
        token["id_token"] = issue_id_token(
            server.keys, issuer=server.endpoints.issuer, client_id=client.client_id,
            subject=user.username, fhir_user=user.fhir_user if "fhirUser" in scopes else None,
            now=now, lifetime=ID_TOKEN_LIFETIME, nonce=grantee.nonce,
            auth_time=grantee.auth_time)
    if include_refresh_token and wants_refresh(scopes):
        token["refresh_token"] = server.refresh_tokens.issue(
            client_id=client.client_id, grantee=grantee, scopes=scopes, now=now)
    return token
