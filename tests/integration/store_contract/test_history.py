"""Contract: history lists versions newest first at instance, type and system level."""

from __future__ import annotations

from fhir_server.store.protocol import HistoryPage, Store

from .factories import at, put, tombstone


async def seed_history(store: Store) -> None:
    """Slot s1 has three versions (the last a deletion), s2 one, Schedule x two."""
    await put(store, "Slot", "s1", 1, when=at(1))
    await put(store, "Schedule", "x", 1, when=at(2))
    await put(store, "Slot", "s2", 1, when=at(3))
    await put(store, "Slot", "s1", 2, when=at(4))
    await put(store, "Schedule", "x", 2, when=at(5))
    await store.commit([tombstone("Slot", "s1", 3, when=at(6))])


def keys(page: HistoryPage) -> list[tuple[str, str, int]]:
    """Each version as (type, id, version), in the order returned."""
    return [(v.resource_type, v.id, v.version_id) for v in page.versions]


async def test_instance_history_is_newest_first_and_includes_the_deletion(store: Store) -> None:
    await seed_history(store)

    page = await store.history("Slot", "s1")

    assert keys(page) == [("Slot", "s1", 3), ("Slot", "s1", 2), ("Slot", "s1", 1)]
    assert page.total == 3
    assert [v.deleted for v in page.versions] == [True, False, False]
    assert [v.method for v in page.versions] == ["DELETE", "PUT", "POST"]
    assert page.versions[0].body is None


async def test_type_history_lists_every_version_of_the_type(store: Store) -> None:
    await seed_history(store)

    page = await store.history("Slot", None)

    assert keys(page) == [("Slot", "s1", 3), ("Slot", "s1", 2), ("Slot", "s2", 1),
                          ("Slot", "s1", 1)]
    assert page.total == 4


async def test_system_history_lists_every_version(store: Store) -> None:
    await seed_history(store)

    page = await store.history(None, None)

    assert keys(page) == [("Slot", "s1", 3), ("Schedule", "x", 2), ("Slot", "s1", 2),
                          ("Slot", "s2", 1), ("Schedule", "x", 1), ("Slot", "s1", 1)]
    assert page.total == 6


async def test_since_keeps_versions_written_at_or_after_the_instant(store: Store) -> None:
    await seed_history(store)

    assert keys(await store.history("Slot", "s1", since=at(4))) == [
        ("Slot", "s1", 3), ("Slot", "s1", 2)]
    type_level = await store.history("Schedule", None, since=at(3))
    assert (keys(type_level), type_level.total) == ([("Schedule", "x", 2)], 1)
    system_level = await store.history(None, None, since=at(5))
    assert (keys(system_level), system_level.total) == (
        [("Slot", "s1", 3), ("Schedule", "x", 2)], 2)
    assert (await store.history(None, None, since=at(7))).total == 0


async def test_history_pages_with_offset_and_limit_and_keeps_the_total(store: Store) -> None:
    await seed_history(store)

    page = await store.history(None, None, offset=2, limit=2)

    assert keys(page) == [("Slot", "s1", 2), ("Slot", "s2", 1)]
    assert page.total == 6


async def test_history_of_an_unknown_resource_is_empty(store: Store) -> None:
    page = await store.history("Slot", "missing")

    assert (page.versions, page.total) == ([], 0)


async def test_history_versions_keep_their_own_times(store: Store) -> None:
    await seed_history(store)

    page = await store.history("Schedule", "x")

    assert [v.last_updated for v in page.versions] == [at(5), at(2)]
