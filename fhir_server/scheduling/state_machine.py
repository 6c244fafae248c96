"""The one Appointment state machine every status change goes through, and Slot status codes.

R4's typical flow is proposed → pending → booked → arrived → checked-in → fulfilled, with
cancelled, noshow, waitlist and entered-in-error on the side. Allowed moves (`TRANSITIONS`):

| from        | to                                                        |
|-------------|-----------------------------------------------------------|
| (creation)  | proposed, pending, booked, waitlist, arrived, checked-in  |
| proposed    | pending, booked, cancelled, waitlist                      |
| waitlist    | pending, booked, cancelled                                |
| pending     | booked, cancelled, proposed                               |
| booked      | arrived, checked-in, cancelled, noshow                    |
| arrived     | checked-in, fulfilled, cancelled                          |
| checked-in  | fulfilled, cancelled                                      |

Any state may move to entered-in-error. fulfilled, cancelled, noshow and entered-in-error are
final. Keeping a non-final status (e.g. booked → booked when the time or a participant
changes) is a modification and allowed; a final status cannot even be re-asserted, because
the record of what happened is closed. Creation may start at arrived or checked-in for
walk-ins, which never had a booking.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fhir_server.fhir.errors import BusinessRuleViolation, ValidationFailed

PROPOSED = "proposed"
PENDING = "pending"
BOOKED = "booked"
ARRIVED = "arrived"
CHECKED_IN = "checked-in"
FULFILLED = "fulfilled"
CANCELLED = "cancelled"
NOSHOW = "noshow"
WAITLIST = "waitlist"
ENTERED_IN_ERROR = "entered-in-error"

FINAL_STATES = frozenset({FULFILLED, CANCELLED, NOSHOW, ENTERED_IN_ERROR})
INITIAL_STATES = frozenset({PROPOSED, PENDING, BOOKED, WAITLIST, ARRIVED, CHECKED_IN})
TIME_HOLDING_STATES = frozenset({PENDING, BOOKED, ARRIVED, CHECKED_IN})

_FORWARD: dict[str, frozenset[str]] = {
    PROPOSED: frozenset({PENDING, BOOKED, CANCELLED, WAITLIST}),
    WAITLIST: frozenset({PENDING, BOOKED, CANCELLED}),
    PENDING: frozenset({BOOKED, CANCELLED, PROPOSED}),
    BOOKED: frozenset({ARRIVED, CHECKED_IN, CANCELLED, NOSHOW}),
    ARRIVED: frozenset({CHECKED_IN, FULFILLED, CANCELLED}),
    CHECKED_IN: frozenset({FULFILLED, CANCELLED}),
}
TRANSITIONS: Mapping[str, frozenset[str]] = {
    **{state: targets | {state, ENTERED_IN_ERROR} for state, targets in _FORWARD.items()},
    FULFILLED: frozenset({ENTERED_IN_ERROR}),
    CANCELLED: frozenset({ENTERED_IN_ERROR}),
    NOSHOW: frozenset({ENTERED_IN_ERROR}),
    ENTERED_IN_ERROR: frozenset(),
}
"""Every allowed move, self-moves of non-final states (modifications) included."""
APPOINTMENT_STATUSES = frozenset(TRANSITIONS)

SLOT_FREE = "free"
SLOT_BUSY = "busy"
SLOT_TENTATIVE = "busy-tentative"
SLOT_UNAVAILABLE = "busy-unavailable"
SLOT_ENTERED_IN_ERROR = "entered-in-error"

PARTICIPANT_ACCEPTED = "accepted"
PARTICIPANT_DECLINED = "declined"
PARTICIPANT_STATUSES = frozenset({PARTICIPANT_ACCEPTED, PARTICIPANT_DECLINED, "tentative",
                                  "needs-action"})
_DECLINE_CANCELS = frozenset({PROPOSED, PENDING, BOOKED, WAITLIST})
_ACCEPT_BOOKS = frozenset({PROPOSED, PENDING})
_KEEPS_SLOTS = frozenset({FULFILLED, NOSHOW})


def _require_known(status: str) -> None:
    """Refuse codes outside the R4 appointmentstatus value set before judging a move."""
    if status not in APPOINTMENT_STATUSES:
        raise ValidationFailed(f"Unknown Appointment status '{status}'", code="code-invalid",
                               expression="Appointment.status")


def check_transition(current: str | None, new: str) -> None:
    """Raise BusinessRuleViolation unless `current` → `new` is allowed (None means creation)."""
    _require_known(new)
    if current is None:
        if new not in INITIAL_STATES:
            raise BusinessRuleViolation(f"An Appointment cannot be created as {new}",
                                        expression="Appointment.status")
        return
    _require_known(current)
    if new not in TRANSITIONS[current]:
        raise BusinessRuleViolation(f"An Appointment cannot move from {current} to {new}",
                                    expression="Appointment.status")


def holds_time(status: str | None) -> bool:
    """Whether an Appointment in this status occupies its slots and makes its actors busy."""
    return status in TIME_HOLDING_STATES


def releases_slots(old: str | None, new: str) -> bool:
    """Whether moving `old` → `new` frees the appointment's slots for others to book.

    Cancelling, entering in error or going back to proposed/waitlist frees them; fulfilled and
    noshow keep them busy, because that time was used (or wasted) and the record must say so.
    """
    return holds_time(old) and not holds_time(new) and new not in _KEEPS_SLOTS


def slot_status_for(status: str) -> str:
    """The status an appointment's slots take: pending holds tentatively, later states firmly."""
    if status == PENDING:
        return SLOT_TENTATIVE
    return SLOT_BUSY if holds_time(status) or status in _KEEPS_SLOTS else SLOT_FREE


