"""Booking over HTTP: many concurrent clients, one winner per slot; the state machine over REST.

The SQLite adapter runs each store call synchronously, so without help concurrent requests
would interleave only around HTTP parsing and never between a claim's read and its write:
a check-then-write bug would pass. The race tests therefore run on a store that waits a random
sub-millisecond latency before every operation, as a networked store (MongoDB) does anyway, so
the clients really interleave inside the claim on both stores. Checked: a claim that re-reads
the slot and writes over that fresh version (check-then-write) fails both race tests on both
stores in every run.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import httpx

from tests.e2e.checks import outcome_issues

CLIENTS = 50
DAY = "2030-03-04"


def at(time: str) -> str:
    return f"{DAY}T{time}:00Z"


async def put(client: httpx.AsyncClient, resource: dict[str, Any]) -> None:
    response = await client.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text


async def schedule_with_slot(client: httpx.AsyncClient, actor: str, slot_id: str,
                             start: str, end: str) -> None:
    schedule_id = f"sch-{actor.split('/')[1]}"
    await put(client, {"resourceType": "Schedule", "id": schedule_id,
                       "actor": [{"reference": actor}]})
    await put(client, {"resourceType": "Slot", "id": slot_id, "status": "free",
                       "schedule": {"reference": f"Schedule/{schedule_id}"},
                       "start": at(start), "end": at(end)})


def appointment(slots: Sequence[str], actors: Sequence[str], *, start: str = "10:00",
                end: str = "10:30", status: str = "booked", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": status, "start": at(start), "end": at(end),
            "slot": [{"reference": f"Slot/{s}"} for s in slots],
            "participant": [{"actor": {"reference": a}, "status": "accepted"} for a in actors],
            **extra}


async def total(client: httpx.AsyncClient, path: str) -> int:
    response = await client.get(path, params={"_count": "0"})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def read(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_fifty_clients_booking_one_slot_have_exactly_one_winner(
        racing: httpx.AsyncClient) -> None:
    await schedule_with_slot(racing, "Practitioner/ada", "s1", "10:00", "10:30")
    slot_versions = await total(racing, "Slot/s1/_history")

    responses = await asyncio.gather(*(
        racing.post("Appointment", json=appointment(["s1"], [f"Patient/p{n}", "Practitioner/ada"]))
        for n in range(CLIENTS)))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: CLIENTS - 1}
    for response in responses:
        if response.status_code == 409:
            assert outcome_issues(response, 409)[0]["code"] == "conflict"
    [winner] = [r.json() for r in responses if r.status_code == 201]
    assert (await read(racing, "Slot/s1"))["status"] == "busy"
    booked = await read(racing, "Appointment?status=booked")
    assert [e["resource"]["id"] for e in booked["entry"]] == [winner["id"]]
    assert await total(racing, "Appointment/_history") == 1
    assert await total(racing, "Slot/s1/_history") == slot_versions + 2  # claimed, then busy


PRACTITIONERS = [f"Practitioner/dr{n}" for n in range(4)]
ROOMS = [f"Location/room{n}" for n in range(3)]
TIMES = [("10:00", "10:30"), ("10:30", "11:00")]


async def test_twenty_clients_booking_practitioner_and_room_pairs_double_book_no_actor(
        racing: httpx.AsyncClient) -> None:
    for actor in PRACTITIONERS + ROOMS:
        for start, end in TIMES:
            await schedule_with_slot(racing, actor, f"{actor.split('/')[1]}-{start[:2]}{start[3:]}",
                                     start, end)
    chooser = random.Random(7)
    requests = []
    for n in range(20):
        practitioner, room = chooser.choice(PRACTITIONERS), chooser.choice(ROOMS)
        start, end = chooser.choice(TIMES)
        slots = [f"{a.split('/')[1]}-{start[:2]}{start[3:]}" for a in (practitioner, room)]
        requests.append(appointment(slots, [f"Patient/p{n}", practitioner, room],
                                    start=start, end=end))

    responses = await asyncio.gather(*(racing.post("Appointment", json=r) for r in requests))

    assert {r.status_code for r in responses} <= {201, 409}
    winners = [r.json() for r in responses if r.status_code == 201]
    assert len(winners) >= 2
    for actor in PRACTITIONERS + ROOMS:
        bundle = await read(racing, f"Appointment?actor={actor}&status=booked&_count=100")
        mine = [e["resource"] for e in bundle.get("entry", [])]
        for first, second in combinations(mine, 2):
            assert first["end"] <= second["start"] or second["end"] <= first["start"], \
                f"{actor} is double-booked: {first['id']} and {second['id']}"
    busy = await read(racing, "Slot?status=busy&_count=100")
    assert len(busy.get("entry", [])) == 2 * len(winners)
    assert await total(racing, "Appointment/_history") == len(winners)


async def test_the_state_machine_over_rest(client: httpx.AsyncClient) -> None:
    await schedule_with_slot(client, "Practitioner/ada", "s1", "10:00", "10:30")
    created = await client.post("Appointment",
                                json=appointment(["s1"], ["Patient/maria", "Practitioner/ada"]))
    assert created.status_code == 201, created.text
    current = created.json()
    for status in ("arrived", "fulfilled"):
        moved = await client.put(f"Appointment/{current['id']}", json={**current, "status": status})
        assert moved.status_code == 200, moved.text
        current = moved.json()

    refused = await client.put(f"Appointment/{current['id']}", json={**current, "status": "booked"})

    assert outcome_issues(refused, 422)[0]["code"] == "business-rule"
    assert (await read(client, f"Appointment/{current['id']}"))["status"] == "fulfilled"
    assert (await read(client, "Slot/s1"))["status"] == "busy"
    created_as = await client.post("Appointment", json=appointment(
        ["s1"], ["Patient/maria"], status="fulfilled"))
    outcome_issues(created_as, 422)


async def test_cancel_frees_the_slot_for_the_next_booking_and_keeps_the_reason(
        client: httpx.AsyncClient) -> None:
    await schedule_with_slot(client, "Practitioner/ada", "s1", "10:00", "10:30")
    first = (await client.post("Appointment", json=appointment(
        ["s1"], ["Patient/maria", "Practitioner/ada"]))).json()
    taken = await client.post("Appointment",
                              json=appointment(["s1"], ["Patient/james", "Practitioner/ada"]))
    assert outcome_issues(taken, 409)[0]["code"] == "conflict"
    reason = {"text": "Patient called to cancel"}

    cancelled = await client.put(f"Appointment/{first['id']}",
                                 json={**first, "status": "cancelled", "cancelationReason": reason})

    assert cancelled.status_code == 200, cancelled.text
    assert (await read(client, "Slot/s1"))["status"] == "free"
    again = await client.post("Appointment",
                              json=appointment(["s1"], ["Patient/james", "Practitioner/ada"]))
    assert again.status_code == 201, again.text
    assert (await read(client, "Slot/s1"))["status"] == "busy"
    assert (await read(client, f"Appointment/{first['id']}"))["cancelationReason"] == reason


async def test_a_rescheduled_appointment_keeps_both_versions_in_its_history(
        client: httpx.AsyncClient) -> None:
    await schedule_with_slot(client, "Practitioner/ada", "s1", "10:00", "10:30")
    await schedule_with_slot(client, "Practitioner/ada", "s2", "11:00", "11:30")
    first = (await client.post("Appointment", json=appointment(
        ["s1"], ["Patient/maria", "Practitioner/ada"]))).json()

    moved = await client.put(f"Appointment/{first['id']}", json={
        **first, "start": at("11:00"), "end": at("11:30"), "slot": [{"reference": "Slot/s2"}]})

    assert moved.status_code == 200, moved.text
    history = await read(client, f"Appointment/{first['id']}/_history")
    assert [e["resource"]["start"] for e in history["entry"]] == [at("11:00"), at("10:00")]
    assert [(await read(client, f"Slot/{s}"))["status"] for s in ("s1", "s2")] == ["free", "busy"]


async def test_deleting_a_booked_appointment_frees_its_slot(client: httpx.AsyncClient) -> None:
    await schedule_with_slot(client, "Practitioner/ada", "s1", "10:00", "10:30")
    first = (await client.post("Appointment", json=appointment(
        ["s1"], ["Patient/maria", "Practitioner/ada"]))).json()

    deleted = await client.delete(f"Appointment/{first['id']}")

    assert deleted.status_code in (200, 204)
    assert (await read(client, "Slot/s1"))["status"] == "free"


async def test_overbooking_over_rest_needs_the_extension(client: httpx.AsyncClient) -> None:
    await schedule_with_slot(client, "Practitioner/ada", "s1", "10:00", "10:30")
    await client.post("Appointment",
                      json=appointment(["s1"], ["Patient/maria", "Practitioner/ada"]))
    reason = [{"url": "http://fhir-scheduler.org/fhir/StructureDefinition/overbooking",
               "valueString": "Urgent: chest pain"}]

    refused = await client.post("Appointment", json=appointment(
        ["s1"], ["Patient/james", "Practitioner/ada"]))
    allowed = await client.post("Appointment", json=appointment(
        ["s1"], ["Patient/james", "Practitioner/ada"], extension=reason))

    outcome_issues(refused, 409)
    assert allowed.status_code == 201, allowed.text
    slot = await read(client, "Slot/s1")
    assert slot["overbooked"] is True and "chest pain" in slot["comment"]
