"""Searching Slots and Schedules over HTTP: availability windows, actors, codes and statuses."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.search_factories import (
    APPOINTMENT_TYPE,
    CARDIOLOGY,
    CONSULTATION,
    DERMATOLOGY,
    ECG,
    ID_SYSTEM,
    SERVICE_CATEGORY,
    concept,
    found,
    identifier,
    location,
    practitioner,
    put,
    schedule,
    search,
    slot,
)


@pytest.fixture
async def clinic(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Dr Okafor (cardiology, consultations) and Dr Reyes (dermatology, ECG), in March 2026.

    Okafor's horizon is March 1-15, Reyes' March 10-31, the ECG room's is open-ended from April.
    Slots: `s1` 09:00-09:30 and `s2` 09:30-10:00 on March 10 (Okafor, s2 busy), `s3` 14:00-15:00
    on March 11 (Reyes).
    """
    await put(
        client,
        practitioner("okafor", "Okafor", "Amara"), practitioner("reyes", "Reyes", "Daniel"),
        location("ecg-room", "ECG room"),
        schedule("sched-okafor", "Practitioner/okafor", start="2026-03-01T00:00:00Z",
                 end="2026-03-15T23:59:59Z", identifier=identifier("SCH-OKAFOR"),
                 serviceCategory=[concept((SERVICE_CATEGORY, "17"))],
                 serviceType=[concept(CONSULTATION)], specialty=[concept(CARDIOLOGY)]),
        schedule("sched-reyes", "Practitioner/reyes", "Location/ecg-room",
                 start="2026-03-10", end="2026-03-31", identifier=identifier("SCH-REYES"),
                 serviceType=[concept(ECG)], specialty=[concept(DERMATOLOGY)]),
        schedule("sched-room", "Location/ecg-room", start="2026-04-01T08:00:00Z",
                 active=False),
        slot("s1", "sched-okafor", "2026-03-10T09:00:00Z", "2026-03-10T09:30:00Z",
             identifier=identifier("SLOT-1"), serviceType=[concept(CONSULTATION)],
             specialty=[concept(CARDIOLOGY)],
             appointmentType=concept((APPOINTMENT_TYPE, "ROUTINE"))),
        slot("s2", "sched-okafor", "2026-03-10T09:30:00Z", "2026-03-10T10:00:00Z",
             status="busy", identifier=identifier("SLOT-2"),
             serviceType=[concept(CONSULTATION)], specialty=[concept(CARDIOLOGY)],
             appointmentType=concept((APPOINTMENT_TYPE, "FOLLOWUP"))),
        slot("s3", "sched-reyes", "2026-03-11T14:00:00Z", "2026-03-11T15:00:00Z",
             identifier=identifier("SLOT-3"), serviceType=[concept(ECG)],
             specialty=[concept(DERMATOLOGY)]),
    )
    return client


@pytest.mark.parametrize(("query", "expected"), [
    ("schedule=Schedule/sched-okafor", {"s1", "s2"}),
    ("schedule=sched-reyes", {"s3"}),
    ("schedule:Schedule=sched-okafor", {"s1", "s2"}),
    ("schedule=sched-okafor,sched-reyes", {"s1", "s2", "s3"}),
    ("status=free", {"s1", "s3"}),
    ("status=busy", {"s2"}),
    ("status:not=free", {"s2"}),
    (f"service-type={CONSULTATION[0]}|{CONSULTATION[1]}", {"s1", "s2"}),
    (f"service-type={ECG[1]}", {"s3"}),
    (f"specialty={DERMATOLOGY[0]}|{DERMATOLOGY[1]}", {"s3"}),
    (f"specialty:not={CARDIOLOGY[1]}", {"s3"}),
    ("appointment-type=ROUTINE", {"s1"}),
    (f"appointment-type={APPOINTMENT_TYPE}|", {"s1", "s2"}),
    ("identifier=SLOT-2", {"s2"}),
    (f"identifier={ID_SYSTEM}|SLOT-3", {"s3"}),
    ("identifier=|SLOT-3", set()),  # `|code` means "no system", and SLOT-3 has one
    ("start=2026-03-10", {"s1", "s2"}),
    ("start=2026-03-10T09:30:00Z", {"s2"}),
    ("start=ge2026-03-10T09:30:00Z", {"s2", "s3"}),
    ("start=lt2026-03-11", {"s1", "s2"}),
    ("start=le2026-03-10", {"s1", "s2"}),
    ("start=gt2026-03-10", {"s3"}),
    ("start=ge2026-03-11", {"s3"}),
    ("start=ne2026-03-10", {"s3"}),
    ("start=sa2026-03-10", {"s3"}),
    ("start=eb2026-03-11", {"s1", "s2"}),
    ("end=2026-03-10T10:00:00Z", {"s2"}),
    ("end=gt2026-03-10T09:30:00Z", {"s2", "s3"}),
    ("end=le2026-03-10T09:30:00Z", {"s1"}),
    ("end=2026-03-11", {"s3"}),
])
async def test_slot_search_by_parameter(clinic: httpx.AsyncClient, query: str,
                                        expected: set[str]) -> None:
    assert await found(clinic, f"Slot?{query}") == expected


async def test_free_slots_overlapping_a_window_with_start_and_the_custom_end(
        clinic: httpx.AsyncClient) -> None:
    # The window 09:15-09:45 overlaps s1 (ends 09:30) and s2 (starts 09:30) but not s3.
    window = "start=lt2026-03-10T09:45:00Z&end=gt2026-03-10T09:15:00Z"
    assert await found(clinic, f"Slot?{window}") == {"s1", "s2"}
    assert await found(clinic, f"Slot?{window}&status=free") == {"s1"}
    # A window that ends exactly when s1 starts does not overlap it.
    assert await found(clinic, "Slot?start=lt2026-03-10T09:00:00Z&end=gt2026-03-10T08:00:00Z") \
        == set()


