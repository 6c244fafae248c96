"""Behaviour particular to the MongoDB adapter's document layout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo.errors import OperationFailure

from fhir_server.fhir.search.model import Clause, StoreQuery, TokenEntry, TokenMatch
from fhir_server.store.mongo import MongoStore, version_key
from fhir_server.store.protocol import VersionWrite, WriteConflict

from .conftest import slot_version

pytestmark = pytest.mark.mongo

FREE = (TokenEntry("status", None, "free"),)


async def test_last_updated_reads_back_to_the_microsecond(store: MongoStore) -> None:
    precise = datetime(2025, 3, 3, 9, 0, 0, 123456, tzinfo=UTC)
    base = slot_version("s1", 1, status="free")
    write = VersionWrite(resource_type="Slot", id="s1", version_id=1, last_updated=precise,
                         method="POST", body=base.body)

    await store.commit([write])

    current = await store.read("Slot", "s1")
    assert current is not None and current.last_updated == precise
    assert [v.last_updated for v in (await store.history("Slot", "s1")).versions] == [precise]


async def test_a_version_whose_history_entry_was_lost_is_still_readable(
        store: MongoStore) -> None:
    await store.commit([slot_version("s1", 1, status="free")])
    await store.commit([slot_version("s1", 2, status="busy")])
    client = store._client_or_raise()
    await client[store.database_name]["versions"].delete_one({"_id": version_key("Slot", "s1", 2)})

    recovered = await store.read_version("Slot", "s1", 2)

    assert recovered is not None and recovered.version_id == 2
    [third] = await store.commit([slot_version("s1", 3, status="free")])
    assert third.version_id == 3


async def test_a_match_on_a_tombstone_is_a_conflict(store: MongoStore) -> None:
    await store.commit([slot_version("s1", 1, status="free")])
    await store.commit([VersionWrite(resource_type="Slot", id="s1", version_id=2,
                                     last_updated=datetime.now(UTC), method="DELETE", body=None,
                                     expected_version=1)])

    with pytest.raises(WriteConflict) as caught:
        await store.commit([slot_version("s1", 3, status="busy", match={"status": "free"})])

    assert caught.value.actual_version == 2


async def test_the_slot_status_search_uses_the_token_index(store: MongoStore) -> None:
    await store.commit([slot_version("s1", 1, status="free", index=FREE)])
    query = StoreQuery("Slot", (Clause((TokenMatch("status", None, "free"),)),))

    try:
        plan = await store.query_plan(query)
    except OperationFailure as exc:  # the jongodb test server has no `explain`
        pytest.skip(f"server cannot explain queries: {exc.code}")

    assert "type_token" in str(plan["queryPlanner"]["winningPlan"])
