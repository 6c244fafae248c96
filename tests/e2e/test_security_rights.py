"""Emergency slots and overbooking follow the role on every booking path: finding, create,
`$hold` and `$book`. Staff may use both; a patient neither (emergency slots stay hidden)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL
from tests.e2e.checks import outcome_issues
from tests.e2e.test_booking_race import appointment, at
from tests.e2e.test_security import MARIA, OVERBOOKING, STAFF, clinic, put
from tests.e2e.test_security_patient import WINDOW, parameters

EMERGENCY_UNTIL = at("09:00")  # in the future: the reserve still holds
BOOK = "Appointment/$book"


async def emergency_clinic(client: httpx.AsyncClient) -> None:
    """The clinic plus slot-e on dr-a's schedule, reserved for emergencies."""
    await clinic(client)
    await put(client, {"resourceType": "Slot", "id": "slot-e", "status": "free",
                       "schedule": {"reference": "Schedule/sch-dr-a"},
                       "start": at("14:00"), "end": at("14:30"),
                       "extension": [{"url": SLOT_EMERGENCY_RESERVE_URL,
                                      "valueDateTime": EMERGENCY_UNTIL}]})


def on_emergency_slot(patient: str = "Patient/maria", **extra: Any) -> dict[str, Any]:
    return appointment(["slot-e"], [patient, "Practitioner/dr-a"], start="14:00", end="14:30",
                       **extra)


def slot_ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])
            if e["resource"]["resourceType"] == "Slot"}


async def test_emergency_slots_are_found_by_staff_only(client: httpx.AsyncClient) -> None:
    await emergency_clinic(client)

    by_patient = await client.get("Slot/$find-slots", headers=MARIA, params=WINDOW)
    by_staff = await client.get("Slot/$find-slots", headers=STAFF, params=WINDOW)

    assert by_patient.status_code == by_staff.status_code == 200, by_patient.text
    assert slot_ids(by_patient.json()) == {"slot-a"}
    assert slot_ids(by_staff.json()) == {"slot-a", "slot-e"}


@pytest.mark.parametrize("path", ["Appointment/$hold", BOOK, "Appointment"])
async def test_emergency_slots_are_booked_by_staff_only(client: httpx.AsyncClient,
                                                        path: str) -> None:
    await emergency_clinic(client)

    def send(headers: dict[str, str]) -> Any:
        body = (on_emergency_slot() if path == "Appointment" else
                parameters(**{"appointment-resource": on_emergency_slot(status="proposed")}))
        return client.post(path, headers=headers, json=body)

    by_patient = await send(MARIA)
    assert outcome_issues(by_patient, 409)[0]["code"] == "conflict"
    assert (await client.get("Slot/slot-e")).json()["status"] == "free"
    by_staff = await send(STAFF)
    assert by_staff.status_code == 201, by_staff.text
    assert (await client.get("Slot/slot-e")).json()["status"] in ("busy", "busy-tentative")


@pytest.mark.parametrize("path", ["Appointment/$hold", BOOK])
async def test_overbooking_with_a_reason_by_staff_only(client: httpx.AsyncClient,
                                                       path: str) -> None:
    await clinic(client)
    await client.post("Appointment", json=appointment(["slot-a"],
                                                      ["Patient/james", "Practitioner/dr-a"]))
    reason = [{"url": OVERBOOKING, "valueString": "Urgent: chest pain"}]
    wanted = appointment(["slot-a"], ["Patient/maria", "Practitioner/dr-a"], status="proposed",
                         extension=reason)

    by_patient = await client.post(path, headers=MARIA,
                                   json=parameters(**{"appointment-resource": wanted}))
    assert outcome_issues(by_patient, 403)[0]["code"] == "forbidden"
    by_staff = await client.post(path, headers=STAFF,
                                 json=parameters(**{"appointment-resource": wanted}))
    assert by_staff.status_code == 201, by_staff.text
    assert (await client.get("Slot/slot-a")).json()["overbooked"] is True
