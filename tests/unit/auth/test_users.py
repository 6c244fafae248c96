"""The login users' registry: hashed passwords, checked roles and fhirUsers, demo users."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fhir_server.auth.roles import Role
from fhir_server.auth.server.users import DEMO_USERS, UserRegistry, UserRegistryError, new_user


def test_a_user_is_stored_with_a_password_hash_only_and_logs_in(tmp_path: Path) -> None:
    registry = UserRegistry.in_data_dir(tmp_path)
    registry.add(new_user(username="nurse.joy", password="a long password", role="staff",
                          fhir_user="Practitioner/joy"))

    stored = (tmp_path / "auth" / "users.json").read_text()
    assert "a long password" not in stored and "scrypt$" in stored
    assert oct(os.stat(tmp_path / "auth" / "users.json").st_mode & 0o777) == "0o600"
    again = UserRegistry.in_data_dir(tmp_path)  # another process reads the same file
    found = again.authenticate("nurse.joy", "a long password")
    assert found is not None and found.role is Role.STAFF
    assert found.fhir_user == "Practitioner/joy" and found.own_patient is None
    assert again.authenticate("nurse.joy", "a long passworD") is None
    assert again.authenticate("nobody", "a long password") is None


@pytest.mark.parametrize("kwargs", [
    {"username": "x", "password": "short", "role": "staff", "fhir_user": "Practitioner/x"},
    {"username": "x", "password": "long enough", "role": "nurse",
     "fhir_user": "Practitioner/x"},
    {"username": "x", "password": "long enough", "role": "patient",
     "fhir_user": "Practitioner/x"},
    {"username": "x", "password": "long enough", "role": "doctor", "fhir_user": "Patient/x"},
    {"username": "x", "password": "long enough", "role": "doctor",
     "fhir_user": "https://other.example/fhir/Practitioner/x"},
    {"username": "has space", "password": "long enough", "role": "staff",
     "fhir_user": "Practitioner/x"},
])
def test_bad_users_are_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(UserRegistryError):
        new_user(**kwargs)


def test_a_username_is_registered_once(tmp_path: Path) -> None:
    registry = UserRegistry.in_data_dir(tmp_path)
    registry.add(new_user(username="a", password="password-1", role="staff",
                          fhir_user="Practitioner/a"))
    with pytest.raises(UserRegistryError):
        registry.add(new_user(username="a", password="password-2", role="doctor",
                              fhir_user="Practitioner/b"))


def test_demo_users_cover_every_role_once_and_keep_existing_ones(tmp_path: Path) -> None:
    registry = UserRegistry.in_data_dir(tmp_path)
    assert registry.add_demo_users() == [name for name, *_ in DEMO_USERS]
    assert registry.add_demo_users() == []
    assert {user.role for user in registry.all()} == set(Role)
    patient = registry.authenticate("maria.garcia", "demo-patient-pass")
    assert patient is not None and patient.own_patient == "Patient/maria-garcia"
    users = json.loads((tmp_path / "auth" / "users.json").read_text())["users"]
    assert len(users) == len(DEMO_USERS)
