"""Contract: search results are sorted, stably tie-broken on id, paged, and counted."""

from __future__ import annotations

from fhir_server.fhir.search.model import (
    DateEntry,
    SortKey,
    StringEntry,
    TokenEntry,
    TokenMatch,
)
from fhir_server.store.protocol import Store

from .factories import at, ids, put, where

HOUR = 3_600_000
JAN_1 = 1_735_689_600_000  # 2025-01-01T00:00:00Z in epoch ms


async def seed_practitioners(store: Store) -> None:
    """Four practitioners written out of order of name, start date and id."""
    rows = [  # id, written at minute, family name, [start ranges in hours]
        ("c", 4, "baker", [(5, 6)]),
        ("a", 2, "adams", [(9, 10)]),
        ("d", 1, "cole", [(1, 2), (20, 30)]),
        ("b", 3, "dunn", [(7, 8)]),
    ]
    for id_, minute, family, ranges in rows:
        dates = tuple(DateEntry("start", JAN_1 + lo * HOUR, JAN_1 + hi * HOUR) for lo, hi in ranges)
        await put(store, "Practitioner", id_, when=at(minute),
                  index=(StringEntry("family", family, family.title()),
                         TokenEntry("active", None, "true"), *dates))


async def sorted_ids(store: Store, *keys: SortKey) -> list[str]:
    """Every practitioner's id in the requested order."""
    return ids(await store.search(where("Practitioner", sort=keys)))


async def test_default_order_is_last_updated_then_id(store: Store) -> None:
    await seed_practitioners(store)

    assert await sorted_ids(store) == ["d", "a", "b", "c"]


async def test_sort_by_id_and_last_updated_both_ways(store: Store) -> None:
    await seed_practitioners(store)

    assert await sorted_ids(store, SortKey("_id", "id")) == ["a", "b", "c", "d"]
    assert await sorted_ids(store, SortKey("_id", "id", descending=True)) == ["d", "c", "b", "a"]
    assert await sorted_ids(store, SortKey("_lastUpdated", "lastUpdated", descending=True)) == [
        "c", "b", "a", "d"]


async def test_sort_by_string_parameter_both_ways(store: Store) -> None:
    await seed_practitioners(store)

    assert await sorted_ids(store, SortKey("family", "string")) == ["a", "c", "d", "b"]
    assert await sorted_ids(store, SortKey("family", "string", descending=True)) == [
        "b", "d", "c", "a"]


async def test_sort_by_date_uses_earliest_start_ascending_and_latest_end_descending(
        store: Store) -> None:
    await seed_practitioners(store)

    # d starts first (hour 1) but also ends last (hour 30).
    assert await sorted_ids(store, SortKey("start", "date")) == ["d", "c", "b", "a"]
    assert await sorted_ids(store, SortKey("start", "date", descending=True)) == [
        "d", "a", "b", "c"]


async def test_equal_sort_values_are_ordered_by_id(store: Store) -> None:
    await seed_practitioners(store)

    assert await sorted_ids(store, SortKey("active", "token")) == ["a", "b", "c", "d"]


async def test_offset_and_limit_page_through_results_with_the_full_total(store: Store) -> None:
    await seed_practitioners(store)
    by_name = (SortKey("family", "string"),)

    first = await store.search(where("Practitioner", sort=by_name, offset=0, limit=3))
    second = await store.search(where("Practitioner", sort=by_name, offset=3, limit=3))
    beyond = await store.search(where("Practitioner", sort=by_name, offset=10, limit=3))

    assert (ids(first), first.total) == (["a", "c", "d"], 4)
    assert (ids(second), second.total) == (["b"], 4)
    assert (ids(beyond), beyond.total) == ([], 4)


async def test_total_counts_only_matches_and_is_skipped_when_not_asked(store: Store) -> None:
    await seed_practitioners(store)
    await put(store, "Practitioner", "inactive", index=(TokenEntry("active", None, "false"),))
    active = TokenMatch("active", None, "true")

    counted = await store.search(where("Practitioner", active, limit=1))
    uncounted = await store.search(where("Practitioner", active, limit=2, with_total=False))

    assert (len(counted.resources), counted.total) == (1, 4)
    assert (len(uncounted.resources), uncounted.total) == (2, None)


async def test_limit_zero_returns_only_the_total(store: Store) -> None:
    await seed_practitioners(store)

    page = await store.search(where("Practitioner", limit=0))

    assert (page.resources, page.total) == ([], 4)
