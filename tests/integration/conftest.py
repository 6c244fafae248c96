"""The `store` fixture: every integration test that takes it runs on each adapter, fresh."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fhir_server.store.protocol import Store


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of the parametrized adapter, closed after the test."""
    adapter: Store
    if request.param == "sqlite":
        from fhir_server.store.sqlite import SqliteStore

        adapter = SqliteStore(str(tmp_path / "data" / "store.db"))
    else:
        uri = request.getfixturevalue("mongodb_uri")
        from fhir_server.store.mongo import MongoStore

        adapter = MongoStore(uri, database=f"t_{uuid.uuid4().hex}", timeout_ms=5000)
    await adapter.open()
    yield adapter
    await adapter.close()
