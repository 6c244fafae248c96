"""Behaviour particular to the MongoDB adapter's document layout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo.errors import OperationFailure

from fhir_server.fhir.search.model import (
    Clause,
    StoreQuery,
    StringEntry,
    StringMatch,
    TokenEntry,
    TokenMatch,
)
from fhir_server.store.mongo import MongoStore, version_key
from fhir_server.store.mongo_query import compile_filter
from fhir_server.store.protocol import SearchPage, VersionWrite, WriteConflict

from .conftest import slot_version

pytestmark = pytest.mark.mongo

FREE = (TokenEntry("status", None, "free"),)
BUSY = (TokenEntry("status", None, "busy"),)


def where_status(code: str) -> StoreQuery:
    """Slots whose status token is `code`."""
    return StoreQuery("Slot", (Clause((TokenMatch("status", None, code),)),))


def ids(page: SearchPage) -> list[str]:
    """The ids on a page, in order."""
    return [r.id for r in page.resources]


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
    # What every server can show: the filter's shape is the prefix of the token index.
    client = store._client_or_raise()
    indexes = await client[store.database_name]["resources"].index_information()
    assert indexes["type_token"]["key"] == [("type", 1), ("tok.p", 1), ("tok.c", 1)]
    assert compile_filter(where_status("free")) == {
        "type": "Slot", "deleted": False,
        "$and": [{"tok": {"$elemMatch": {"p": "status", "c": "free"}}}]}
    # Enough non-matching slots that scanning by type alone is clearly the worse plan.
    await store.commit([slot_version(f"b{n}", 1, status="busy", index=BUSY) for n in range(20)])
    await store.commit([slot_version("s1", 1, status="free", index=FREE)])
    try:
        plan = await store.query_plan(where_status("free"))
    except OperationFailure:
        return  # the jongodb test server has no `explain`; a real MongoDB (MONGODB_URI) does

    assert "type_token" in str(plan["queryPlanner"]["winningPlan"])


async def test_a_failed_multi_write_commit_restores_the_resources_it_had_updated(
        store: MongoStore) -> None:
    await store.commit([slot_version("s1", 1, status="free", index=FREE),
                        slot_version("taken", 1, status="busy", index=BUSY)])
    booking = [slot_version("s1", 2, status="busy", match={"status": "free"}, index=BUSY),
               slot_version("s2", 1, status="busy", index=BUSY),
               slot_version("taken", 2, status="busy", match={"status": "free"}, index=BUSY)]

    with pytest.raises(WriteConflict) as caught:
        await store.commit(booking)

    assert caught.value.id == "taken"
    restored = await store.read("Slot", "s1")
    assert restored is not None and restored.version_id == 1
    assert await store.read("Slot", "s2") is None
    assert await store.read_version("Slot", "s1", 2) is None
    assert ids(await store.search(where_status("free"))) == ["s1"]
    assert ids(await store.search(where_status("busy"))) == ["taken"]
    [retried] = await store.commit([booking[0]])
    assert retried.version_id == 2


@pytest.mark.parametrize("value", ["a.b", "(x", "c+", "d*e", "[f]", "g|h", "^i", "j$", "k\\l"])
async def test_string_search_treats_regex_metacharacters_literally(
        store: MongoStore, value: str) -> None:
    decoy = "zz" + value.replace(value[1], "Q") if len(value) > 1 else "zzQ"
    await store.commit([
        slot_version("hit", 1, status="free", index=(StringEntry("comment", value, value),)),
        slot_version("miss", 1, status="free", index=(StringEntry("comment", decoy, decoy),)),
    ])

    for mode in ("startswith", "contains", "exact"):
        query = StoreQuery("Slot", (Clause((StringMatch("comment", value, mode),)),))
        assert ids(await store.search(query)) == ["hit"], mode
