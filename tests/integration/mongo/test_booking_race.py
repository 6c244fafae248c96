"""Many concurrent clients, one slot (or one pair of slots): exactly one winner, nothing partial."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from fhir_server.fhir.search.model import Clause, StoreQuery, TokenEntry, TokenMatch
from fhir_server.store.mongo import MongoStore
from fhir_server.store.protocol import StoredResource, VersionWrite, WriteConflict

from .conftest import slot_version

pytestmark = pytest.mark.mongo

FREE = (TokenEntry("status", None, "free"),)
BUSY = (TokenEntry("status", None, "busy"),)
CLIENTS = 50


async def open_connections(store: MongoStore, count: int) -> None:
    """Fill the client's pool first: PyMongo opens at most 2 connections at a time, so a cold
    pool serializes the clients and even a check-then-write would win only once (measured)."""
    await asyncio.gather(*(store.ping() for _ in range(count)))


def claim(id: str, client: int) -> VersionWrite:
    """A client's claim of a free slot at version 1 (version 2, held by that client)."""
    return slot_version(id, 2, status="busy", match={"status": "free"}, index=BUSY,
                        holder=f"client-{client}")


def holder(stored: StoredResource | None) -> str:
    """Who holds a slot, from its stored JSON."""
    assert stored is not None and stored.body is not None
    return str(orjson.loads(stored.body)["holder"])


async def test_fifty_concurrent_claims_of_one_slot_have_exactly_one_winner(
        store: MongoStore) -> None:
    await store.commit([slot_version("s1", 1, status="free", index=FREE)])
    await open_connections(store, CLIENTS)

    outcomes = await asyncio.gather(*(store.commit([claim("s1", n)]) for n in range(CLIENTS)),
                                    return_exceptions=True)

    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, WriteConflict)]
    assert len(winners) == 1 and len(losers) == CLIENTS - 1
    assert all(loser.actual_version == 2 for loser in losers)
    assert holder(await store.read("Slot", "s1")) == holder(winners[0][0])
    history = await store.history("Slot", "s1")
    assert [v.version_id for v in history.versions] == [2, 1]


async def test_concurrent_two_slot_bookings_claimed_in_order_leave_one_complete_winner(
        store: MongoStore) -> None:
    await store.commit([slot_version("a", 1, status="free", index=FREE),
                        slot_version("b", 1, status="free", index=FREE)])
    await open_connections(store, CLIENTS)

    outcomes = await asyncio.gather(
        *(store.commit([claim("a", n), claim("b", n)]) for n in range(CLIENTS)),
        return_exceptions=True)

    winners = [o for o in outcomes if isinstance(o, list)]
    assert len(winners) == 1
    assert all(isinstance(o, WriteConflict) for o in outcomes if not isinstance(o, list))
    first, second = await store.read("Slot", "a"), await store.read("Slot", "b")
    assert holder(first) == holder(second) == holder(winners[0][0])
    busy = await store.search(StoreQuery("Slot", (Clause((TokenMatch("status", None, "busy"),)),)))
    assert sorted(r.id for r in busy.resources) == ["a", "b"]
    assert (await store.history("Slot", None)).total == 4
