"""The HTML pages of patient links: one Jinja2 environment, private headers, clinic-zone times.

Every page is `no-store`, `noindex`, framed by nobody and sends no Referer, because its URL
carries the patient's signed token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from fhir_server.fhir.errors import (
    BusinessRuleViolation,
    Conflict,
    FhirError,
    ResourceGone,
    ResourceNotFound,
)
from fhir_server.services.appointment_views import AppointmentView
from fhir_server.services.patient_offers import Offer
from fhir_server.services.patient_replies import Outcome

_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                     autoescape=select_autoescape(default=True), trim_blocks=True,
                     lstrip_blocks=True)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex, nofollow", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "form-action 'self'; frame-ancestors 'none'"}
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
    Outcome.RESCHEDULED: ("Appointment moved", "Your appointment has been moved to the time "
                          "below, and your previous time has been released."),
    Outcome.BOOKED: ("Appointment booked", "Thank you. Your appointment is booked for the "
                     "time below."),
    Outcome.ALREADY_BOOKED: ("Appointment already booked", "This appointment has already "
                             "been booked. Its details are below."),
}


@dataclass(frozen=True, slots=True)
class OfferDay:
    """The offers starting on one local day, headed as a patient reads the date."""

    label: str
    offers: tuple[Offer, ...]


def page(template: str, *, status_code: int = 200, view: AppointmentView | None,
         **context: Any) -> HTMLResponse:
    """A link page about `view` (None when the appointment cannot be shown)."""
    html = _pages.get_template(template).render(view=view, when=when(view), **context)
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def outcome_page(outcome: Outcome, view: AppointmentView) -> HTMLResponse:
    """What a patient's reply did, with the appointment as it now stands."""
    heading, message = _DONE[outcome]
    return page("link_result.html", heading=heading, message=message, view=view)


def invalid_link() -> HTMLResponse:
    """The page for a token this server did not issue, or one for another purpose."""
    return page("link_result.html", status_code=400, heading="This link is not valid",
                message="Please check that you opened the whole link from your message, "
                        "or contact the clinic.", view=None)


def failure(error: FhirError) -> HTMLResponse:
    """A page for a refusal from the services, with the status the API would use."""
    if isinstance(error, ResourceNotFound | ResourceGone):
        return page("link_result.html", status_code=410, view=None,
                    heading="This appointment no longer exists",
                    message="Please contact the clinic.")
    if isinstance(error, Conflict):
        return page("link_result.html", status_code=409, view=None,
                    heading="Please try again",
                    message="Your appointment was being changed at the same moment. "
                            "Please reload this page and try again.")
    status = 422 if isinstance(error, BusinessRuleViolation) else 500
    return page("link_result.html", status_code=status, view=None,
                heading="This could not be done", message="Please contact the clinic.")


def when(view: AppointmentView | None) -> str | None:
    """`Tuesday 11 March 2030, 10:00 (America/New_York)` in the clinic's time zone."""
    start = view.local_start if view is not None else None
    if start is None:
        return None
    return f"{day_label(start.date())}, {start:%H:%M} ({view.zone.key})"  # type: ignore[union-attr]


def offer_days(offers: Sequence[Offer]) -> list[OfferDay]:
    """Offers grouped by their local day, in order; the zone is named when they differ."""
    zones = {o.zone.key for o in offers}
    days: dict[tuple[date, str], list[Offer]] = {}
    for offer in offers:
        days.setdefault((offer.start.astimezone(offer.zone).date(), offer.zone.key),
                        []).append(offer)
    return [OfferDay(day_label(day) + (f" ({zone})" if len(zones) > 1 else ""), tuple(group))
            for (day, zone), group in days.items()]


def shared_zone(offers: Sequence[Offer]) -> str | None:
    """The one time zone every offer is in, to name once above the list."""
    zones = {o.zone.key for o in offers}
    return zones.pop() if len(zones) == 1 else None


def local_time(moment: datetime, offer: Offer) -> str:
    """`10:00` in the offer's time zone."""
    return f"{moment.astimezone(offer.zone):%H:%M}"


def day_label(day: date) -> str:
    """`Tuesday 11 March 2030` (no zero padding, whatever the platform's strftime)."""
    return f"{day:%A} {day.day} {day:%B %Y}"


_pages.filters["local_time"] = local_time
