"""Reschedule and book links: GET lists free times (changing nothing), POST books the one picked.

Each time is a small form posting its start and slot ids back to the same signed URL: the
token is the only credential (no cookie, so nothing for another site to ride on), and the
services book a time only if a fresh find still offers exactly it. A time taken meanwhile
answers 409 with fresh times to pick from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.link_pages import failure, offer_days, outcome_page, page, shared_zone
from fhir_server.api.patient_audit import audit_reply
from fhir_server.fhir.errors import Conflict, FhirError, VersionConflict
from fhir_server.notify.links import LinkAction, LinkClaim
from fhir_server.services.context import FhirContext
from fhir_server.services.patient_offers import Choice
from fhir_server.services.patient_rebooking import (
    Offers,
    book_by_patient,
    move_by_patient,
    offers_to_book,
    offers_to_move,
)
from fhir_server.services.patient_replies import Reply

MAX_FORM_BYTES = 4096  # a start and a few slot ids; anything longer is not our form

FindOffers = Callable[..., Awaitable[Offers]]
TakeOffer = Callable[..., Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Flow:
    """One link action: how to list its times, how to take one, and how the page words it."""

    find: FindOffers
    take: TakeOffer
    heading: str
    intro: str
    consequence: str
    empty: str


FLOWS = {
    LinkAction.RESCHEDULE: Flow(
        offers_to_move, move_by_patient, "Choose a new time",
        "Your current appointment is shown below. Choose a new time to move it.",
        "Your current time is released once the new one is booked.",
        "There are no free times in the next 30 days. Please contact the clinic to move "
        "this appointment."),
    LinkAction.BOOK: Flow(
        offers_to_book, book_by_patient, "Book your appointment",
        "The clinic has asked you to book this appointment. Choose a time that suits you.",
        "Your appointment is booked as soon as you choose a time.",
        "There are no free times left in the period the clinic proposed. Please contact "
        "the clinic."),
}
async def show_offers(request: Request, claim: LinkClaim) -> Response:
    """The appointment and the times on offer; changes nothing."""
    return await _offers_page(fhir_context(request), claim, status_code=200, notice=None)


async def take_offer(request: Request, claim: LinkClaim) -> Response:
    """Book the picked time, or explain why not with fresh times to pick from."""
    ctx, flow = fhir_context(request), FLOWS[claim.action]
    choice = await _choice(request)
    if choice is None:
        return await _offers_page(ctx, claim, status_code=400,
                                  notice="Please choose one of the times below.")
    try:
        reply = await flow.take(ctx, claim.subject, choice, now=datetime.now(UTC))
    except (Conflict, VersionConflict):
        return await _offers_page(ctx, claim, status_code=409, notice=(
            "Sorry, that time is no longer available: it was just booked, or it is no longer "
            "offered. Please choose another time."))
    except FhirError as error:
        return failure(error)
    audit_reply(request, reply, channel="patient-link")
    return outcome_page(reply.outcome, reply.view)


async def _offers_page(ctx: FhirContext, claim: LinkClaim, *, status_code: int,
                       notice: str | None) -> Response:
    flow = FLOWS[claim.action]
    try:
        offers = await flow.find(ctx, claim.subject, now=datetime.now(UTC))
    except FhirError as error:
        return failure(error)
    if offers.outcome is not None:
        return outcome_page(offers.outcome, offers.view)
    return page("link_offers.html", status_code=status_code, view=offers.view,
                heading=flow.heading, intro=flow.intro, consequence=flow.consequence,
                empty=flow.empty, notice=notice, days=offer_days(offers.times),
                zone=shared_zone(offers.times))


async def _choice(request: Request) -> Choice | None:
    """The posted start and slot ids, or None for a form that is not one of ours."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qsl(body.decode("utf-8", "replace"))
    starts = [value for name, value in fields if name == "start"]
    slots = frozenset(value for name, value in fields if name == "slot")
    return Choice(starts[0], slots) if len(starts) == 1 and slots else None
