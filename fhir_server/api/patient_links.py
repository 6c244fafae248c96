"""One-click links from patients' messages: `GET /links/{token}` only shows what the link
would do (mail scanners prefetch links, and must change nothing); `POST` does it.

The signed token is the credential: no bearer token, and every page is `no-store`,
`noindex` and sends no Referer, so the token does not travel further than the patient."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.patient_audit import audit_reply
from fhir_server.fhir.errors import (
    BusinessRuleViolation,
    Conflict,
    FhirError,
    ResourceGone,
    ResourceNotFound,
)
from fhir_server.notify.links import ExpiredLink, InvalidLink, LinkAction, LinkClaim, SignedLinks
from fhir_server.services.appointment_views import AppointmentView
from fhir_server.services.patient_replies import (
    Outcome,
    appointment_view,
    cancel_by_patient,
    confirm_by_patient,
)

router = APIRouter()

_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                     autoescape=select_autoescape(default=True), trim_blocks=True,
                     lstrip_blocks=True)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex, nofollow", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "form-action 'self'; frame-ancestors 'none'"}
_ASK = {
    LinkAction.CONFIRM: ("Confirm your appointment", "Please confirm that you will attend:",
                         "Confirm appointment"),
    LinkAction.CANCEL: ("Cancel your appointment", "Do you want to cancel this appointment? "
                        "The time will be offered to other patients.", "Cancel appointment"),
}
_DONE = {
    Outcome.CONFIRMED: ("Appointment confirmed", "Thank you. Your appointment is confirmed."),
    Outcome.ACKNOWLEDGED: ("Thank you", "We have your confirmation. The clinic will confirm "
                           "the booking shortly."),
    Outcome.CANCELLED: ("Appointment cancelled", "Your appointment is cancelled. Please "
                        "contact the clinic if you would like a new time."),
    Outcome.ALREADY_CANCELLED: ("Appointment cancelled", "This appointment was already "
                                "cancelled."),
    Outcome.CLOSED: ("This appointment cannot be changed", "This appointment has already "
                     "started or is closed. Please contact the clinic."),
}
_CONTACT_CLINIC = ("To move this appointment to another time, please contact the clinic. "
                   "If you can no longer come, use the cancel link in your message.")


@router.get("/links/{token}")
async def show_link(request: Request, token: str) -> Response:
    """What the link would do, with a button to do it; changes nothing."""
    claim = _verify(request, token)
    if isinstance(claim, Response):
        return claim
    try:
        view = await appointment_view(fhir_context(request), claim.subject)
    except FhirError as error:
        return _failure(error)
    if claim.action in _ASK:
        heading, question, button = _ASK[claim.action]
        return _page("link_action.html", heading=heading, question=question, button=button,
                     action=claim.action.value, view=view)
    return _page("link_result.html", heading="Your appointment", view=view,
                 message=_CONTACT_CLINIC)


@router.post("/links/{token}")
async def follow_link(request: Request, token: str) -> Response:
    """Confirm or cancel, as the link says."""
    claim = _verify(request, token)
    if isinstance(claim, Response):
        return claim
    actions = {LinkAction.CONFIRM: confirm_by_patient, LinkAction.CANCEL: cancel_by_patient}
    act = actions.get(claim.action)
    if act is None:
        return _page("link_result.html", status_code=405, heading="Nothing to do here",
                     message=_CONTACT_CLINIC, view=None)
    try:
        reply = await act(fhir_context(request), claim.subject, now=datetime.now(UTC),
                          via="through a link")
    except FhirError as error:
        return _failure(error)
    audit_reply(request, reply, channel="patient-link")
    heading, message = _DONE[reply.outcome]
    return _page("link_result.html", heading=heading, message=message, view=reply.view)


def _verify(request: Request, token: str) -> LinkClaim | Response:
    """The link's claim, or the page saying why it cannot be used."""
    links: SignedLinks = request.app.state.links
    try:
        claim = links.verify(token)
    except ExpiredLink:
        return _page("link_result.html", status_code=410, heading="This link has expired",
                     message="For your security, links in our messages work for a limited "
                             "time. Please contact the clinic.", view=None)
    except InvalidLink:
        return _invalid()
    return claim if claim.action is not LinkAction.FEED else _invalid()


def _invalid() -> Response:
    return _page("link_result.html", status_code=400, heading="This link is not valid",
                 message="Please check that you opened the whole link from your message, "
                         "or contact the clinic.", view=None)


def _failure(error: FhirError) -> Response:
    """A page for a refusal from the services, with the status the API would use."""
    if isinstance(error, ResourceNotFound | ResourceGone):
        return _page("link_result.html", status_code=410, view=None,
                     heading="This appointment no longer exists",
                     message="Please contact the clinic.")
    if isinstance(error, Conflict):
        return _page("link_result.html", status_code=409, view=None,
                     heading="Please try again",
                     message="Your appointment was being changed at the same moment. "
                             "Please reload this page and try again.")
    status = 422 if isinstance(error, BusinessRuleViolation) else 500
    return _page("link_result.html", status_code=status, view=None,
                 heading="This could not be done", message="Please contact the clinic.")


def _page(template: str, *, status_code: int = 200, view: AppointmentView | None,
          **context: Any) -> HTMLResponse:
    html = _pages.get_template(template).render(view=view, when=_when(view), **context)
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _when(view: AppointmentView | None) -> str | None:
    """`Tuesday 11 March 2030, 10:00 (America/New_York)` in the clinic's time zone."""
    start = view.local_start if view is not None else None
    if start is None:
        return None
    return f"{start:%A} {start.day} {start:%B %Y, %H:%M} ({view.zone.key})"  # type: ignore[union-attr]
