"""Contract: each typed predicate, OR within a clause, AND across clauses, and negation."""

from __future__ import annotations

from typing import Literal

from fhir_server.fhir.search.model import (
    Clause,
    DateEntry,
    DateMatch,
    IdMatch,
    ReferenceEntry,
    ReferenceMatch,
    StringEntry,
    StringMatch,
    TokenEntry,
    TokenMatch,
)
from fhir_server.store.protocol import Store

from .factories import ids, put, where

StringMode = Literal["startswith", "contains", "exact"]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
DAY = 86_400_000
JAN_1 = 1_735_689_600_000  # 2025-01-01T00:00:00Z in epoch ms


def status(code: str) -> TokenEntry:
    """A Slot/Appointment status entry without a system."""
    return TokenEntry("status", None, code)


async def test_token_matches_code_with_any_system_a_given_system_or_no_system(
        store: Store) -> None:
    await put(store, "Appointment", "loinc", index=(TokenEntry("service-type", LOINC, "1"),))
    await put(store, "Appointment", "snomed", index=(TokenEntry("service-type", SNOMED, "1"),))
    await put(store, "Appointment", "bare", index=(TokenEntry("service-type", None, "1"),))
    await put(store, "Appointment", "other", index=(TokenEntry("service-type", LOINC, "2"),))

    async def found(system: str | None, code: str | None) -> list[str]:
        page = await store.search(where("Appointment", TokenMatch("service-type", system, code)))
        return sorted(ids(page))

    assert await found(None, "1") == ["bare", "loinc", "snomed"]
    assert await found(LOINC, "1") == ["loinc"]
    assert await found("", "1") == ["bare"]
    assert await found(LOINC, None) == ["loinc", "other"]
    assert await found(None, "3") == []


async def test_token_match_is_scoped_to_its_parameter_and_resource_type(store: Store) -> None:
    await put(store, "Slot", "s1", index=(status("free"),))
    await put(store, "Slot", "s2", index=(TokenEntry("service-type", None, "free"),))
    await put(store, "Appointment", "a1", index=(status("free"),))

    assert ids(await store.search(where("Slot", TokenMatch("status", None, "free")))) == ["s1"]


async def test_reference_matches_by_type_and_id_by_id_alone_or_by_url(store: Store) -> None:
    url = "https://other.example/fhir/Practitioner/p1"
    for id_, entry in [("typed", ReferenceEntry("actor", "Practitioner", "p1")),
                       ("patient", ReferenceEntry("actor", "Patient", "p1")),
                       ("remote", ReferenceEntry("actor", None, None, url)),
                       ("else", ReferenceEntry("actor", "Practitioner", "p2"))]:
        await put(store, "Appointment", id_, index=(entry,))

    async def found(match: ReferenceMatch) -> list[str]:
        return sorted(ids(await store.search(where("Appointment", match))))

    assert await found(ReferenceMatch("actor", "Practitioner", "p1")) == ["typed"]
    assert await found(ReferenceMatch("actor", None, "p1")) == ["patient", "typed"]
    assert await found(ReferenceMatch("actor", None, None, url)) == ["remote"]
    assert await found(ReferenceMatch("actor", "Device", "p1")) == []


async def test_each_date_bound_applies_to_the_stored_range(store: Store) -> None:
    # Three days of one week as half-open [low, high) ranges.
    for day in [0, 1, 2]:
        low = JAN_1 + day * DAY
        await put(store, "Slot", f"day{day}", index=(DateEntry("start", low, low + DAY),))
    day1, day2 = JAN_1 + DAY, JAN_1 + 2 * DAY

    async def found(match: DateMatch) -> list[str]:
        return sorted(ids(await store.search(where("Slot", match))))

    assert await found(DateMatch("start", low_ge=day1)) == ["day1", "day2"]
    assert await found(DateMatch("start", low_lt=day1)) == ["day0"]
    assert await found(DateMatch("start", high_gt=day2)) == ["day2"]
    assert await found(DateMatch("start", high_le=day2)) == ["day0", "day1"]
    assert await found(DateMatch("start", low_ge=day1, high_le=day2)) == ["day1"]


async def test_a_range_matches_when_any_of_its_values_satisfies_all_bounds(store: Store) -> None:
    morning = DateEntry("date", JAN_1 + 9 * 3_600_000, JAN_1 + 10 * 3_600_000)
    next_day = DateEntry("date", JAN_1 + DAY, JAN_1 + 2 * DAY)
    await put(store, "Appointment", "a1", index=(morning, next_day))

    same_value = DateMatch("date", low_ge=JAN_1 + DAY, high_le=JAN_1 + 2 * DAY)
    assert ids(await store.search(where("Appointment", same_value))) == ["a1"]
    split = DateMatch("date", low_ge=JAN_1 + 10 * 3_600_000, high_le=JAN_1 + DAY)
    assert ids(await store.search(where("Appointment", split))) == []


