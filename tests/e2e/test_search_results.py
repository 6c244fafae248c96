"""The searchset a client gets back: totals, paging links, sorting, includes and result controls."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.search_factories import (
    appointment,
    entries,
    found,
    ids,
    link,
    location,
    patient,
    practitioner,
    put,
    ref,
    relative,
    schedule,
    search,
    slot,
)


def slot_at(number: int, schedule_id: str = "sched") -> dict:
    """The `number`th half-hour slot of March 2, 2026 (ids sort like their start times)."""
    hour, half = divmod(number, 2)
    start = f"2026-03-02T{hour:02d}:{30 * half:02d}:00Z"
    end_hour, end_half = divmod(number + 1, 2)
    end = (f"2026-03-02T{end_hour:02d}:{30 * end_half:02d}:00Z" if end_hour < 24
           else "2026-03-03T00:00:00Z")
    return slot(f"slot-{number:02d}", schedule_id, start, end)


@pytest.fixture
async def day_of_slots(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """48 half-hour slots on one schedule, stored out of time order, plus 7 on a second one."""
    await put(client, practitioner("okafor", "Okafor", "Amara"),
              schedule("sched", "Practitioner/okafor"), schedule("other", "Practitioner/okafor"))
    order = [(n * 17) % 48 for n in range(48)]  # a permutation: creation order != start order
    await put(client, *(slot_at(n) for n in order))
    await put(client, *(slot(f"other-{n}", "other", f"2026-03-05T0{n}:00:00Z",
                             f"2026-03-05T0{n}:30:00Z") for n in range(7)))
    return client


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_a_searchset_has_a_total_a_self_link_and_match_entries(
        day_of_slots: httpx.AsyncClient) -> None:
    bundle = await search(day_of_slots, "Slot?schedule=other")
    assert bundle["total"] == 7
    assert len(bundle["entry"]) == 7
    assert {e["search"]["mode"] for e in bundle["entry"]} == {"match"}
    assert {e["fullUrl"] for e in bundle["entry"]} == {
        f"http://testserver/fhir/Slot/other-{n}" for n in range(7)}
    self_link = link(bundle, "self")
    assert self_link is not None and self_link.startswith("http://testserver/fhir/Slot?")
    assert query_of(self_link)["schedule"] == ["other"]
    assert link(bundle, "next") is None and link(bundle, "previous") is None


async def test_default_page_is_fifty_and_count_is_clamped_to_a_thousand(
        day_of_slots: httpx.AsyncClient) -> None:
    bundle = await search(day_of_slots, "Slot")
    assert bundle["total"] == 55
    assert len(bundle["entry"]) == 50
    assert link(bundle, "next") is not None

    bundle = await search(day_of_slots, "Slot?_count=5000")
    assert len(bundle["entry"]) == 55
    assert query_of(link(bundle, "self") or "")["_count"] == ["1000"]

    bundle = await search(day_of_slots, "Slot?_count=3")
    assert len(bundle["entry"]) == 3 and bundle["total"] == 55


async def test_following_next_links_visits_every_match_exactly_once(
        day_of_slots: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url: str | None = "Slot?schedule=sched&status=free&_count=10&_sort=start"
    pages = 0
    while url is not None:
        bundle = await search(day_of_slots, url)
        assert bundle["total"] == 48
        seen.extend(ids(bundle))
        next_url = link(bundle, "next")
        url = relative(next_url) if next_url else None
        pages += 1
        assert pages <= 5
    assert pages == 5
    assert seen == [f"slot-{n:02d}" for n in range(48)]


async def test_previous_links_walk_back_to_the_first_page(day_of_slots: httpx.AsyncClient) -> None:
    first = await search(day_of_slots, "Slot?schedule=sched&_sort=start&_count=20")
    second = await search(day_of_slots, relative(link(first, "next") or ""))
    third = await search(day_of_slots, relative(link(second, "next") or ""))
    assert ids(third) == [f"slot-{n:02d}" for n in range(40, 48)]
    assert link(third, "next") is None
    back = await search(day_of_slots, relative(link(third, "previous") or ""))
    assert ids(back) == ids(second)
    assert ids(await search(day_of_slots, relative(link(back, "previous") or ""))) == ids(first)
    assert link(first, "previous") is None
    # The self link reproduces the page it describes.
    assert ids(await search(day_of_slots, relative(link(second, "self") or ""))) == ids(second)


async def test_sort_by_start_ascending_and_descending(day_of_slots: httpx.AsyncClient) -> None:
    ascending = ids(await search(day_of_slots, "Slot?schedule=sched&_sort=start&_count=48"))
    assert ascending == [f"slot-{n:02d}" for n in range(48)]
    descending = ids(await search(day_of_slots, "Slot?schedule=sched&_sort=-start&_count=48"))
    assert descending == list(reversed(ascending))


async def test_sort_by_last_updated(client: httpx.AsyncClient) -> None:
    for name in ("first", "second", "third"):
        await put(client, patient(name, "Doe", name.title()))
        await asyncio.sleep(0.005)  # lastUpdated has millisecond precision
    await put(client, patient("first", "Doe", "First", gender="female"))  # now the newest
    assert ids(await search(client, "Patient?_sort=_lastUpdated")) == ["second", "third", "first"]
    assert ids(await search(client, "Patient?_sort=-_lastUpdated")) == ["first", "third", "second"]


async def test_sort_appointments_by_date(client: httpx.AsyncClient) -> None:
    await put(client, patient("p", "Doe", "Pat"),
              appointment("late", "Patient/p", start="2026-05-01T10:00:00Z",
                          end="2026-05-01T10:30:00Z"),
              appointment("early", "Patient/p", start="2026-04-01T10:00:00Z",
                          end="2026-04-01T10:30:00Z"),
              appointment("middle", "Patient/p", start="2026-04-15T10:00:00Z",
                          end="2026-04-15T10:30:00Z"))
    assert ids(await search(client, "Appointment?_sort=date")) == ["early", "middle", "late"]
    assert ids(await search(client, "Appointment?_sort=-date")) == ["late", "middle", "early"]


async def test_search_by_last_updated(client: httpx.AsyncClient) -> None:
    await put(client, patient("old", "Doe", "Old"))
    await asyncio.sleep(0.01)
    await put(client, patient("new", "Doe", "New"))
    stamp = (await client.get("Patient/new")).json()["meta"]["lastUpdated"]
    assert await found(client, f"Patient?_lastUpdated=ge{stamp}") == {"new"}
    assert await found(client, f"Patient?_lastUpdated=lt{stamp}") == {"old"}
    assert await found(client, "Patient?_lastUpdated=gt2000-01-01") == {"old", "new"}
    assert await found(client, "Patient?_lastUpdated=lt2000-01-01") == set()


async def test_summary_count_gives_only_the_total(day_of_slots: httpx.AsyncClient) -> None:
    bundle = await search(day_of_slots, "Slot?schedule=other&_summary=count")
    assert bundle["total"] == 7
    assert "entry" not in bundle
    assert link(bundle, "next") is None


async def test_total_none_leaves_out_the_total_but_still_pages(
        day_of_slots: httpx.AsyncClient) -> None:
    bundle = await search(day_of_slots, "Slot?schedule=sched&_total=none&_count=40")
    assert "total" not in bundle
    assert len(bundle["entry"]) == 40
    rest = await search(day_of_slots, relative(link(bundle, "next") or ""))
    assert len(rest["entry"]) == 8


async def test_elements_returns_only_those_elements_marked_subsetted(
        day_of_slots: httpx.AsyncClient) -> None:
    bundle = await search(day_of_slots, "Slot?_id=slot-01&_elements=start,status")
    [resource] = entries(bundle)
    assert set(resource) == {"resourceType", "id", "meta", "start", "status"}
    assert resource["start"] == "2026-03-02T00:30:00Z"
    assert any(tag.get("code") == "SUBSETTED" for tag in resource["meta"]["tag"])
    # Without _elements the stored resource comes back whole and untagged.
    [whole] = entries(await search(day_of_slots, "Slot?_id=slot-01"))
    assert whole["schedule"] == ref("Schedule/sched")
    assert not any(tag.get("code") == "SUBSETTED" for tag in whole["meta"].get("tag", []))


@pytest.fixture
async def booked(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Two booked appointments of María, each with a doctor, a room and a slot."""
    await put(client,
              patient("maria", "García", "María"), practitioner("okafor", "Okafor", "Amara"),
              location("room-1", "Room 1"), schedule("sched", "Practitioner/okafor"),
              slot("s1", "sched", "2026-03-10T09:00:00Z", "2026-03-10T09:30:00Z"),
              slot("s2", "sched", "2026-03-11T09:00:00Z", "2026-03-11T09:30:00Z"),
              appointment("a1", "Patient/maria", "Practitioner/okafor", "Location/room-1",
                          start="2026-03-10T09:00:00Z", end="2026-03-10T09:30:00Z",
                          slot=[ref("Slot/s1")]),
              appointment("a2", "Patient/maria", "Practitioner/okafor",
                          start="2026-03-11T09:00:00Z", end="2026-03-11T09:30:00Z",
                          slot=[ref("Slot/s2")]))
    return client