async def test_slots_of_a_practitioner_through_a_schedule_chain(clinic: httpx.AsyncClient) -> None:
    assert await found(clinic, "Slot?schedule.actor=Practitioner/okafor") == {"s1", "s2"}
    assert await found(clinic, "Slot?schedule.actor=Location/ecg-room") == {"s3"}
    assert await found(clinic, "Slot?schedule.actor=Practitioner/okafor&status=free") == {"s1"}
    assert await found(clinic, "Slot?schedule.active=false") == set()


@pytest.mark.parametrize(("query", "expected"), [
    ("actor=Practitioner/okafor", {"sched-okafor"}),
    ("actor=Location/ecg-room", {"sched-reyes", "sched-room"}),
    ("actor:Location=ecg-room", {"sched-reyes", "sched-room"}),
    ("actor=reyes", {"sched-reyes"}),
    ("actor=Practitioner/okafor,Practitioner/reyes", {"sched-okafor", "sched-reyes"}),
    ("active=true", {"sched-okafor", "sched-reyes"}),
    ("active=false", {"sched-room"}),
    (f"service-type={CONSULTATION[0]}|{CONSULTATION[1]}", {"sched-okafor"}),
    (f"service-type={ECG[1]}", {"sched-reyes"}),
    (f"specialty={DERMATOLOGY[1]}", {"sched-reyes"}),
    (f"specialty={CARDIOLOGY[0]}|", {"sched-okafor", "sched-reyes"}),
    ("identifier=SCH-REYES", {"sched-reyes"}),
    (f"identifier={ID_SYSTEM}|SCH-OKAFOR", {"sched-okafor"}),
    ("service-category=17", {"sched-okafor"}),
])
async def test_schedule_search_by_parameter(clinic: httpx.AsyncClient, query: str,
                                            expected: set[str]) -> None:
    assert await found(clinic, f"Schedule?{query}") == expected


@pytest.mark.parametrize(("query", "expected"), [
    # A day inside a horizon is not *equal* to it: eq needs the horizon inside the day.
    ("date=2026-03-12", set()),
    ("date=2026-03", {"sched-okafor", "sched-reyes"}),
    ("date=ne2026-03", {"sched-room"}),
    # gt/lt: some part of the horizon lies after / before the value.
    ("date=gt2026-03-20", {"sched-reyes", "sched-room"}),
    ("date=lt2026-03-05", {"sched-okafor"}),
    ("date=ge2026-03-20", {"sched-reyes", "sched-room"}),
    ("date=le2026-03-09", {"sched-okafor"}),
    # sa/eb: the whole horizon starts after / ends before the value.
    ("date=sa2026-03-31", {"sched-room"}),
    ("date=sa2026-03-05", {"sched-reyes", "sched-room"}),
    ("date=eb2026-03-16", {"sched-okafor"}),
    ("date=eb2026-04-01", {"sched-okafor", "sched-reyes"}),
    # Availability over a window: horizon starts before its end and ends after its start.
    ("date=lt2026-03-13&date=gt2026-03-11", {"sched-okafor", "sched-reyes"}),
])
async def test_schedule_planning_horizon_by_date_prefix(clinic: httpx.AsyncClient, query: str,
                                                        expected: set[str]) -> None:
    assert await found(clinic, f"Schedule?{query}") == expected


async def test_slots_include_their_schedule_and_schedules_their_actors(
        clinic: httpx.AsyncClient) -> None:
    bundle = await search(clinic, "Slot?status=free&_include=Slot:schedule")
    assert {e["resource"]["id"]: e["search"]["mode"] for e in bundle["entry"]} == {
        "s1": "match", "s3": "match", "sched-okafor": "include", "sched-reyes": "include"}
    assert bundle["total"] == 2

    bundle = await search(clinic, "Schedule?_id=sched-reyes&_include=Schedule:actor")
    assert {(e["resource"]["resourceType"], e["resource"]["id"], e["search"]["mode"])
            for e in bundle["entry"]} == {
        ("Schedule", "sched-reyes", "match"), ("Practitioner", "reyes", "include"),
        ("Location", "ecg-room", "include")}

    bundle = await search(clinic, "Schedule?_id=sched-okafor&_revinclude=Slot:schedule")
    assert {(e["resource"]["id"], e["search"]["mode"]) for e in bundle["entry"]} == {
        ("sched-okafor", "match"), ("s1", "include"), ("s2", "include")}


async def test_approximate_dates_find_nearby_horizons_and_slots_but_not_distant_ones(
        clinic: httpx.AsyncClient) -> None:
    # `ap` widens by 10% of the distance from now (at least a day), so only "far" is asserted.
    await put(clinic, schedule("sched-2036", "Practitioner/okafor", start="2036-01-01",
                               end="2036-12-31"),
              slot("s-2036", "sched-2036", "2036-03-10T09:00:00Z", "2036-03-10T09:30:00Z"))
    near_horizons = await found(clinic, "Schedule?date=ap2026-03-12")
    assert {"sched-okafor", "sched-reyes"} <= near_horizons
    assert "sched-2036" not in near_horizons
    near_slots = await found(clinic, "Slot?start=ap2026-03-10T09:00:00Z")
    assert {"s1", "s2"} <= near_slots
    assert "s-2036" not in near_slots
    assert await found(clinic, "Slot?start=ap2036-03-10") == {"s-2036"}
