"""An app on a fresh store per test, driven over ASGI with httpx.

The `client` fixture runs every API test twice: on a fresh SQLite file and on a fresh
MongoDB database (marked `mongo`), so both stores are held to the same REST behaviour.
It calls as an administrator with every scope (`tests/e2e/tokens.py`); the security tests
use other tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.e2e.tokens import BASE, admin_headers, install_keys
from tests.support.mongo_server import mongo_database_url


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a throwaway server whose data lives under `tmp_path` (with the test keys)."""
    install_keys(tmp_path)
    values: dict[str, object] = {
        "store_url": f"sqlite:///{tmp_path / 'fhir.db'}",
        "data_dir": tmp_path,
        "base_url": BASE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite file, or a new database on the MongoDB test server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fhir.db'}"
    server_uri: str = request.getfixturevalue("mongodb_uri")
    return mongo_database_url(server_uri, f"e2e_{uuid4().hex}")


@pytest.fixture
async def client(tmp_path: Path, store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a running app (lifespan entered) at BASE."""
    app = create_app(make_settings(tmp_path, store_url=store_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE + "/",
                                     headers=admin_headers()) as http:
            yield http


@pytest.fixture
async def racing(tmp_path: Path, store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests really interleave inside store calls (see `racing.py`)."""
    from tests.e2e.racing import racing_client

    async with racing_client(tmp_path, store_url) as http:
        yield http