@pytest.mark.parametrize(("include", "included"), [
    ("Appointment:patient", {"Patient/maria"}),
    ("Appointment:practitioner", {"Practitioner/okafor"}),
    ("Appointment:location", {"Location/room-1"}),
    ("Appointment:slot", {"Slot/s1", "Slot/s2"}),
    ("Appointment:actor:Location", {"Location/room-1"}),
])
async def test_appointment_includes(booked: httpx.AsyncClient, include: str,
                                    included: set[str]) -> None:
    bundle = await search(booked, f"Appointment?_include={include}")
    modes = {(e["resource"]["resourceType"] + "/" + e["resource"]["id"], e["search"]["mode"])
             for e in bundle["entry"]}
    assert modes == {("Appointment/a1", "match"), ("Appointment/a2", "match")} | {
        (key, "include") for key in included}
    assert bundle["total"] == 2  # included resources do not count


async def test_several_includes_together_list_each_resource_once(booked: httpx.AsyncClient) -> None:
    bundle = await search(booked, "Appointment?_include=Appointment:patient"
                                  "&_include=Appointment:actor&_include=Appointment:slot")
    keys = [e["resource"]["resourceType"] + "/" + e["resource"]["id"] for e in bundle["entry"]]
    assert sorted(keys) == sorted(["Appointment/a1", "Appointment/a2", "Patient/maria",
                                   "Practitioner/okafor", "Location/room-1", "Slot/s1",
                                   "Slot/s2"])


