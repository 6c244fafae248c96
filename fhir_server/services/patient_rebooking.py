"""A patient moves their appointment, or books a staff proposal, at a time picked from a link.

Both go through the API's own use cases with a patient's rights (no emergency-reserved
slots, no overbooking): a move is `$reschedule`'s (`reschedule_operation`, which claims the
new slots before it frees the old ones), and booking a proposal is the REST update of that
Appointment from proposed to booked (`resources.update` with If-Match, so `AppointmentRules`
and the state machine). Either way the picked time must still be on offer (`patient_offers`),
or nothing is written and `Conflict` (409) is raised; a lost race is the service's 409.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from fhir_server.fhir.errors import Conflict
from fhir_server.scheduling.slot_hold import OVERBOOKING_URL
from fhir_server.scheduling.state_machine import BOOKED, PARTICIPANT_ACCEPTED, PROPOSED, holds_time
from fhir_server.services import resources
from fhir_server.services.appointment_reschedule import RescheduleRequest, reschedule_operation
from fhir_server.services.appointment_views import AppointmentView, describe
from fhir_server.services.context import CallerRights, FhirContext
from fhir_server.services.patient_offers import (
    OFFERS_SHOWN,
    Choice,
    Offer,
    chosen,
    instant_text,
    move_offers,
    proposal_offers,
)
from fhir_server.services.patient_replies import (
    Outcome,
    Reply,
    appointment_view,
    is_closed,
    patient_of,
)
from fhir_server.services.slot_claims import body_of

Resource = dict[str, Any]

NOT_ON_OFFER = "The chosen time is no longer available"


@dataclass(frozen=True, slots=True)
class Offers:
    """The appointment as it stands and the first times on offer; `outcome` says why there
    is nothing to pick (closed, or a proposal already booked), else None."""

    view: AppointmentView
    times: tuple[Offer, ...]
    outcome: Outcome | None = None


async def offers_to_move(ctx: FhirContext, appointment_id: str, *, now: datetime) -> Offers:
    """The appointment and the times it may move to; changes nothing."""
    view = await appointment_view(ctx, appointment_id)
    if _unmovable(view, now):
        return Offers(view, (), Outcome.CLOSED)
    return Offers(view, tuple((await move_offers(ctx, view, now=now))[:OFFERS_SHOWN]))


async def offers_to_book(ctx: FhirContext, proposal_id: str, *, now: datetime) -> Offers:
    """The proposal and the times inside its requested periods; changes nothing."""
    view = await appointment_view(ctx, proposal_id)
    if view.status != PROPOSED:
        return Offers(view, (), _not_proposed(view))
    return Offers(view, tuple((await proposal_offers(ctx, view, now=now))[:OFFERS_SHOWN]))


async def move_by_patient(ctx: FhirContext, appointment_id: str, choice: Choice, *,
                          now: datetime) -> Reply:
    """Move the appointment to the picked time through `$reschedule`'s use case."""
    ctx = _as_patient(ctx)
    view = await appointment_view(ctx, appointment_id)
    if _unmovable(view, now):
        return Reply(Outcome.CLOSED, view)
    patient_of(view)
    offer = _still_offered(await move_offers(ctx, view, now=now), choice)
    moved = await reschedule_operation(ctx, appointment_id, RescheduleRequest(
        None, offer.slot_ids, instant_text(offer.start), instant_text(offer.end)), now=now)
    [after] = await describe(ctx, [body_of(moved)])
    return Reply(Outcome.RESCHEDULED, after)


async def book_by_patient(ctx: FhirContext, proposal_id: str, choice: Choice, *,
                          now: datetime) -> Reply:
    """Book the proposal at the picked time, as a REST update expecting the version read."""
    ctx = _as_patient(ctx)
    current = await resources.read(ctx, "Appointment", proposal_id)
    [view] = await describe(ctx, [body_of(current)])
    if view.status != PROPOSED:
        return Reply(_not_proposed(view), view)
    patient = patient_of(view)
    offer = _still_offered(await proposal_offers(ctx, view, now=now), choice)
    written = await resources.update(ctx, "Appointment", proposal_id,
                                     booked_proposal(view.appointment, offer, patient),
                                     now=now, if_match=current.version_id)
    [after] = await describe(ctx, [body_of(written.stored)])
    return Reply(Outcome.BOOKED, after)


def booked_proposal(proposal: Resource, offer: Offer, patient_id: str) -> Resource:
    """The proposal booked on the offer's slots and times, accepted by the patient who picked
    it; any overbooking request is dropped, as a patient may not overbook."""
    participants = [{**p, "status": PARTICIPANT_ACCEPTED}
                    if (p.get("actor") or {}).get("reference") == f"Patient/{patient_id}" else p
                    for p in proposal.get("participant") or ()]
    body = {**proposal, "status": BOOKED, "start": instant_text(offer.start),
            "end": instant_text(offer.end),
            "minutesDuration": int((offer.end - offer.start).total_seconds() // 60),
            "slot": [{"reference": f"Slot/{i}"} for i in offer.slot_ids],
            "participant": participants}
    extensions = [e for e in body.get("extension") or () if e.get("url") != OVERBOOKING_URL]
    body.pop("extension", None)
    return {**body, "extension": extensions} if extensions else body


def _still_offered(offers: list[Offer], choice: Choice) -> Offer:
    offer = chosen(offers, choice)
    if offer is None:
        raise Conflict(NOT_ON_OFFER, expression="Appointment.slot")
    return offer


def _unmovable(view: AppointmentView, now: datetime) -> bool:
    """Only an active appointment that has not started may move (no proposal, no waitlist)."""
    return is_closed(view, now) or not holds_time(view.status)


def _not_proposed(view: AppointmentView) -> Outcome:
    return Outcome.ALREADY_BOOKED if holds_time(view.status) else Outcome.CLOSED


def _as_patient(ctx: FhirContext) -> FhirContext:
    """The context with a patient's booking rights, whatever the app's default caller is."""
    return replace(ctx, caller=CallerRights())
