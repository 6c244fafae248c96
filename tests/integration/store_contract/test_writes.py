"""Contract: versioned writes are checked, atomic and all-or-nothing, and reads see them."""

from __future__ import annotations

import asyncio

import pytest

from fhir_server.fhir.search.model import ReferenceEntry, TokenEntry, TokenMatch
from fhir_server.store.protocol import Store, VersionWrite, WriteConflict

from .factories import at, fields_of, ids, put, tombstone, version, where

FREE = (TokenEntry("status", None, "free"),)


async def assert_absent_from_search(store: Store, resource_type: str, code: str) -> None:
    """No index row of a failed write is visible."""
    page = await store.search(where(resource_type, TokenMatch("status", None, code)))
    assert page.resources == [] and page.total == 0


async def test_created_resource_reads_back_with_its_body_and_metadata(store: Store) -> None:
    written = await put(store, "Patient", "p1", when=at(5), gender="female")

    current = await store.read("Patient", "p1")

    assert current == written
    assert current is not None
    assert (current.version_id, current.deleted, current.method) == (1, False, "POST")
    assert current.last_updated == at(5)
    assert fields_of(current)["gender"] == "female"


async def test_reading_a_resource_never_written_gives_none(store: Store) -> None:
    assert await store.read("Patient", "nobody") is None
    assert await store.read_version("Patient", "nobody", 1) is None


async def test_each_update_appends_a_version_and_every_version_stays_readable(
        store: Store) -> None:
    await put(store, "Slot", "s1", 1, status="free")
    await put(store, "Slot", "s1", 2, status="busy-tentative")
    await put(store, "Slot", "s1", 3, status="busy")

    current = await store.read("Slot", "s1")
    assert current is not None and current.version_id == 3
    assert fields_of(current)["status"] == "busy"
    for number, status in [(1, "free"), (2, "busy-tentative"), (3, "busy")]:
        old = await store.read_version("Slot", "s1", number)
        assert old is not None and old.version_id == number
        assert fields_of(old)["status"] == status
    assert await store.read_version("Slot", "s1", 4) is None


async def test_stale_expected_version_is_refused_and_writes_nothing(store: Store) -> None:
    await put(store, "Slot", "s1", 1, status="free", index=FREE)
    await put(store, "Slot", "s1", 2, status="free", index=FREE)
    stale = version("Slot", "s1", 3, expected=1, status="busy",
                    index=(TokenEntry("status", None, "busy"),))

    with pytest.raises(WriteConflict) as caught:
        await store.commit([stale])

    assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)
    current = await store.read("Slot", "s1")
    assert current is not None and current.version_id == 2
    assert await store.read_version("Slot", "s1", 3) is None
    assert (await store.history("Slot", "s1")).total == 2
    await assert_absent_from_search(store, "Slot", "busy")


async def test_creating_an_existing_id_is_refused_and_keeps_the_original(store: Store) -> None:
    await put(store, "Slot", "s1", status="free", index=FREE)
    duplicate = version("Slot", "s1", 1, status="busy",
                        index=(TokenEntry("status", None, "busy"),))

    with pytest.raises(WriteConflict):
        await store.commit([duplicate])

    current = await store.read("Slot", "s1")
    assert current is not None and fields_of(current)["status"] == "free"
    await assert_absent_from_search(store, "Slot", "busy")


async def test_updating_a_resource_that_does_not_exist_is_refused(store: Store) -> None:
    with pytest.raises(WriteConflict) as caught:
        await store.commit([version("Slot", "ghost", 2, status="busy")])

    assert caught.value.actual_version in (None, 0)
    assert await store.read("Slot", "ghost") is None


async def test_a_differing_match_field_is_refused_and_writes_nothing(store: Store) -> None:
    await put(store, "Slot", "s1", status="busy", index=(TokenEntry("status", None, "busy"),))
    claim = version("Slot", "s1", 2, match={"status": "free"}, status="busy-tentative",
                    index=(TokenEntry("status", None, "busy-tentative"),))

    with pytest.raises(WriteConflict):
        await store.commit([claim])

    current = await store.read("Slot", "s1")
    assert current is not None and current.version_id == 1
    assert await store.read_version("Slot", "s1", 2) is None
    await assert_absent_from_search(store, "Slot", "busy-tentative")


async def test_match_on_nested_paths_absent_fields_and_booleans(store: Store) -> None:
    await put(store, "Slot", "s1", status="free", overbooked=False)

    with pytest.raises(WriteConflict):
        await store.commit([version("Slot", "s1", 2, match={"meta.versionId": "7"})])
    with pytest.raises(WriteConflict):
        await store.commit([version("Slot", "s1", 2, match={"status": None})])
    with pytest.raises(WriteConflict):
        await store.commit([version("Slot", "s1", 2, match={"overbooked": True})])
    [written] = await store.commit([version(
        "Slot", "s1", 2, status="busy",
        match={"meta.versionId": "1", "status": "free", "comment": None, "overbooked": False})])

    assert written.version_id == 2
    current = await store.read("Slot", "s1")
    assert current is not None and fields_of(current)["status"] == "busy"


