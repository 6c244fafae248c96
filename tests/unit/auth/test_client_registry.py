"""The embedded server's client registry: hashed secrets, a 0600 file, checked registrations."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from fhir_server.auth.server.clients import (
    ClientRegistry,
    ClientRegistryError,
    new_client,
    secret_matches,
)
from fhir_server.auth.server.revocations import FailureThrottle, RevocationList
from fhir_server.auth.server.state import AuthState

PUBLIC_JWKS = {"keys": [{"kty": "EC", "crv": "P-384", "x": "x", "y": "y", "kid": "k"}]}


def test_a_client_is_stored_0600_with_a_hashed_secret_and_read_back(tmp_path: Path) -> None:
    registry = ClientRegistry.in_data_dir(tmp_path)
    registry.add(new_client(client_id="ehr", secret="s3cret-value", scope="system/*.rs",
                            redirect_uris=["https://app.example/cb"]))
    path = tmp_path / "auth" / "clients.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "s3cret-value" not in path.read_text()
    again = ClientRegistry.in_data_dir(tmp_path).get("ehr")
    assert again is not None and again.role == "staff" and again.scopes == ("system/*.rs",)
    assert again.check_client_secret("s3cret-value")
    assert not again.check_client_secret("s3cret-valuE")
    assert again.auth_methods == ("client_secret_basic",)
    assert again.check_redirect_uri("https://app.example/cb")


def test_a_jwks_client_authenticates_only_by_assertion(tmp_path: Path) -> None:
    client = new_client(client_id="bulk", jwks=PUBLIC_JWKS, scope="system/*.rs",
                        role="administrator")
    assert client.auth_methods == ("private_key_jwt",)
    assert not client.check_client_secret("")


@pytest.mark.parametrize("kwargs", [
    {"client_id": "x", "scope": "system/*.rs"},  # no credential and no redirect URI
    {"client_id": "x", "scope": "launch/patient", "redirect_uris": ["javascript:alert(1)"]},
    {"client_id": "x", "scope": "system/*.rs", "secret": "s", "role": "superuser"},
    {"client_id": "x", "scope": "", "secret": "s"},
    {"client_id": "has space", "scope": "system/*.rs", "secret": "s"},
    {"client_id": "x", "scope": "system/*.rs",
     "jwks": {"keys": [{**PUBLIC_JWKS["keys"][0], "d": "private"}]}},
])
def test_bad_registrations_are_refused(kwargs: dict) -> None:
    with pytest.raises(ClientRegistryError):
        new_client(**kwargs)


def test_a_client_id_is_registered_once(tmp_path: Path) -> None:
    registry = ClientRegistry.in_data_dir(tmp_path)
    registry.add(new_client(client_id="ehr", secret="a", scope="system/*.rs"))
    with pytest.raises(ClientRegistryError):
        registry.add(new_client(client_id="ehr", secret="b", scope="system/*.rs"))
    assert json.loads((tmp_path / "auth" / "clients.json").read_text())["clients"][0]["client_id"]


def test_a_stored_hash_of_another_scheme_never_matches() -> None:
    assert not secret_matches("anything", "plain$anything")


def test_revocations_survive_a_restart_until_the_token_expires(tmp_path: Path) -> None:
    now = [1_000.0]
    revoked = RevocationList.in_data_dir(tmp_path, clock=lambda: now[0])
    revoked.revoke("a", expires_at=1_100.0)
    assert revoked.is_revoked("a") and not revoked.is_revoked("b")
    assert RevocationList.in_data_dir(tmp_path).is_revoked("a")
    now[0] = 1_200.0
    revoked.revoke("b", expires_at=1_300.0)  # writing prunes what has expired
    stored = json.loads((tmp_path / "auth" / "revoked.json").read_text())
    assert stored == {"b": 1_300.0}


def test_failed_authentications_back_off_exponentially_after_five(tmp_path: Path) -> None:
    now = [0.0]
    throttle = FailureThrottle(AuthState.in_data_dir(tmp_path, clock=lambda: now[0]), "client",
                               clock=lambda: now[0])
    for _ in range(4):
        throttle.failed("ehr")
    assert throttle.retry_after("ehr") == 0
    throttle.failed("ehr")
    assert throttle.retry_after("ehr") == 1.0
    throttle.failed("ehr")
    assert throttle.retry_after("ehr") == 2.0
    assert throttle.retry_after("other") == 0
    now[0] = 2.0
    assert throttle.retry_after("ehr") == 0
    throttle.succeeded("ehr")
    throttle.failed("ehr")
    assert throttle.retry_after("ehr") == 0
