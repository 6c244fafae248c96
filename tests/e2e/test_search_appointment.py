"""Searching Appointments and AppointmentResponses over HTTP by every parameter a client uses."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.search_factories import (
    APPOINTMENT_TYPE,
    CARDIOLOGY,
    CHEST_PAIN,
    CONSULTATION,
    DERMATOLOGY,
    ECG,
    HEADACHE,
    ID_SYSTEM,
    SERVICE_CATEGORY,
    appointment,
    appointment_response,
    concept,
    found,
    identifier,
    location,
    patient,
    practitioner,
    put,
    ref,
    schedule,
    slot,
)


@pytest.fixture
async def clinic(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Two patients, two doctors, two rooms, and three appointments between them.

    - `a1` booked: María with Dr Okafor in room-1, cardiology consultation for chest pain.
    - `a2` proposed: James with Dr Reyes in room-2, dermatology ECG for a headache.
    - `a3` cancelled: María with Dr Reyes in room-2, no codes.
    """
    await put(
        client,
        patient("maria", "García", "María"), patient("james", "Wilson", "James"),
        practitioner("okafor", "Okafor", "Amara"), practitioner("reyes", "Reyes", "Daniel"),
        location("room-1", "Exam room 1"), location("room-2", "Exam room 2"),
        schedule("sched-okafor", "Practitioner/okafor"),
        slot("slot-1", "sched-okafor", "2026-03-10T09:00:00Z", "2026-03-10T09:30:00Z"),
        slot("slot-2", "sched-okafor", "2026-03-12T09:00:00Z", "2026-03-12T09:30:00Z"),
        appointment(
            "a1", "Patient/maria", "Practitioner/okafor", "Location/room-1",
            start="2026-03-10T09:00:00Z", end="2026-03-10T09:30:00Z",
            identifier=identifier("APT-1"),
            appointmentType=concept((APPOINTMENT_TYPE, "ROUTINE")),
            reasonCode=[concept(CHEST_PAIN)],
            serviceCategory=[concept((SERVICE_CATEGORY, "17"))],
            serviceType=[concept(CONSULTATION)],
            specialty=[concept(CARDIOLOGY)],
            slot=[ref("Slot/slot-1")],
            basedOn=[ref("ServiceRequest/referral-1")]),
        appointment(
            "a2", "Patient/james", "Practitioner/reyes", "Location/room-2",
            status="proposed", part_status="needs-action",
            identifier=identifier("APT-2"),
            appointmentType=concept((APPOINTMENT_TYPE, "FOLLOWUP")),
            reasonCode=[concept(HEADACHE)],
            serviceType=[concept(ECG)],
            specialty=[concept(DERMATOLOGY)],
            slot=[ref("Slot/slot-2")]),
    )
    # The state machine starts no appointment as cancelled: it is booked, then cancelled.
    a3 = appointment("a3", "Patient/maria", "Practitioner/reyes", "Location/room-2",
                     part_status="declined", start="2026-03-11T14:00:00Z",
                     end="2026-03-11T14:30:00Z")
    await put(client, a3)
    await put(client, {**a3, "status": "cancelled"})
    return client


@pytest.mark.parametrize(("query", "expected"), [
    ("status=booked", {"a1"}),
    ("status=proposed,cancelled", {"a2", "a3"}),
    ("status:not=booked", {"a2", "a3"}),
    ("patient=Patient/maria", {"a1", "a3"}),
    ("patient=maria", {"a1", "a3"}),
    ("patient:Patient=james", {"a2"}),
    ("practitioner=Practitioner/reyes", {"a2", "a3"}),
    ("practitioner=okafor", {"a1"}),
    ("location=Location/room-1", {"a1"}),
    ("location=room-2", {"a2", "a3"}),
    ("actor=Patient/james", {"a2"}),
    ("actor=Location/room-2", {"a2", "a3"}),
    ("actor:Practitioner=okafor", {"a1"}),
    ("actor=okafor", {"a1"}),
    ("part-status=accepted", {"a1"}),
    ("part-status=needs-action,declined", {"a2", "a3"}),
    ("identifier=APT-1", {"a1"}),
    (f"identifier={ID_SYSTEM}|APT-2", {"a2"}),
    ("identifier=http://other.example.org|APT-2", set()),
    ("appointment-type=ROUTINE", {"a1"}),
    (f"appointment-type={APPOINTMENT_TYPE}|FOLLOWUP", {"a2"}),
    (f"reason-code={CHEST_PAIN[0]}|{CHEST_PAIN[1]}", {"a1"}),
    (f"reason-code={HEADACHE[1]}", {"a2"}),
    ("service-category=17", {"a1"}),
    (f"service-type={CONSULTATION[0]}|{CONSULTATION[1]}", {"a1"}),
    (f"service-type={ECG[1]}", {"a2"}),
    (f"specialty={CARDIOLOGY[0]}|", {"a1", "a2"}),
    (f"specialty={DERMATOLOGY[1]}", {"a2"}),
    ("slot=Slot/slot-1", {"a1"}),
    ("slot=slot-2", {"a2"}),
    ("based-on=ServiceRequest/referral-1", {"a1"}),
    ("date=2026-03-10", {"a1"}),
    ("date=ge2026-03-11", {"a3"}),
    ("date=lt2026-03-11", {"a1"}),
    ("_id=a2,a3", {"a2", "a3"}),
])
async def test_appointment_search_by_parameter(clinic: httpx.AsyncClient, query: str,
                                               expected: set[str]) -> None:
    assert await found(clinic, f"Appointment?{query}") == expected


async def test_repeated_parameters_must_all_hold(clinic: httpx.AsyncClient) -> None:
    assert await found(clinic, "Appointment?patient=maria&practitioner=reyes") == {"a3"}
    assert await found(clinic, "Appointment?actor=maria&actor=room-1") == {"a1"}
    assert await found(clinic, "Appointment?status=booked&status=cancelled") == set()


async def test_appointments_of_a_patient_found_by_name_through_a_chain(
        clinic: httpx.AsyncClient) -> None:
    assert await found(clinic, "Appointment?patient.name=garcia") == {"a1", "a3"}
    assert await found(clinic, "Appointment?patient.family=Wilson") == {"a2"}
    assert await found(clinic, "Appointment?practitioner.given=amara") == {"a1"}
    assert await found(clinic, "Appointment?patient.name=nobody") == set()


async def test_appointment_responses_by_appointment_actor_and_status(
        clinic: httpx.AsyncClient) -> None:
    await put(
        clinic,
        appointment_response("r1", "a1", "Patient/maria"),
        appointment_response("r2", "a1", "Practitioner/okafor", part_status="tentative"),
        appointment_response("r3", "a2", "Practitioner/reyes", part_status="declined"),
        appointment_response("r4", "a3", "Location/room-2"),
    )
    query = "AppointmentResponse?"
    assert await found(clinic, query + "appointment=Appointment/a1") == {"r1", "r2"}
    assert await found(clinic, query + "appointment=a2") == {"r3"}
    assert await found(clinic, query + "actor=Practitioner/okafor") == {"r2"}
    assert await found(clinic, query + "actor=room-2") == {"r4"}
    assert await found(clinic, query + "patient=maria") == {"r1"}
    assert await found(clinic, query + "practitioner=Practitioner/reyes") == {"r3"}
    assert await found(clinic, query + "practitioner=maria") == set()
    assert await found(clinic, query + "part-status=tentative,declined") == {"r2", "r3"}
    assert await found(clinic, query + "part-status:not=accepted") == {"r2", "r3"}
    assert await found(clinic, query + "appointment=a1&part-status=accepted") == {"r1"}
