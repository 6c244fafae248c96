"""The ICS invite and calendar feed, parsed back with `icalendar` as a mail client would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar

from fhir_server.notify.ics import FeedEntry, appointment_invite, appointment_uid, calendar_feed

Resource = dict[str, Any]


def appointment(status: str = "booked", version: str = "3", **overrides: Any) -> Resource:
    return {"resourceType": "Appointment", "id": "appt-7", "status": status,
            "meta": {"versionId": version, "lastUpdated": "2030-03-01T09:15:00.000Z"},
            "start": "2030-03-11T10:00:00-04:00", "end": "2030-03-11T10:30:00-04:00",
            "patientInstruction": "Bring your insurance card.", **overrides}


def invite(resource: Resource, method: str = "REQUEST") -> Calendar:
    body = appointment_invite(resource, method=method,  # type: ignore[arg-type]
                              summary="Cardiology consultation", location="Riverside Clinic",
                              organizer="Riverside Clinic <appointments@clinic.example>",
                              attendee="maria.garcia@example.com")
    return Calendar.from_ical(body)


def test_a_request_carries_every_field_a_calendar_needs_in_utc() -> None:
    calendar = invite(appointment())

    [event] = calendar.walk("VEVENT")
    assert str(calendar["method"]) == "REQUEST" and "fhir-scheduler" in str(calendar["prodid"])
    assert str(event["uid"]) == appointment_uid("appt-7")
    assert event["sequence"] == 3
    assert event["dtstart"].dt == datetime(2030, 3, 11, 14, 0, tzinfo=UTC)
    assert event["dtend"].dt == datetime(2030, 3, 11, 14, 30, tzinfo=UTC)
    assert event["dtstart"].dt.utcoffset().total_seconds() == 0
    assert event["dtstamp"].dt == datetime(2030, 3, 1, 9, 15, tzinfo=UTC)
    assert str(event["status"]) == "CONFIRMED"
    assert str(event["summary"]) == "Cardiology consultation"
    assert str(event["location"]) == "Riverside Clinic"
    assert str(event["description"]) == "Bring your insurance card."
    assert str(event["organizer"]) == "mailto:appointments@clinic.example"
    assert event["organizer"].params["CN"] == "Riverside Clinic"
    assert str(event["attendee"]) == "mailto:maria.garcia@example.com"


def test_a_cancel_matches_the_invite_and_supersedes_it() -> None:
    first = invite(appointment(version="1")).walk("VEVENT")[0]
    cancel = invite(appointment(status="cancelled", version="2"), method="CANCEL")

    [event] = cancel.walk("VEVENT")
    assert str(cancel["method"]) == "CANCEL"
    assert str(event["status"]) == "CANCELLED"
    assert str(event["uid"]) == str(first["uid"])
    assert event["sequence"] > first["sequence"]


def test_a_pending_appointment_is_tentative_and_no_attendee_is_optional() -> None:
    body = appointment_invite(appointment(status="pending"), method="REQUEST", summary="Visit",
                              location=None, organizer="no-reply@clinic.example",
                              attendee=None)

    [event] = Calendar.from_ical(body).walk("VEVENT")
    assert str(event["status"]) == "TENTATIVE"
    assert "attendee" not in event and "location" not in event


def test_a_feed_has_one_event_per_entry_and_no_method() -> None:
    body = calendar_feed([FeedEntry(appointment(), "Busy"),
                          FeedEntry(appointment(id="appt-8"), "Busy")], name="Dr. Okafor")

    calendar = Calendar.from_ical(body)
    assert "method" not in calendar
    assert str(calendar["x-wr-calname"]) == "Dr. Okafor"
    uids = [str(e["uid"]) for e in calendar.walk("VEVENT")]
    assert uids == [appointment_uid("appt-7"), appointment_uid("appt-8")]
    assert all(str(e["summary"]) == "Busy" for e in calendar.walk("VEVENT"))
