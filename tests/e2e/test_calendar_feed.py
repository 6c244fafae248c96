"""Calendar feeds at `/calendar/{token}.ics`, read as a calendar app would (no bearer token,
parsed with `icalendar`), on both stores: a practitioner's feed is busy-only, a patient's
has the details, and anything but a genuine feed token of a known owner is 404."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from icalendar import Calendar

from fhir_server.notify.ics import appointment_uid
from tests.e2e.patient_web import (
    MARIA,
    ORIGIN,
    PRACTITIONER,
    Clinic,
    add_maria,
    book_for_maria,
    hold_for_maria,
    running_clinic,
)
from tests.e2e.test_cli import CLI, cli_env
from tests.e2e.tokens import BASE

SOON = ("2030-03-11T14:00:00Z", "2030-03-11T14:30:00Z")
LATER = ("2030-03-12T14:00:00Z", "2030-03-12T14:30:00Z")
CANCELLED = ("2030-03-13T14:00:00Z", "2030-03-13T14:30:00Z")


@pytest.fixture
async def clinic(tmp_path: Path, store_url: str) -> AsyncIterator[Clinic]:
    async with running_clinic(tmp_path, store_url) as running:
        await add_maria(running)
        response = await running.fhir.put(PRACTITIONER, json={
            "resourceType": "Practitioner", "id": "p1", "active": True,
            "name": [{"family": "Okafor", "given": ["Amara"], "prefix": ["Dr."]}]})
        assert response.status_code == 201, response.text
        yield running


async def three_appointments(clinic: Clinic) -> tuple[str, str, str]:
    """A booked, a pending and a cancelled appointment of María with the practitioner."""
    booked = await book_for_maria(clinic, SOON)
    pending = await hold_for_maria(clinic, LATER)
    cancelled = await book_for_maria(clinic, CANCELLED)
    response = await clinic.fhir.patch(
        f"Appointment/{cancelled['id']}", json=[{"op": "replace", "path": "/status",
                                                 "value": "cancelled"}],
        headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 200, response.text
    return booked["id"], pending["id"], cancelled["id"]


async def feed(clinic: Clinic, owner: str) -> Calendar:
    response = await clinic.web.get(clinic.links.feed_url(owner).removeprefix(ORIGIN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


async def test_a_practitioners_feed_shows_busy_times_only(clinic: Clinic) -> None:
    booked, pending, _ = await three_appointments(clinic)

    calendar = await feed(clinic, PRACTITIONER)

    events = calendar.walk("VEVENT")
    assert [str(e["uid"]) for e in events] == [appointment_uid(booked), appointment_uid(pending)]
    assert {str(e["summary"]) for e in events} == {"Busy"}
    assert all("location" not in e and "description" not in e for e in events)
    text = calendar.to_ical().decode()
    assert "Garc" not in text and "maria" not in text.lower()


async def test_a_patients_feed_has_the_details(clinic: Clinic) -> None:
    booked, pending, _ = await three_appointments(clinic)
    response = await clinic.fhir.patch(
        f"Appointment/{booked}", json=[{"op": "add", "path": "/patientInstruction",
                                        "value": "Bring your insurance card."}],
        headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 200, response.text

    events = {str(e["uid"]): e for e in (await feed(clinic, MARIA)).walk("VEVENT")}

    assert set(events) == {appointment_uid(booked), appointment_uid(pending)}
    first, second = events[appointment_uid(booked)], events[appointment_uid(pending)]
    assert str(first["status"]) == "CONFIRMED" and str(second["status"]) == "TENTATIVE"
    assert str(first["description"]) == "Bring your insurance card."
    assert first["dtstart"].dt.isoformat() == "2030-03-11T14:00:00+00:00"


@pytest.mark.parametrize("path", ["/calendar/not-a-token.ics", "link", "unknown-owner"])
async def test_anything_but_a_known_owners_feed_token_is_404(clinic: Clinic, path: str) -> None:
    booked, _, _ = await three_appointments(clinic)
    if path == "link":
        path = "/calendar/" + clinic.links.confirm(booked).rsplit("/", 1)[1] + ".ics"
    elif path == "unknown-owner":
        path = clinic.links.feed_url("Patient/nobody").removeprefix(ORIGIN)

    response = await clinic.web.get(path)

    assert response.status_code == 404
    assert "BEGIN:VCALENDAR" not in response.text


async def test_the_cli_prints_a_feed_url_the_server_accepts(clinic: Clinic,
                                                           tmp_path: Path) -> None:
    await three_appointments(clinic)

    printed = subprocess.run(CLI + ["calendar-url", PRACTITIONER], check=True, text=True,
                             capture_output=True, env=cli_env(tmp_path, base_url=BASE))

    url = printed.stdout.strip()
    assert url.startswith(f"{ORIGIN}/calendar/") and url.endswith(".ics")
    response = await clinic.web.get(url.removeprefix(ORIGIN))
    assert response.status_code == 200 and b"BEGIN:VEVENT" in response.content
    refused = subprocess.run(CLI + ["calendar-url", "Organization/clinic"], text=True,
                             capture_output=True, env=cli_env(tmp_path, base_url=BASE))
    assert refused.returncode == 2