async def test_a_multi_write_commit_whose_last_write_conflicts_leaves_none(
        store: Store) -> None:
    await put(store, "Slot", "taken", status="busy", index=(TokenEntry("status", None, "busy"),))
    schedule = ReferenceEntry("schedule", "Schedule", "sch1")
    writes = [
        version("Appointment", "a1", 1, status="booked",
                index=(TokenEntry("status", None, "booked"),)),
        version("Slot", "other", 1, status="busy",
                index=(TokenEntry("status", None, "busy"), schedule)),
        version("Slot", "taken", 2, match={"status": "free"}, status="busy"),
    ]

    with pytest.raises(WriteConflict) as caught:
        await store.commit(writes)

    assert caught.value.id == "taken"
    assert await store.read("Appointment", "a1") is None
    assert await store.read("Slot", "other") is None
    assert (await store.history("Appointment", None)).total == 0
    assert ids(await store.search(where("Slot", TokenMatch("status", None, "busy")))) == ["taken"]
    await assert_absent_from_search(store, "Appointment", "booked")


async def test_a_multi_write_commit_writes_every_version(store: Store) -> None:
    await put(store, "Slot", "s1", status="free", index=FREE)
    writes = [
        version("Appointment", "a1", 1, status="booked",
                index=(TokenEntry("status", None, "booked"),)),
        version("Slot", "s1", 2, match={"status": "free"}, status="busy",
                index=(TokenEntry("status", None, "busy"),)),
    ]

    written = await store.commit(writes)

    assert [(w.resource_type, w.id, w.version_id) for w in written] == [
        ("Appointment", "a1", 1), ("Slot", "s1", 2)]
    assert ids(await store.search(where("Slot", TokenMatch("status", None, "busy")))) == ["s1"]
    assert ids(await store.search(where("Slot", TokenMatch("status", None, "free")))) == []


async def test_deletion_leaves_a_tombstone_that_search_no_longer_finds(store: Store) -> None:
    await put(store, "Slot", "s1", status="free", index=FREE)

    [deleted] = await store.commit([tombstone("Slot", "s1", 2)])

    assert deleted.deleted and deleted.body is None and deleted.method == "DELETE"
    current = await store.read("Slot", "s1")
    assert current is not None and current.deleted and current.version_id == 2
    assert current.body is None
    page = await store.search(where("Slot", TokenMatch("status", None, "free")))
    assert page.resources == [] and page.total == 0
    assert (await store.search(where("Slot"))).total == 0
    history = await store.history("Slot", "s1")
    assert [(v.version_id, v.deleted) for v in history.versions] == [(2, True), (1, False)]


async def test_a_deleted_resource_is_recreated_from_its_tombstone_version(store: Store) -> None:
    await put(store, "Slot", "s1", status="free", index=FREE)
    await store.commit([tombstone("Slot", "s1", 2)])

    with pytest.raises(WriteConflict):
        await store.commit([version("Slot", "s1", 1, status="free")])
    await put(store, "Slot", "s1", 3, status="free", index=FREE)

    assert ids(await store.search(where("Slot", TokenMatch("status", None, "free")))) == ["s1"]


async def test_read_many_returns_current_versions_and_skips_missing_and_deleted(
        store: Store) -> None:
    await put(store, "Practitioner", "pr1")
    await put(store, "Practitioner", "pr2")
    await put(store, "Practitioner", "pr2", 2, name="updated")
    await put(store, "Practitioner", "gone")
    await store.commit([tombstone("Practitioner", "gone", 2)])
    await put(store, "Patient", "pr3")

    found = await store.read_many("Practitioner", ["pr2", "missing", "gone", "pr1", "pr3"])

    assert sorted((r.id, r.version_id) for r in found) == [("pr1", 1), ("pr2", 2)]
    assert await store.read_many("Practitioner", []) == []


async def test_concurrent_claims_of_one_free_slot_have_exactly_one_winner(store: Store) -> None:
    await put(store, "Slot", "s1", status="free", index=FREE)

    def claim(n: int) -> VersionWrite:
        return version("Slot", "s1", 2, match={"status": "free"}, status="busy",
                       holder=f"client-{n}", index=(TokenEntry("status", None, "busy"),))

    # Open the connections first: a cold pool would serialise the clients and hide a race.
    await asyncio.gather(*(store.ping() for _ in range(50)))
    outcomes = await asyncio.gather(*(store.commit([claim(n)]) for n in range(50)),
                                    return_exceptions=True)

    winners = [o for o in outcomes if isinstance(o, list)]
    assert len(winners) == 1
    assert all(isinstance(o, WriteConflict) for o in outcomes if not isinstance(o, list))
    current = await store.read("Slot", "s1")
    assert current is not None and current.version_id == 2
    assert fields_of(current)["holder"] == fields_of(winners[0][0])["holder"]
    assert (await store.history("Slot", "s1")).total == 2


async def test_the_patients_a_version_refers_to_are_kept_with_it(store: Store) -> None:
    patients = ("Patient/p1", "Patient/p2")
    await put(store, "Appointment", "a1", patients=patients, status="booked")
    await put(store, "Appointment", "a1", 2, patients=(), status="cancelled")

    current = await store.read("Appointment", "a1")
    first = await store.read_version("Appointment", "a1", 1)
    found = await store.search(where("Appointment"))
    history = await store.history(resource_type="Appointment", id="a1")

    assert current is not None and current.patients == ()
    assert first is not None and first.patients == patients
    assert [stored.patients for stored in found.resources] == [()]
    assert [stored.patients for stored in history.versions] == [(), patients]


async def test_a_version_written_without_its_patients_reads_back_as_not_known(
        store: Store) -> None:
    written = await put(store, "Appointment", "a1", status="booked")

    assert written.patients is None
    assert (await store.read("Appointment", "a1")) == written
