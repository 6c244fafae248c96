"""What the authorization-code flow remembers: codes (60 s, once, per client) and picker
tickets in the shared state file, launch ids and refresh tokens (signed, spent once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fhir_server.auth.keys import KeySet
from fhir_server.auth.roles import Role
from fhir_server.auth.server.grants import (
    AUTHORIZATION_CODE_LIFETIME_S,
    AuthorizationCode,
    CodeStore,
)
from fhir_server.auth.server.launch import (
    PENDING_LOGIN_LIFETIME_S,
    Grantee,
    LaunchContext,
    LaunchIds,
    PendingLogin,
    PendingLogins,
    create_launch_id,
)
from fhir_server.auth.server.refresh import RefreshTokens
from fhir_server.auth.server.revocations import RevocationList
from fhir_server.auth.server.state import AuthState
from fhir_server.auth.server.users import UserRecord, UserRegistry

ISSUER = "https://clinic.example/auth"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
GRANTEE = Grantee(user=UserRecord("dr", "scrypt$x$y", Role.DOCTOR, "Practitioner/dr"),
                  context=LaunchContext(patient="p1", encounter="e1"), auth_time=1)


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def code(clock: Clock, value: str = "c1", client_id: str = "app") -> AuthorizationCode:
    return AuthorizationCode(code=value, client_id=client_id, redirect_uri="https://a/cb",
                             scope="openid", code_challenge="x" * 43, grantee=GRANTEE,
                             expires_at=clock() + AUTHORIZATION_CODE_LIFETIME_S)


def test_a_code_is_taken_once_by_its_client_before_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    users = UserRegistry.in_data_dir(tmp_path)
    users.add(GRANTEE.user)
    codes = CodeStore(AuthState.in_data_dir(tmp_path, clock=clock), users)
    codes.save(code(clock, "c1"))
    codes.save(code(clock, "c2"))
    codes.save(code(clock, "c3"))
    assert AUTHORIZATION_CODE_LIFETIME_S <= 60
    taken = codes.take("c1", "app")
    assert taken == code(clock, "c1")  # everything it was bound to comes back
    assert codes.take("c1", "app") is None
    assert codes.take("c2", "another-app") is None
    assert codes.take("c2", "app") is None  # a code shown by the wrong client is burnt
    clock.now += AUTHORIZATION_CODE_LIFETIME_S
    assert codes.take("c3", "app") is None


def test_another_process_takes_a_code_this_one_saved(tmp_path: Path) -> None:
    clock = Clock()
    users = UserRegistry.in_data_dir(tmp_path)
    users.add(GRANTEE.user)
    CodeStore(AuthState.in_data_dir(tmp_path, clock=clock), users).save(code(clock, "c1"))
    elsewhere = CodeStore(AuthState.in_data_dir(tmp_path, clock=clock), users)
    assert elsewhere.take("c1", "app") == code(clock, "c1")


def test_a_picker_ticket_is_read_until_it_is_taken_once(tmp_path: Path) -> None:
    clock = Clock()
    pending = PendingLogins(AuthState.in_data_dir(tmp_path, clock=clock), clock)
    ticket = pending.add(username="dr", params={"scope": "launch/patient"}, auth_time=1,
                         session="s")
    other = PendingLogins(AuthState.in_data_dir(tmp_path, clock=clock), clock)
    assert other.get(ticket) == pending.get(ticket) == PendingLogin(
        "dr", {"scope": "launch/patient"}, 1, "s")
    assert other.take(ticket) is not None
    assert pending.take(ticket) is None and pending.get(ticket) is None
    late = pending.add(username="dr", params={}, auth_time=1, session="s")
    clock.now += PENDING_LOGIN_LIFETIME_S
    assert pending.get(late) is None and pending.take(late) is None


def test_a_launch_id_reads_back_only_when_ours_and_fresh(keys: KeySet,
                                                         other_keys: KeySet) -> None:
    clock = Clock()
    context = LaunchContext(patient="p1", encounter="e1", need_patient_banner=False)
    launch = create_launch_id(keys, issuer=ISSUER, context=context, now=NOW,
                              lifetime=timedelta(minutes=10))
    ids = LaunchIds(keys, issuer=ISSUER, clock=clock)
    assert ids.context_of(launch) == context
    forged = create_launch_id(other_keys, issuer=ISSUER, context=context, now=NOW)
    assert ids.context_of(forged) is None
    assert ids.context_of("p1") is None
    clock.now += 11 * 60
    assert LaunchIds(keys, issuer=ISSUER, clock=clock).context_of(launch) is None


def test_a_refresh_token_keeps_its_context_and_is_spent_once(keys: KeySet,
                                                             tmp_path: Path) -> None:
    clock = Clock()
    revocations = RevocationList.in_data_dir(tmp_path, clock=clock)
    tokens = RefreshTokens(keys, issuer=ISSUER, revocations=revocations, clock=clock)
    issued = tokens.issue(client_id="app", grantee=GRANTEE,
                          scopes=["offline_access", "patient/*.rs"], now=NOW)
    grant = tokens.verified(issued)
    assert grant is not None and grant.context == GRANTEE.context
    assert grant.username == "dr" and grant.scope == "offline_access patient/*.rs"
    assert grant.get_expires_in() == 30 * 24 * 3600
    assert tokens.spend(grant) and not tokens.spend(grant)
    assert grant.is_revoked()
    # Another kind of server JWT (here a launch id) is never a refresh token.
    assert tokens.verified(create_launch_id(keys, issuer=ISSUER, context=LaunchContext(),
                                            now=NOW)) is None
