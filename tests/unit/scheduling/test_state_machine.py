"""The Appointment state machine and AppointmentResponse handling, move by move."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from fhir_server.fhir.errors import BusinessRuleViolation, ValidationFailed
from fhir_server.scheduling.state_machine import (
    APPOINTMENT_STATUSES,
    PARTICIPANT_STATUSES,
    SLOT_BUSY,
    SLOT_FREE,
    SLOT_TENTATIVE,
    apply_participant_response,
    check_transition,
    holds_time,
    participants_all_accepted,
    releases_slots,
    slot_status_for,
)

ALLOWED: dict[str, set[str]] = {
    "proposed": {"pending", "booked", "cancelled", "waitlist"},
    "waitlist": {"pending", "booked", "cancelled"},
    "pending": {"booked", "cancelled", "proposed"},
    "booked": {"arrived", "checked-in", "cancelled", "noshow"},
    "arrived": {"checked-in", "fulfilled", "cancelled"},
    "checked-in": {"fulfilled", "cancelled"},
    "fulfilled": set(),
    "cancelled": set(),
    "noshow": set(),
    "entered-in-error": set(),
}
FINAL = {"fulfilled", "cancelled", "noshow", "entered-in-error"}
ALL_MOVES = [(old, new) for old in ALLOWED for new in ALLOWED]


def allowed(old: str, new: str) -> bool:
    """The documented table, spelled out independently of the module under test."""
    if new == "entered-in-error":
        return old != "entered-in-error"
    return new in ALLOWED[old] or (new == old and old not in FINAL)


def r4_codes(value_set: str) -> set[str]:
    """Codes of a required R4 value set, from the packaged official definitions."""
    text = resources.files("fhir_server.fhir").joinpath(
        "definitions/required-valuesets.json").read_text()
    return {c["code"] for c in json.loads(text)[f"http://hl7.org/fhir/ValueSet/{value_set}"]["codes"]}


def make_appointment(status: str = "pending", **required: str) -> dict[str, Any]:
    """An Appointment whose participants are given as actor id → required code."""
    participants = [{"actor": {"reference": actor}, "required": need, "status": "needs-action"}
                    for actor, need in required.items()] or [
        {"actor": {"reference": "Patient/p"}, "required": "required", "status": "accepted"},
        {"actor": {"reference": "Practitioner/a"}, "required": "required",
         "status": "needs-action"},
        {"actor": {"reference": "Practitioner/student"}, "required": "optional",
         "status": "needs-action"},
    ]
    return {"resourceType": "Appointment", "id": "ap1", "status": status,
            "participant": participants}


def test_statuses_are_exactly_the_r4_codes() -> None:
    assert APPOINTMENT_STATUSES == r4_codes("appointmentstatus") == set(ALLOWED)
    assert PARTICIPANT_STATUSES == r4_codes("participationstatus")
    assert {SLOT_FREE, SLOT_BUSY, SLOT_TENTATIVE} <= r4_codes("slotstatus")


@pytest.mark.parametrize(("old", "new"), [m for m in ALL_MOVES if allowed(*m)])
def test_every_allowed_move_passes(old: str, new: str) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(("old", "new"), [m for m in ALL_MOVES if not allowed(*m)])
def test_every_other_move_is_a_business_rule_violation(old: str, new: str) -> None:
    with pytest.raises(BusinessRuleViolation) as raised:
        check_transition(old, new)
    assert raised.value.issues[0].expression == ("Appointment.status",)
    assert raised.value.issues[0].code == "business-rule"


def test_fulfilled_to_booked_says_why() -> None:
    with pytest.raises(BusinessRuleViolation,
                       match="An Appointment cannot move from fulfilled to booked"):
        check_transition("fulfilled", "booked")


def test_booked_to_booked_is_a_modification() -> None:
    check_transition("booked", "booked")


@pytest.mark.parametrize("status", ["proposed", "pending", "booked", "waitlist", "arrived",
                                    "checked-in"])
def test_creation_may_start_in_active_states_including_walk_ins(status: str) -> None:
    check_transition(None, status)


@pytest.mark.parametrize("status", ["fulfilled", "cancelled", "noshow", "entered-in-error"])
def test_creation_cannot_start_in_a_final_state(status: str) -> None:
    with pytest.raises(BusinessRuleViolation, match=f"cannot be created as {status}"):
        check_transition(None, status)


def test_unknown_status_codes_are_invalid_not_business_rules() -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_transition("booked", "done")
    assert raised.value.issues[0].code == "code-invalid"
    with pytest.raises(ValidationFailed):
        check_transition("bogus", "booked")


def test_which_statuses_hold_time_and_when_slots_are_released() -> None:
    assert {s for s in APPOINTMENT_STATUSES if holds_time(s)} == {
        "pending", "booked", "arrived", "checked-in"}
    assert releases_slots("booked", "cancelled")
    assert releases_slots("pending", "proposed")
    assert releases_slots("checked-in", "entered-in-error")
    assert releases_slots("waitlist", "cancelled") is False  # a waitlist entry held nothing
    assert not releases_slots("booked", "arrived")
    assert not releases_slots("checked-in", "fulfilled")  # the time was used
    assert not releases_slots("booked", "noshow")  # the time was wasted, not reusable
    assert not releases_slots("proposed", "cancelled")
    assert not releases_slots(None, "booked")


def test_slot_status_follows_the_appointment() -> None:
    assert slot_status_for("pending") == SLOT_TENTATIVE
    assert slot_status_for("booked") == SLOT_BUSY
    assert slot_status_for("checked-in") == SLOT_BUSY
    assert slot_status_for("fulfilled") == SLOT_BUSY
    assert slot_status_for("cancelled") == SLOT_FREE
    assert slot_status_for("proposed") == SLOT_FREE


# --- participant responses -----------------------------------------------------------------

def test_all_required_accepted_books_a_pending_appointment() -> None:
    appointment = make_appointment("pending")
    assert not participants_all_accepted(appointment)
    updated = apply_participant_response(appointment, "Practitioner/a", "accepted")
    assert updated["status"] == "booked"
    assert participants_all_accepted(updated)
    assert appointment["status"] == "pending"  # the input is left alone
    assert appointment["participant"][1]["status"] == "needs-action"


def test_acceptance_waits_for_every_required_participant() -> None:
    appointment = make_appointment("proposed", **{"Patient/p": "required",
                                                  "Practitioner/a": "required"})
    halfway = apply_participant_response(appointment, "Patient/p", "accepted")
    assert halfway["status"] == "proposed"
    done = apply_participant_response(halfway, "Practitioner/a", "accepted")
    assert done["status"] == "booked"


def test_acceptance_does_not_book_a_waitlist_entry() -> None:
    updated = apply_participant_response(make_appointment("waitlist"), "Practitioner/a",
                                         "accepted")
    assert updated["status"] == "waitlist"  # it still waits for a time to open up


def test_optional_participants_do_not_block_booking() -> None:
    appointment = make_appointment("pending")
    updated = apply_participant_response(appointment, "Practitioner/a", "accepted")
    assert updated["participant"][2]["status"] == "needs-action"
    assert updated["status"] == "booked"


def test_absent_required_counts_as_required() -> None:
    appointment = make_appointment("pending")
    for participant in appointment["participant"]:
        participant.pop("required")
    updated = apply_participant_response(appointment, "Practitioner/a", "accepted")
    assert updated["status"] == "pending"  # the student, now required, has not answered


@pytest.mark.parametrize("status", ["proposed", "pending", "booked", "waitlist"])
def test_a_required_decline_cancels_with_a_reason(status: str) -> None:
    updated = apply_participant_response(make_appointment(status), "Practitioner/a", "declined")
    assert updated["status"] == "cancelled"
    assert updated["cancelationReason"] == {"text": "Declined by Practitioner/a"}
    assert updated["participant"][1]["status"] == "declined"


def test_a_required_decline_after_arrival_is_only_recorded() -> None:
    updated = apply_participant_response(make_appointment("arrived"), "Practitioner/a",
                                         "declined")
    assert updated["status"] == "arrived" and "cancelationReason" not in updated
    assert updated["participant"][1]["status"] == "declined"


def test_an_optional_decline_changes_nothing_else() -> None:
    appointment = make_appointment("booked")
    updated = apply_participant_response(appointment, "Practitioner/student", "declined")
    expected = make_appointment("booked")
    expected["participant"][2]["status"] = "declined"
    assert updated == expected


def test_tentative_answers_are_recorded_without_booking() -> None:
    updated = apply_participant_response(make_appointment("pending"), "Practitioner/a",
                                         "tentative")
    assert updated["status"] == "pending"
    assert updated["participant"][1]["status"] == "tentative"


def test_responses_from_strangers_or_to_final_appointments_are_refused() -> None:
    with pytest.raises(BusinessRuleViolation) as raised:
        apply_participant_response(make_appointment(), "Practitioner/zz", "accepted")
    assert raised.value.issues[0].expression == ("AppointmentResponse.actor",)
    with pytest.raises(BusinessRuleViolation, match="fulfilled"):
        apply_participant_response(make_appointment("fulfilled"), "Practitioner/a", "accepted")
    with pytest.raises(ValidationFailed):
        apply_participant_response(make_appointment(), "Practitioner/a", "maybe")
