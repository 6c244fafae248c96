"""One-click links from patients' messages: `GET /links/{token}` only shows what the link
would do (mail scanners prefetch links, and must change nothing); `POST` does it.

The signed token is the credential: no bearer token, and every page is `no-store`,
`noindex` and sends no Referer, so the token does not travel further than the patient.
Confirm and cancel are one button; reschedule and book list free times to pick from
(`rebooking_pages`)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.link_pages import failure, invalid_link, outcome_page, page
from fhir_server.api.patient_audit import audit_reply
from fhir_server.api.rebooking_pages import FLOWS, show_offers, take_offer
from fhir_server.fhir.errors import FhirError
from fhir_server.notify.links import ExpiredLink, InvalidLink, LinkAction, LinkClaim, SignedLinks
from fhir_server.services.patient_replies import (
    appointment_view,
    cancel_by_patient,
    confirm_by_patient,
)

router = APIRouter()

_ASK = {
    LinkAction.CONFIRM: ("Confirm your appointment", "Please confirm that you will attend:",
                         "Confirm appointment"),
    LinkAction.CANCEL: ("Cancel your appointment", "Do you want to cancel this appointment? "
                        "The time will be offered to other patients.", "Cancel appointment"),
}


@router.get("/links/{token}")
async def show_link(request: Request, token: str) -> Response:
    """What the link would do, with a button to do it; changes nothing."""
    claim = _verify(request, token)
    if isinstance(claim, Response):
        return claim
    if claim.action in FLOWS:
        return await show_offers(request, claim)
    try:
        view = await appointment_view(fhir_context(request), claim.subject)
    except FhirError as error:
        return failure(error)
    heading, question, button = _ASK[claim.action]
    return page("link_action.html", heading=heading, question=question, button=button,
                action=claim.action.value, view=view)


@router.post("/links/{token}")
async def follow_link(request: Request, token: str) -> Response:
    """Confirm, cancel, move or book, as the link says."""
    claim = _verify(request, token)
    if isinstance(claim, Response):
        return claim
    if claim.action in FLOWS:
        return await take_offer(request, claim)
    act = confirm_by_patient if claim.action is LinkAction.CONFIRM else cancel_by_patient
    try:
        reply = await act(fhir_context(request), claim.subject, now=datetime.now(UTC),
                          via="through a link")
    except FhirError as error:
        return failure(error)
    audit_reply(request, reply, channel="patient-link")
    return outcome_page(reply.outcome, reply.view)


def _verify(request: Request, token: str) -> LinkClaim | Response:
    """The link's claim, or the page saying why it cannot be used."""
    links: SignedLinks = request.app.state.links
    try:
        claim = links.verify(token)
    except ExpiredLink:
        return page("link_result.html", status_code=410, heading="This link has expired",
                    message="For your security, links in our messages work for a limited "
                            "time. Please contact the clinic.", view=None)
    except InvalidLink:
        return invalid_link()
    return claim if claim.action in _ASK or claim.action in FLOWS else invalid_link()
