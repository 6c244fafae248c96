"""Refresh tokens: issued only for `offline_access` or `online_access`, rotated on every use.

A refresh token is a JWT signed with the server's key (`aud` `<issuer>/token`, so the
resource server never takes it for an access token) carrying the client, the user, the
granted scopes and the launch context, so a refresh keeps the context and cannot widen it.
Its `jti` goes into the revocation list when it is used (rotation) or revoked, which works
across worker processes and restarts; a second use of a rotated token is `invalid_grant`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4

from fhir_server.auth.issuing import sign_server_jwt
from fhir_server.auth.keys import KeySet
from fhir_server.auth.server.clients import ClientRecord
from fhir_server.auth.server.launch import Grantee, LaunchContext
from fhir_server.auth.server.revocations import RevocationList
from fhir_server.auth.tokens import InvalidToken, StaticJwks, TokenValidator

OFFLINE_LIFETIME = timedelta(days=30)
# Without a login session to tie it to, "online" access lasts a working day.
ONLINE_LIFETIME = timedelta(hours=12)
REFRESH_TYP = "refresh+jwt"
TOKEN_USE = "refresh"


def wants_refresh(scopes: Sequence[str]) -> bool:
    """SMART: refresh tokens only for apps granted `offline_access` or `online_access`."""
    return "offline_access" in scopes or "online_access" in scopes


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """A verified refresh token, as authlib's `TokenMixin` sees it."""

    jti: str
    client_id: str
    username: str
    scope: str
    context: LaunchContext
    auth_time: int
    expires_at: float
    revocations: RevocationList
    clock: Callable[[], float]

    def check_client(self, client: ClientRecord) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - self.clock()))

    def is_expired(self) -> bool:
        return self.expires_at <= self.clock()

    def is_revoked(self) -> bool:
        return self.revocations.is_revoked(self.jti)


class RefreshTokens:
    """Issues, verifies and spends refresh tokens."""

    def __init__(self, keys: KeySet, *, issuer: str, revocations: RevocationList,
                 clock: Callable[[], float]) -> None:
        self._keys = keys
        self._issuer = issuer
        self._revocations = revocations
        self._clock = clock
        self._lock = threading.Lock()
        self._validator = TokenValidator(issuer=issuer, audience=f"{issuer}/token",
                                         jwks=StaticJwks(keys.jwks()), clock=clock)

    def issue(self, *, client_id: str, grantee: Grantee, scopes: Sequence[str],
              now: datetime) -> str:
        lifetime = OFFLINE_LIFETIME if "offline_access" in scopes else ONLINE_LIFETIME
        issued_at = int(now.timestamp())
        payload = {"iss": self._issuer, "aud": f"{self._issuer}/token", "iat": issued_at,
                   "exp": issued_at + int(lifetime.total_seconds()), "jti": str(uuid4()),
                   "token_use": TOKEN_USE, "client_id": client_id,
                   "sub": grantee.user.username, "scope": " ".join(scopes),
                   "auth_time": grantee.auth_time, "context": grantee.context.token_fields()}
        return sign_server_jwt(self._keys, payload, typ=REFRESH_TYP)

    def verified(self, token: str) -> RefreshGrant | None:
        """The refresh token's grant when it is ours and well-formed (maybe used or expired)."""
        try:
            claims = self._validator.validate(token)
        except InvalidToken:
            return None
        raw = claims.raw
        context, auth_time = raw.get("context"), raw.get("auth_time")
        if (raw.get("token_use") != TOKEN_USE or not claims.jti or not claims.client_id
                or not claims.subject or not isinstance(context, dict)
                or not isinstance(auth_time, int)):
            return None
        return RefreshGrant(
            jti=claims.jti, client_id=claims.client_id, username=claims.subject,
            scope=" ".join(claims.scopes), auth_time=auth_time,
            context=LaunchContext(**{k: v for k, v in context.items()
                                     if k in LaunchContext.__slots__}),
            expires_at=claims.expires_at.timestamp(), revocations=self._revocations,
            clock=self._clock)

    def spend(self, grant: RefreshGrant) -> bool:
        """Mark the token used; False when it already was (a replay of a rotated token)."""
        with self._lock:
            if self._revocations.is_revoked(grant.jti, fresh=True):
                return False
            self._revocations.revoke(grant.jti, grant.expires_at)
            return True
