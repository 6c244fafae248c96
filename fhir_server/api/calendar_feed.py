"""`GET /calendar/{token}.ics`: a practitioner's (busy-only) or patient's iCalendar feed.

The signed feed token is the credential (calendar apps cannot send bearer tokens); any
token that is not a genuine feed token, or whose owner is gone, is a plain 404."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.fhir.errors import ResourceGone, ResourceNotFound
from fhir_server.notify.ics import BUSY, FeedEntry, calendar_feed
from fhir_server.notify.links import InvalidLink, LinkAction, SignedLinks
from fhir_server.services.calendar_feeds import OwnerFeed, owner_feed

router = APIRouter()


@router.get("/calendar/{token}.ics")
async def feed(request: Request, token: str) -> Response:
    """The owner's appointments from a month back on, as text/calendar."""
    links: SignedLinks = request.app.state.links
    try:
        claim = links.verify(token)
        if claim.action is not LinkAction.FEED:
            raise InvalidLink("not a feed token")
        owned = await owner_feed(fhir_context(request), claim.subject, now=datetime.now(UTC))
    except (InvalidLink, ResourceNotFound, ResourceGone):
        return PlainTextResponse("Not found", status_code=404)
    return Response(calendar_feed(_entries(owned), name=_name(owned)),
                    media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=300",
                             "Content-Disposition": 'inline; filename="appointments.ics"'})


def _entries(owned: OwnerFeed) -> list[FeedEntry]:
    if owned.busy_only:
        return [FeedEntry(view.appointment, BUSY) for view in owned.appointments]
    return [FeedEntry(view.appointment, view.title, view.location,
                      view.appointment.get("patientInstruction"))
            for view in owned.appointments]


def _name(owned: OwnerFeed) -> str:
    return "Busy times" if owned.busy_only else "My appointments"