async def test_unknown_parameter_is_refused_with_an_operation_outcome(
        booked: httpx.AsyncClient) -> None:
    response = await booked.get("Appointment?colour=blue")
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "colour" in str(outcome)


async def test_lenient_handling_ignores_an_unknown_parameter(booked: httpx.AsyncClient) -> None:
    bundle = await search(booked, "Appointment?colour=blue&date=2026-03-10",
                          headers={"Prefer": "handling=lenient"})
    assert ids(bundle) == ["a1"]
    self_query = query_of(link(bundle, "self") or "")
    assert "colour" not in self_query
    assert self_query["date"] == ["2026-03-10"]


async def test_lenient_handling_ignores_unknown_sort_and_include(booked: httpx.AsyncClient) -> None:
    bundle = await search(booked, "Appointment?_sort=colour&_include=Appointment:colour",
                          headers={"Prefer": "handling=lenient"})
    assert set(ids(bundle)) == {"a1", "a2"}
    assert ids(bundle, "include") == []
    self_query = query_of(link(bundle, "self") or "")
    assert "_sort" not in self_query and "_include" not in self_query


async def test_post_search_with_a_form_body_matches_get(booked: httpx.AsyncClient) -> None:
    query = "patient=Patient/maria&date=ge2026-03-11&_include=Appointment:slot"
    by_get = await search(booked, f"Appointment?{query}")
    response = await booked.post("Appointment/_search", content=query,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    by_post = response.json()
    assert by_post["total"] == by_get["total"] == 1
    assert [(e["resource"]["id"], e["search"]["mode"]) for e in by_post["entry"]] == \
        [(e["resource"]["id"], e["search"]["mode"]) for e in by_get["entry"]] == \
        [("a2", "match"), ("s2", "include")]


async def test_format_json_is_accepted_and_xml_is_not(booked: httpx.AsyncClient) -> None:
    bundle = await search(booked, "Appointment?_format=json&patient=maria")
    assert set(ids(bundle)) == {"a1", "a2"}
    response = await booked.get("Appointment?_format=application/fhir%2Bjson")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert (await booked.get("Appointment?_format=xml")).status_code == 406


async def test_search_on_an_unsupported_type_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("Observation?code=x")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_include_iterate_follows_references_of_included_resources(
        booked: httpx.AsyncClient) -> None:
    bundle = await search(booked, "Appointment?_id=a2&_include=Appointment:slot"
                                  "&_include:iterate=Slot:schedule"
                                  "&_include:iterate=Schedule:actor")
    assert ids(bundle) == ["a2"]
    assert {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]
            if e["search"]["mode"] == "include"} == {
        ("Slot", "s2"), ("Schedule", "sched"), ("Practitioner", "okafor")}
    # Without :iterate an include only follows the matches' own references.
    plain = await search(booked, "Appointment?_id=a2&_include=Appointment:slot")
    assert ids(plain, "include") == ["s2"]