async def test_string_startswith_contains_and_exact(store: Store) -> None:
    await put(store, "Practitioner", "muller", index=(StringEntry("name", "muller", "Müller"),))
    await put(store, "Practitioner", "mueller", index=(StringEntry("name", "mueller", "Mueller"),))
    await put(store, "Practitioner", "samuel", index=(StringEntry("name", "samuel", "Samuel"),))
    await put(store, "Practitioner", "pct", index=(StringEntry("name", "50%_off", "50%_off"),))

    async def found(value: str, mode: StringMode) -> list[str]:
        page = await store.search(where("Practitioner", StringMatch("name", value, mode)))
        return sorted(ids(page))

    assert await found("mu", "startswith") == ["mueller", "muller"]
    assert await found("mul", "startswith") == ["muller"]
    assert await found("muel", "contains") == ["mueller", "samuel"]
    assert await found("Müller", "exact") == ["muller"]
    assert await found("müller", "exact") == []
    assert await found("muller", "exact") == []
    assert await found("50%", "startswith") == ["pct"]
    assert await found("%", "contains") == ["pct"]
    assert await found("5_", "startswith") == []


async def test_id_match_finds_the_listed_ids(store: Store) -> None:
    for name in ["a", "b", "c"]:
        await put(store, "Schedule", name)

    assert sorted(ids(await store.search(where("Schedule", IdMatch(("a", "c", "zz")))))) == [
        "a", "c"]


async def test_id_match_combines_with_other_predicates_and_negation(store: Store) -> None:
    await put(store, "Slot", "a", index=(status("free"),))
    await put(store, "Slot", "b", index=(status("busy"),))
    await put(store, "Slot", "c", index=(status("busy"),))

    free_or_c = Clause((TokenMatch("status", None, "free"), IdMatch(("c",))))
    assert sorted(ids(await store.search(where("Slot", free_or_c)))) == ["a", "c"]
    not_a = Clause((IdMatch(("a",)),), negate=True)
    assert sorted(ids(await store.search(where("Slot", not_a)))) == ["b", "c"]
    assert ids(await store.search(where("Slot", IdMatch(())))) == []
    nothing_excluded = Clause((IdMatch(()),), negate=True)
    assert sorted(ids(await store.search(where("Slot", nothing_excluded)))) == ["a", "b", "c"]


async def test_or_within_a_clause_and_and_across_clauses(store: Store) -> None:
    sch1 = ReferenceEntry("schedule", "Schedule", "1")
    sch2 = ReferenceEntry("schedule", "Schedule", "2")
    await put(store, "Slot", "free1", index=(status("free"), sch1))
    await put(store, "Slot", "tent1", index=(status("busy-tentative"), sch1))
    await put(store, "Slot", "busy1", index=(status("busy"), sch1))
    await put(store, "Slot", "free2", index=(status("free"), sch2))
    either = Clause((TokenMatch("status", None, "free"),
                     TokenMatch("status", None, "busy-tentative")))

    page = await store.search(where("Slot", either))
    assert sorted(ids(page)) == ["free1", "free2", "tent1"]

    page = await store.search(where("Slot", either, ReferenceMatch("schedule", "Schedule", "1")))
    assert sorted(ids(page)) == ["free1", "tent1"]


async def test_negated_clause_also_matches_resources_without_the_parameter(store: Store) -> None:
    await put(store, "Slot", "free", index=(status("free"),))
    await put(store, "Slot", "busy", index=(status("busy"),))
    await put(store, "Slot", "tent", index=(status("busy-tentative"),))
    await put(store, "Slot", "unset")

    not_free = Clause((TokenMatch("status", None, "free"),), negate=True)
    assert sorted(ids(await store.search(where("Slot", not_free)))) == ["busy", "tent", "unset"]

    neither = Clause((TokenMatch("status", None, "free"), TokenMatch("status", None, "busy")),
                     negate=True)
    assert sorted(ids(await store.search(where("Slot", neither)))) == ["tent", "unset"]


async def test_updated_index_values_replace_the_old_ones(store: Store) -> None:
    await put(store, "Slot", "s1", 1, index=(status("free"), StringEntry("comment", "a", "a")))
    await put(store, "Slot", "s1", 2, index=(status("busy"),))

    assert ids(await store.search(where("Slot", TokenMatch("status", None, "free")))) == []
    assert ids(await store.search(where("Slot", StringMatch("comment", "a")))) == []
    assert ids(await store.search(where("Slot", TokenMatch("status", None, "busy")))) == ["s1"]


async def test_search_without_clauses_lists_every_current_resource_of_the_type(
        store: Store) -> None:
    await put(store, "Slot", "s1")
    await put(store, "Slot", "s2")
    await put(store, "Schedule", "x")

    page = await store.search(where("Slot"))

    assert sorted(ids(page)) == ["s1", "s2"] and page.total == 2
    assert [r.version_id for r in page.resources] == [1, 1]
