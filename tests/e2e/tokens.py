"""Access tokens for tests: one key set per test process, copied into each server's data dir.

Generating RSA keys costs ~100 ms, so every app under test gets a copy of the same keys and
the same tokens work against all of them; `mint` signs any claims a test needs.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fhir_server.auth.issuing import issue_access_token
from fhir_server.auth.keys import KeySet, load_or_create_keys

BASE = "http://testserver/fhir"
ISSUER = "http://testserver/auth"
ADMIN_SCOPE = "user/*.cruds"


@functools.cache
def _shared_dir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fhir-test-keys-"))
    atexit.register(shutil.rmtree, folder, True)
    load_or_create_keys(folder)
    return folder


@functools.cache
def shared_keys() -> KeySet:
    """The key set every test server signs with (the embedded server's keys)."""
    return load_or_create_keys(_shared_dir())


def install_keys(data_dir: Path) -> None:
    """Give a server's data dir the shared keys (0600 files, as the key store demands)."""
    shutil.copytree(_shared_dir() / "keys", data_dir / "keys", dirs_exist_ok=True)


def mint(scope: str = ADMIN_SCOPE, *, role: str | None = "administrator",
         fhir_user: str | None = None, patient: str | None = None, audience: str = BASE,
         issuer: str = ISSUER, lifetime: timedelta = timedelta(hours=1),
         now: datetime | None = None, keys: KeySet | None = None, alg: str = "RS384") -> str:
    """A signed access token with the given SMART context and role."""
    return issue_access_token(keys or shared_keys(), issuer=issuer, audience=audience,
                              subject=fhir_user or "test-client", scopes=scope,
                              lifetime=lifetime, now=now or datetime.now(UTC),
                              fhir_user=fhir_user, patient=patient, role=role,
                              client_id="tests", alg=alg)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


@functools.cache
def admin_headers() -> dict[str, str]:
    """An administrator with every scope: what the functional e2e tests run as."""
    return bearer(mint())
