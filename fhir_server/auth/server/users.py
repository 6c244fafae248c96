"""The people who log in at the embedded server's login page: one JSON file, mode 0600.

`data_dir/auth/users.json` holds each user's name, an scrypt hash of the password (never the
password), the role their tokens carry and their `fhirUser` (`Practitioner/..` or
`Patient/..`). Like the client registry it serves development and a single site; a clinic
with a directory of staff points the server at its own IdP instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from fhir_server.auth.roles import Role, fhir_user_type
from fhir_server.auth.server.clients import hash_secret, secret_matches
from fhir_server.auth.server.json_records import JsonRecords

MIN_PASSWORD_LENGTH: Final = 8
# A hash to compare against when the user does not exist, so an unknown name costs the same
# scrypt time as a wrong password and response times do not reveal who has an account.
_DECOY_HASH: Final = hash_secret("no such user, no such password")


class UserRegistryError(Exception):
    """A user that cannot be stored (duplicate name, weak password, bad role or fhirUser)."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A person who may log in, with the role and `fhirUser` their tokens carry."""

    username: str
    password_hash: str
    role: Role
    fhir_user: str

    @property
    def own_patient(self) -> str | None:
        """`Patient/<id>` for a patient user (their own record), else None."""
        return self.fhir_user if self.role is Role.PATIENT else None


# The demo clinic's users, one per role, created by `fhir-scheduler seed` (README, Security).
# Each is a person of the demo directory, so audit trails name who acted; the role claim,
# not the record, decides what they may do.
DEMO_USERS: Final[tuple[tuple[str, str, Role, str], ...]] = (
    ("admin", "demo-admin-pass", Role.ADMINISTRATOR, "Practitioner/jordan-blake"),
    ("dr.okafor", "demo-doctor-pass", Role.DOCTOR, "Practitioner/dr-amara-okafor"),
    ("front.desk", "demo-staff-pass", Role.STAFF, "Practitioner/sam-rivera"),
    ("maria.garcia", "demo-patient-pass", Role.PATIENT, "Patient/maria-garcia"),
)


def new_user(*, username: str, password: str, role: str, fhir_user: str) -> UserRecord:
    """A checked user: a known role, a fhirUser reference that fits it, a long password."""
    if not username or any(c.isspace() for c in username):
        raise UserRegistryError(f"invalid username {username!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserRegistryError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    try:
        chosen = Role(role)
    except ValueError:
        raise UserRegistryError(f"unknown role {role!r}; expected one of "
                                f"{', '.join(r.value for r in Role)}") from None
    kind = fhir_user_type(fhir_user)
    allowed = ("Patient",) if chosen is Role.PATIENT else ("Practitioner", "PractitionerRole")
    if kind not in allowed or "://" in fhir_user:
        raise UserRegistryError(f"a {chosen.value}'s fhirUser must be a relative reference "
                                f"to {' or '.join(allowed)}, got {fhir_user!r}")
    return UserRecord(username=username, password_hash=hash_secret(password), role=chosen,
                      fhir_user=fhir_user)


class UserRegistry:
    """The users, read from and written to `path` (created 0600), re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self._records = JsonRecords(path, section="users", key=_username, load=_record,
                                    dump=_entry)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> UserRegistry:
        return cls(data_dir / "auth" / "users.json")

    def get(self, username: str) -> UserRecord | None:
        return self._records.get(username)

    def all(self) -> list[UserRecord]:
        return self._records.all()

    def authenticate(self, username: str, password: str) -> UserRecord | None:
        """The user when the password matches; None otherwise, in the same time either way."""
        user = self.get(username)
        matches = secret_matches(password, user.password_hash if user else _DECOY_HASH)
        return user if user is not None and matches else None

    def add(self, user: UserRecord) -> None:
        """Register a new user; an existing name is refused rather than overwritten."""
        self._records.add(user, exists=lambda name: UserRegistryError(
            f"user {name!r} already exists"))

    def add_demo_users(self) -> list[str]:
        """Create the demo users that do not exist yet; return their names."""
        created = []
        for username, password, role, fhir_user in DEMO_USERS:
            if self.get(username) is None:
                self.add(new_user(username=username, password=password, role=role.value,
                                  fhir_user=fhir_user))
                created.append(username)
        return created


def _username(user: UserRecord) -> str:
    return user.username


def _entry(user: UserRecord) -> dict[str, Any]:
    return {**asdict(user), "role": user.role.value}


def _record(entry: Mapping[str, Any]) -> UserRecord:
    return UserRecord(username=entry["username"], password_hash=entry["password_hash"],
                      role=Role(entry["role"]), fhir_user=entry["fhir_user"])
