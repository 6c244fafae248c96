"""Fixtures of the MongoDB adapter's own tests: a fresh database per test on the session server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from fhir_server.fhir.search.model import IndexEntry
from fhir_server.store.mongo import MongoStore
from fhir_server.store.protocol import JsonScalar, VersionWrite

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def database() -> str:
    """A database name no other test uses (the test server cannot drop databases)."""
    return f"t_{uuid.uuid4().hex}"


@pytest.fixture
async def store(mongodb_uri: str, database: str) -> AsyncIterator[MongoStore]:
    """An opened MongoStore on a fresh database, closed after the test."""
    adapter = MongoStore(mongodb_uri, database=database, timeout_ms=5000)
    await adapter.open()
    yield adapter
    await adapter.close()


def slot_version(id: str, number: int, *, status: str, match: dict[str, JsonScalar] | None = None,
                 index: tuple[IndexEntry, ...] = (), **fields: Any) -> VersionWrite:
    """Version `number` of a Slot with the given status, expecting version `number - 1`."""
    when = T0 + timedelta(minutes=number)
    resource = {"resourceType": "Slot", "id": id, "status": status,
                "meta": {"versionId": str(number), "lastUpdated": when.isoformat()}, **fields}
    return VersionWrite(resource_type="Slot", id=id, version_id=number, last_updated=when,
                        method="POST" if number == 1 else "PUT", body=orjson.dumps(resource),
                        index=index, expected_version=number - 1, match=match or {})
