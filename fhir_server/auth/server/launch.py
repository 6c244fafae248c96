"""SMART launch context: who logged in, for which patient and encounter, and EHR launch ids.

A standalone launch that needs a patient parks the logged-in user in `PendingLogins` (the
state file shared by the worker processes) while they choose one at the picker.

An EHR launch id is created by `fhir-scheduler launch` (the EHR's side) and handed to the app,
which passes it back as `launch` at `/authorize`. It is a JWT signed with the server's key
(`aud` `<issuer>/launch`, one hour by default): opaque to the app, readable by every worker
process and across restarts, and impossible to forge or to point at another patient.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from fhir_server.auth.issuing import sign_server_jwt
from fhir_server.auth.keys import KeySet
from fhir_server.auth.server.state import AuthState
from fhir_server.auth.server.users import UserRecord
from fhir_server.auth.tokens import InvalidToken, StaticJwks, TokenValidator

LAUNCH_LIFETIME = timedelta(hours=1)
LAUNCH_TYP = "launch+jwt"


@dataclass(frozen=True, slots=True)
class LaunchContext:
    """What SMART returns beside the token: bare `patient` and `encounter` ids, UI hints."""

    patient: str | None = None
    encounter: str | None = None
    need_patient_banner: bool = True
    smart_style_url: str | None = None

    def token_fields(self) -> dict[str, Any]:
        """The launch-context members of a token response."""
        fields: dict[str, Any] = {"patient": self.patient, "encounter": self.encounter,
                                  "need_patient_banner": self.need_patient_banner,
                                  "smart_style_url": self.smart_style_url}
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Grantee:
    """The user who authorized an app, in which launch context (authlib's "user")."""

    user: UserRecord
    context: LaunchContext
    auth_time: int
    nonce: str | None = None


def bare_id(reference: str, resource_type: str) -> str:
    """`Patient/123` or `123` → `123`; a reference to another type is refused."""
    kind, _, id = reference.rpartition("/")
    if kind not in ("", resource_type) or not id:
        raise ValueError(f"expected a {resource_type} reference, got {reference!r}")
    return id


def create_launch_id(keys: KeySet, *, issuer: str, context: LaunchContext, now: datetime,
                     lifetime: timedelta = LAUNCH_LIFETIME) -> str:
    """A signed EHR launch id carrying `context`, valid from `now` for `lifetime`."""
    issued_at = int(now.timestamp())
    payload = {"iss": issuer, "aud": f"{issuer}/launch", "iat": issued_at,
               "exp": issued_at + int(lifetime.total_seconds()), "jti": str(uuid4()),
               **context.token_fields()}
    return sign_server_jwt(keys, payload, typ=LAUNCH_TYP)


class LaunchIds:
    """Reads launch ids back into their context; anything else reads as unknown (None)."""

    def __init__(self, keys: KeySet, *, issuer: str, clock: Callable[[], float]) -> None:
        self._validator = TokenValidator(issuer=issuer, audience=f"{issuer}/launch",
                                         jwks=StaticJwks(keys.jwks()), clock=clock)

    def context_of(self, launch_id: str) -> LaunchContext | None:
        try:
            raw = self._validator.validate(launch_id).raw
        except InvalidToken:
            return None
        banner, style = raw.get("need_patient_banner", True), raw.get("smart_style_url")
        return LaunchContext(patient=_text(raw.get("patient")),
                             encounter=_text(raw.get("encounter")),
                             need_patient_banner=banner if isinstance(banner, bool) else True,
                             smart_style_url=_text(style))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


PENDING_LOGIN_LIFETIME_S = 300
PENDING_KIND = "picker-ticket"


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A user who has logged in and must still choose the launch patient."""

    username: str
    params: dict[str, str]
    auth_time: int
    session: str


class PendingLogins:
    """Logged-in users waiting at the patient picker, by an unguessable ticket (5 minutes),
    in the shared state, so the picker works whichever worker process each step reaches."""

    def __init__(self, state: AuthState, clock: Callable[[], float]) -> None:
        self._state = state
        self._clock = clock

    def add(self, *, username: str, params: dict[str, str], auth_time: int,
            session: str) -> str:
        """A new ticket for this login, its authorization request and login session."""
        ticket = secrets.token_urlsafe(32)
        self._state.put(PENDING_KIND, ticket, {
            "username": username, "params": dict(params), "auth_time": auth_time,
            "session": session}, self._clock() + PENDING_LOGIN_LIFETIME_S)
        return ticket

    def get(self, ticket: str) -> PendingLogin | None:
        """The login, still waiting (a name search at the picker)."""
        stored = self._state.get(PENDING_KIND, ticket)
        return PendingLogin(**stored) if stored is not None else None

    def take(self, ticket: str) -> PendingLogin | None:
        """The login, whose patient is now chosen: the ticket is spent, in every process."""
        stored = self._state.take(PENDING_KIND, ticket)
        return PendingLogin(**stored) if stored is not None else None
