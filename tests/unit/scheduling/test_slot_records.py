"""Reading stored Schedules, Slots and Appointments into slot finding's records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.fhir.errors import FhirError
from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL
from fhir_server.scheduling.find_params import SlotQuery
from fhir_server.scheduling.finding import FreeSlot
from fhir_server.scheduling.intervals import to_minutes
from fhir_server.scheduling.slot_hold import (
    SLOT_HOLD_URL,
    Claim,
    SlotUnavailable,
    claim_decision,
    held,
)
from fhir_server.scheduling.slot_records import (
    ScheduleRecord,
    accepts,
    busy_by_actor,
    ceil_minute,
    codes_of,
    free_slot,
    hold_lapsed,
    minute,
    minute_up,
    parse_schedule,
    reference_key,
    serves,
)
from tests.unit.scheduling.availability_factories import availability, minutes, sub

NOW = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
NINE = to_minutes(datetime(2030, 3, 4, 9, 0, tzinfo=UTC))
ECG = ("http://snomed.info/sct", "29303009")
CONSULT = ("http://snomed.info/sct", "11429006")
REQUEST = SlotQuery(start=NOW, end=NOW + timedelta(days=1))


def concept(*codings: tuple[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code} for system, code in codings]}


def make_slot(status: str = "free", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Slot", "status": status, "schedule": {"reference": "Schedule/s1"},
            "start": "2030-03-04T09:00:00Z", "end": "2030-03-04T09:30:00Z", **extra}


def test_a_schedule_reads_its_actors_codes_and_buffers() -> None:
    body = {"resourceType": "Schedule",
            "actor": [{"reference": "Practitioner/ada"},
                      {"reference": "http://other.org/fhir/Location/room1/_history/2"},
                      {"display": "no reference"}],
            "serviceType": [concept(ECG)], "specialty": [concept(CONSULT)],
            "extension": [availability(sub("bufferBefore", valueDuration=minutes(10)),
                                       zone="UTC")]}

    schedule = parse_schedule("s1", body)

    assert schedule.actors == ("Practitioner/ada", "Location/room1")
    assert (schedule.service_types, schedule.specialties) == ((ECG,), (CONSULT,))
    assert (schedule.buffer_before, schedule.buffer_after) == (10, 0)
    assert ScheduleRecord("s2", (), None).buffer_before == 0


def test_a_schedule_with_unreadable_rules_is_refused() -> None:
    with pytest.raises(FhirError):
        parse_schedule("s1", {"resourceType": "Schedule",
                              "extension": [availability(zone="Mars/Olympus_Mons")]})


def test_codes_serve_anything_unless_both_sides_name_some() -> None:
    assert accepts((), (ECG,)) and accepts((ECG,), ())
    assert accepts((ECG,), ((None, ECG[1]),))  # no system in the request: any system
    assert not accepts((ECG,), (("http://other", ECG[1]),))
    assert codes_of(concept(ECG, CONSULT)) == (ECG, CONSULT)
    assert codes_of([concept(ECG), "junk", {"coding": [{"system": "x"}]}]) == (ECG,)
    ecg_only = ScheduleRecord("s1", (), None, service_types=(ECG,))
    assert serves(ecg_only, REQUEST)
    assert not serves(ecg_only, SlotQuery(start=NOW, end=NOW, service_types=(CONSULT,)))


def test_a_free_slot_is_read_in_minutes_with_its_emergency_release() -> None:
    reserve = {"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": "2030-03-04T08:59:30Z"}

    assert free_slot("a", make_slot(), REQUEST, NOW) == FreeSlot("a", "s1", NINE, NINE + 30)
    reserved = free_slot("b", make_slot(extension=[reserve]), REQUEST, NOW)
    assert reserved is not None and reserved.emergency_release == NINE  # rounded up


@pytest.mark.parametrize("slot", [
    make_slot(start=None),
    make_slot(end="2030-03-04T09:30:00"),  # no zone: refuse to guess
    make_slot(extension=[{"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": "soon"}]),
    make_slot(serviceType=[concept(CONSULT)]),
], ids=["no start", "zoneless end", "unreadable reserve", "other service"])
def test_an_unreadable_or_unwanted_slot_is_not_offered(slot: dict[str, Any]) -> None:
    request = SlotQuery(start=NOW, end=NOW, service_types=(ECG,))
    assert free_slot("a", slot, request, NOW) is None


def may_take(slot: dict[str, Any]) -> bool:
    try:
        return claim_decision(slot, appointment_id="mine", now=NOW) is Claim.TAKE
    except SlotUnavailable:
        return False


@pytest.mark.parametrize(("expires", "lapsed"), [
    (NOW - timedelta(seconds=1), True), (NOW, True), (NOW + timedelta(seconds=1), False)])
def test_a_held_slot_is_offered_exactly_when_a_claim_may_take_it(expires: datetime,
                                                                 lapsed: bool) -> None:
    slot = held(make_slot(), "other", expires)

    assert hold_lapsed(slot, NOW) is lapsed
    assert (free_slot("a", slot, REQUEST, NOW) is not None) is lapsed
    assert may_take(slot) is lapsed


def test_a_hold_without_a_readable_expiry_never_lapses() -> None:
    unreadable = make_slot("busy-tentative", extension=[{"url": SLOT_HOLD_URL, "extension": [
        {"url": "expires", "valueInstant": "whenever"}]}])
    assert not hold_lapsed(unreadable, NOW)
    assert free_slot("a", unreadable, REQUEST, NOW) is None
    assert not hold_lapsed(make_slot(), NOW)


def test_appointments_make_their_accepted_actors_busy() -> None:
    appointment = {"start": "2030-03-04T09:00:00Z", "end": "2030-03-04T09:20:30Z",
                   "participant": [
                       {"actor": {"reference": "Practitioner/ada"}, "status": "accepted"},
                       {"actor": {"reference": "Location/room1"}, "status": "declined"},
                       {"actor": {"reference": "Patient/p1"}},
                       {"actor": {"display": "interpreter"}}]}

    busy = busy_by_actor([appointment, {"start": "2030-03-04T10:00:00Z"}],
                         {"Practitioner/ada", "Location/room1"})

    assert busy == {"Practitioner/ada": [(NINE, NINE + 21)]}


@pytest.mark.parametrize(("reference", "key"), [
    ("Practitioner/ada", "Practitioner/ada"),
    ("http://example.org/fhir/Practitioner/ada", "Practitioner/ada"),
    ("Practitioner/ada/_history/3", "Practitioner/ada"),
    ("ada", None),
    ("/ada", None),
    (None, None),
])
def test_references_are_read_as_type_and_id(reference: object, key: str | None) -> None:
    assert reference_key(reference) == key


def test_minutes_round_down_or_up_and_need_a_zone() -> None:
    assert minute("2030-03-04T09:00:59Z") == NINE
    assert minute_up("2030-03-04T09:00:01+00:00") == NINE + 1
    assert minute_up("2030-03-04T09:00:00Z") == NINE
    assert minute("2030-03-04T10:00:00+01:00") == NINE
    assert ceil_minute(datetime(2030, 3, 4, 9, 0, tzinfo=UTC)) == NINE
    with pytest.raises(ValueError):
        minute("2030-03-04T09:00:00")
    with pytest.raises(ValueError):
        minute_up("2030-03-04T09:00:00")