def _is_required(participant: Mapping[str, Any]) -> bool:
    """Whether the participant must attend; R4 leaves `required` optional, so absent = required."""
    return participant.get("required", "required") == "required"


def _actor_of(participant: Mapping[str, Any]) -> str | None:
    """The participant's actor reference, if it names one."""
    actor = participant.get("actor")
    return actor.get("reference") if isinstance(actor, Mapping) else None


def participants_all_accepted(appointment: Mapping[str, Any]) -> bool:
    """Whether every required participant has accepted (vacuously true with none required)."""
    return all(p.get("status") == PARTICIPANT_ACCEPTED
               for p in appointment.get("participant", ()) if _is_required(p))


def _next_status(appointment: Mapping[str, Any], required_declined: bool) -> str:
    """The status the appointment takes after a response, per the policy in the docstring."""
    status: str = appointment["status"]
    if required_declined and status in _DECLINE_CANCELS:
        return CANCELLED
    if not required_declined and status in _ACCEPT_BOOKS and participants_all_accepted(
            appointment):
        return BOOKED
    return status


def apply_participant_response(appointment: Mapping[str, Any], actor_reference: str,
                               participant_status: str) -> dict[str, Any]:
    """A new Appointment with `actor_reference`'s response recorded and its status moved on.

    Policy (AppointmentResponse handling):
    - the matching participant(s) take `participant_status`;
    - once every required participant has accepted, a proposed or pending appointment is booked;
    - a decline by a required participant cancels a proposed, pending, waitlist or booked
      appointment, with `cancelationReason.text` "Declined by <actor>"; once the patient has
      arrived or checked in the decline is only recorded (cancelling is then staff's call);
    - an optional or information-only participant's decline changes nothing else;
    - a final appointment takes no responses, and the actor must be one of its participants.
    """
    if participant_status not in PARTICIPANT_STATUSES:
        raise ValidationFailed(f"Unknown participant status '{participant_status}'",
                               code="code-invalid",
                               expression="AppointmentResponse.participantStatus")
    status = appointment.get("status")
    if status in FINAL_STATES:
        raise BusinessRuleViolation(f"The Appointment is {status} and takes no more responses",
                                    expression="AppointmentResponse.appointment")
    updated = copy.deepcopy(dict(appointment))
    matching = [p for p in updated.get("participant", []) if _actor_of(p) == actor_reference]
    if not matching:
        raise BusinessRuleViolation(f"{actor_reference} is not a participant of this Appointment",
                                    expression="AppointmentResponse.actor")
    for participant in matching:
        participant["status"] = participant_status
    required_declined = participant_status == PARTICIPANT_DECLINED and any(
        _is_required(p) for p in matching)
    new_status = _next_status(updated, required_declined)
    if new_status != status:
        check_transition(status, new_status)
        updated["status"] = new_status
        if new_status == CANCELLED:
            updated["cancelationReason"] = {"text": f"Declined by {actor_reference}"}
    return updated
