"""The slot hold extension, emergency reserves, overbooking marks and the claim decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL
from fhir_server.scheduling.slot_hold import (
    OVERBOOKING_URL,
    SLOT_HOLD_URL,
    Claim,
    SlotUnavailable,
    claim_decision,
    emergency_reserved_until,
    held,
    overbooked,
    overbooking_reason,
    parse_hold,
    slot_ids,
    with_overbooking_reason,
    with_status,
)

NOW = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def make_slot(status: str = "free", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Slot", "id": "s1", "status": status,
            "start": "2030-03-04T10:00:00Z", "end": "2030-03-04T10:30:00Z", **extra}


def reserve(until: str) -> dict[str, Any]:
    return {"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": until}


def test_a_hold_round_trips_and_keeps_other_extensions() -> None:
    slot = make_slot(extension=[reserve("2030-03-01T00:00:00Z")])

    claimed = held(slot, "a1", NOW + timedelta(minutes=10))

    assert claimed["status"] == "busy-tentative"
    assert parse_hold(claimed) is not None
    hold = parse_hold(claimed)
    assert hold is not None and hold.appointment_id == "a1"
    assert hold.expires == NOW + timedelta(minutes=10)
    assert [e["url"] for e in claimed["extension"]] == [SLOT_EMERGENCY_RESERVE_URL, SLOT_HOLD_URL]
    assert slot.get("status") == "free", "the input is not changed"


def test_renewing_a_hold_replaces_it_instead_of_adding_a_second() -> None:
    once = held(make_slot(), "a1", NOW)
    twice = held(once, "a1", NOW + timedelta(hours=1))

    assert [e["url"] for e in twice["extension"]] == [SLOT_HOLD_URL]
    hold = parse_hold(twice)
    assert hold is not None and hold.expires == NOW + timedelta(hours=1)


def test_with_status_drops_the_hold_and_freeing_drops_the_overbooked_mark() -> None:
    claimed = overbooked(held(make_slot(), "a1", NOW), "urgent")

    busy = with_status(claimed, "busy")
    free = with_status(claimed, "free")

    assert parse_hold(busy) is None and "extension" not in busy and busy["overbooked"] is True
    assert free["status"] == "free" and "overbooked" not in free


def test_hold_parsing_tolerates_missing_or_bad_parts() -> None:
    slot = make_slot("busy-tentative", extension=[{"url": SLOT_HOLD_URL, "extension": [
        {"url": "expires", "valueInstant": "not a time"}]}])

    hold = parse_hold(slot)

    assert hold is not None and hold.appointment_id is None and hold.expires is None
    assert not hold.expired(NOW), "a hold without a readable expiry never lapses by itself"
    assert parse_hold(make_slot()) is None


@pytest.mark.parametrize(("slot", "expected"), [
    (make_slot("free"), Claim.TAKE),
    (held(make_slot(), "other", NOW - timedelta(seconds=1)), Claim.TAKE),
    (held(make_slot(), "a1", NOW + timedelta(minutes=5)), Claim.REFRESH),
    (held(make_slot(), "a1", NOW - timedelta(minutes=5)), Claim.REFRESH),
])
def test_who_may_claim(slot: dict[str, Any], expected: Claim) -> None:
    assert claim_decision(slot, appointment_id="a1", now=NOW) is expected


@pytest.mark.parametrize("slot", [
    make_slot("busy"),
    make_slot("busy-unavailable"),
    make_slot("entered-in-error"),
    held(make_slot(), "other", NOW + timedelta(seconds=1)),
])
def test_taken_slots_cannot_be_claimed(slot: dict[str, Any]) -> None:
    with pytest.raises(SlotUnavailable):
        claim_decision(slot, appointment_id="a1", now=NOW)


def test_only_a_busy_slot_may_be_overbooked_and_only_with_a_reason() -> None:
    assert claim_decision(make_slot("busy"), appointment_id="a1", now=NOW,
                          overbook=True) is Claim.OVERBOOK
    with pytest.raises(SlotUnavailable):
        claim_decision(make_slot("busy-unavailable"), appointment_id="a1", now=NOW, overbook=True)
    with pytest.raises(SlotUnavailable):
        claim_decision(held(make_slot(), "other", NOW + timedelta(minutes=1)),
                       appointment_id="a1", now=NOW, overbook=True)


def test_an_emergency_reserve_binds_until_its_release() -> None:
    reserved = make_slot(extension=[reserve("2030-03-04T09:30:00Z")])
    released = make_slot(extension=[reserve("2030-03-04T08:30:00Z")])

    with pytest.raises(SlotUnavailable, match="reserved for emergencies"):
        claim_decision(reserved, appointment_id="a1", now=NOW)
    assert claim_decision(reserved, appointment_id="a1", now=NOW,
                          may_use_emergency=True) is Claim.TAKE
    assert claim_decision(released, appointment_id="a1", now=NOW) is Claim.TAKE
    assert emergency_reserved_until(released, NOW) is None
    assert emergency_reserved_until(make_slot(extension=[reserve("2030-03-05")]), NOW) == \
        datetime(2030, 3, 5, tzinfo=UTC)


def test_overbooking_marks_the_slot_and_the_appointment_once() -> None:
    slot = overbooked(overbooked(make_slot("busy", comment="Dr Ada"), "urgent"), "again")
    appointment = with_overbooking_reason(
        with_overbooking_reason({"resourceType": "Appointment"}, "urgent"), "ignored")

    assert slot["overbooked"] is True
    assert slot["comment"] == "Dr Ada; Overbooked: urgent; Overbooked: again"
    assert overbooking_reason(appointment) == "urgent"
    assert appointment["extension"] == [{"url": OVERBOOKING_URL, "valueString": "urgent"}]
    assert overbooking_reason({"resourceType": "Appointment"}) is None


def test_slot_ids_are_sorted_and_deduplicated_whatever_the_reference_form() -> None:
    appointment = {"slot": [{"reference": "Slot/b"}, {"reference": "http://x/fhir/Slot/a"},
                            {"reference": "Slot/b"}, {"display": "no reference"}]}

    assert slot_ids(appointment) == ["a", "b"]
