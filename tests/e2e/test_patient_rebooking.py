"""Patients move an appointment or book a proposal from a signed link, on both stores: the page
lists real free times and changes nothing, a posted time is booked only if it is still on offer
(through `$reschedule`'s and the REST update's rules), anything else is refused with nothing
written, and of many patients racing for one time exactly one gets it."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhir_server.notify.links import LinkAction, SignedLinks, load_or_create_secret
from tests.e2e.audit_support import audit_events
from tests.e2e.checks import created, versions_written
from tests.e2e.patient_web import (
    MARIA,
    ORIGIN,
    Clinic,
    add_maria,
    appointment,
    book_for_maria,
    maria_status,
    running_clinic,
    schedule_of,
    slot_in,
)
from tests.e2e.test_appointment_operations import booked, candidate, slot_status

Resource = dict[str, Any]
CLINIC_ZONE = ZoneInfo("America/New_York")
RACERS = 10
_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def ahead(days: int, hour: int, minute: int = 0) -> tuple[str, str]:
    """A half-hour `days` from today at `hour:minute` UTC, as FHIR instants."""
    start = _TODAY + timedelta(days=days, hours=hour, minutes=minute)
    return (f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{start + timedelta(minutes=30):%Y-%m-%dT%H:%M:%SZ}")


CURRENT = ahead(3, 14)
NEW = ahead(5, 14)
OTHER_NEW = ahead(5, 15)
OUTSIDE = ahead(8, 14)


@pytest.fixture
async def clinic(tmp_path: Path, store_url: str) -> AsyncIterator[Clinic]:
    async with running_clinic(tmp_path, store_url) as running:
        await add_maria(running)
        yield running


def path(url: str) -> str:
    return url.removeprefix(ORIGIN)


def offered(page: str) -> list[tuple[str, tuple[str, ...]]]:
    """The (start, slot ids) each form on the page posts, in order."""
    forms = re.findall(r'<form method="post">(.*?)</form>', page, flags=re.S)
    return [(re.findall(r'name="start" value="([^"]+)"', form)[0],
             tuple(re.findall(r'name="slot" value="([^"]+)"', form))) for form in forms]


def local(instant: str) -> str:
    return f"{datetime.fromisoformat(instant.replace('Z', '+00:00')).astimezone(CLINIC_ZONE):%H:%M}"


async def choose(clinic: Clinic, url: str, start: str, *slot_ids: str) -> Any:
    return await clinic.web.post(path(url), data={"start": start, "slot": list(slot_ids)})


async def slot_of(appointment: Resource) -> str:
    return str(appointment["slot"][0]["reference"].split("/")[1])


# --- reschedule -------------------------------------------------------------------------

async def test_the_reschedule_page_lists_real_free_times_and_changes_nothing(
        clinic: Clinic) -> None:
    current = await book_for_maria(clinic, CURRENT)
    mine = await schedule_of(clinic)
    free, later = await slot_in(clinic, mine, NEW), await slot_in(clinic, mine, OTHER_NEW)
    taken = await slot_in(clinic, mine, ahead(6, 14), status="busy")
    stranger = await slot_in(clinic, await schedule_of(clinic, "Practitioner/p2"), ahead(6, 15))
    before = await versions_written(clinic.fhir)

    page = await clinic.web.get(path(clinic.links.reschedule(current["id"])))

    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    assert offered(page.text) == [(NEW[0], (free,)), (OTHER_NEW[0], (later,))]
    assert taken not in page.text and stranger not in page.text
    assert f"{local(NEW[0])}&ndash;{local(NEW[1])}" in page.text  # in the schedule's zone
    assert "Times are shown in America/New_York time." in page.text
    assert await versions_written(clinic.fhir) == before


async def test_posting_an_offered_time_moves_the_appointment(clinic: Clinic) -> None:
    current = await book_for_maria(clinic, CURRENT)
    old_slot = await slot_of(current)
    new_slot = await slot_in(clinic, await schedule_of(clinic), NEW)

    done = await choose(clinic, clinic.links.reschedule(current["id"]), NEW[0], new_slot)

    assert done.status_code == 200, done.text
    assert "Appointment moved" in done.text and local(NEW[0]) in done.text
    moved = await appointment(clinic, current["id"])
    assert (moved["status"], moved["start"], moved["end"]) == ("booked", NEW[0], NEW[1])
    assert moved["slot"] == [{"reference": f"Slot/{new_slot}"}]
    assert await slot_status(clinic.fhir, new_slot) == "busy"
    assert await slot_status(clinic.fhir, old_slot) == "free"
    [event] = await audit_events(clinic.fhir, f"agent={MARIA}")
    assert event["entity"][0]["what"]["reference"].startswith(f"Appointment/{current['id']}")
    assert event["action"] == "U" and event["outcomeDesc"] == "rescheduled by the patient"


@pytest.mark.parametrize("pick", ["other-practitioner", "busy-slot", "moved-start",
                                  "extra-slot", "no-choice"])
async def test_a_time_not_on_offer_is_refused_with_nothing_written(clinic: Clinic,
                                                                   pick: str) -> None:
    current = await book_for_maria(clinic, CURRENT)
    mine = await schedule_of(clinic)
    free = await slot_in(clinic, mine, NEW)
    busy = await slot_in(clinic, mine, OTHER_NEW, status="busy")
    stranger = await slot_in(clinic, await schedule_of(clinic, "Practitioner/p2"), OTHER_NEW)
    url = clinic.links.reschedule(current["id"])
    before = await versions_written(clinic.fhir)

    refused = await {
        "other-practitioner": lambda: choose(clinic, url, OTHER_NEW[0], stranger),
        "busy-slot": lambda: choose(clinic, url, OTHER_NEW[0], busy),
        "moved-start": lambda: choose(clinic, url, OTHER_NEW[0], free),
        "extra-slot": lambda: choose(clinic, url, NEW[0], free, stranger),
        "no-choice": lambda: clinic.web.post(path(url)),
    }[pick]()

    assert refused.status_code == (400 if pick == "no-choice" else 409), refused.text
    assert offered(refused.text) == [(NEW[0], (free,))]  # fresh times to pick from
    assert await versions_written(clinic.fhir) == before
    assert (await appointment(clinic, current["id"]))["start"] == CURRENT[0]
    assert [await slot_status(clinic.fhir, s) for s in (free, busy, stranger)] == \
        ["free", "busy", "free"]


@pytest.mark.parametrize("forge", ["expired", "tampered", "confirm-link"])
async def test_an_expired_tampered_or_other_link_cannot_move(clinic: Clinic, forge: str) -> None:
    current = await book_for_maria(clinic, CURRENT)
    new_slot = await slot_in(clinic, await schedule_of(clinic), NEW)
    old_links = SignedLinks(load_or_create_secret(clinic.settings.data_dir), public_url=ORIGIN,
                            ttl=timedelta(hours=72),
                            clock=lambda: datetime.now(UTC) - timedelta(hours=73))
    genuine = clinic.links.reschedule(current["id"])
    url = {
        "expired": old_links.reschedule(current["id"]),
        "tampered": f"{ORIGIN}/links/" + clinic.links.token(
            LinkAction.RESCHEDULE, "someone-else", expires=None).split(".")[0]
        + "." + genuine.split(".")[1],
        "confirm-link": clinic.links.confirm(current["id"]),
    }[forge]
    before = await versions_written(clinic.fhir)

    response = await choose(clinic, url, NEW[0], new_slot)

    if forge == "confirm-link":  # a confirm link confirms; it never moves the appointment
        assert response.status_code == 200
    else:
        assert response.status_code == {"expired": 410, "tampered": 400}[forge]
        assert await versions_written(clinic.fhir) == before
    assert (await appointment(clinic, current["id"]))["start"] == CURRENT[0]
    assert await slot_status(clinic.fhir, new_slot) == "free"


async def test_of_patients_racing_for_one_time_exactly_one_gets_it(tmp_path: Path,
                                                                   store_url: str) -> None:
    async with running_clinic(tmp_path, store_url, racing=True) as clinic:
        mine = await schedule_of(clinic)
        racers = [await booked(clinic.fhir, [await slot_in(clinic, mine, ahead(3, 12, 30 * n))],
                               when=ahead(3, 12, 30 * n), patient=f"Patient/racer{n}")
                  for n in range(RACERS)]
        target = await slot_in(clinic, mine, NEW)
        for racer in racers:  # every patient is offered the time
            page = await clinic.web.get(path(clinic.links.reschedule(racer["id"])))
            assert (NEW[0], (target,)) in offered(page.text)

        responses = await asyncio.gather(*(
            choose(clinic, clinic.links.reschedule(r["id"]), NEW[0], target) for r in racers))

        assert Counter(r.status_code for r in responses) == {200: 1, 409: RACERS - 1}
        lost = next(r for r in responses if r.status_code == 409)
        assert "no longer available" in lost.text and target not in lost.text
        after = [await appointment(clinic, r["id"]) for r in racers]
        assert sum(a["start"] == NEW[0] for a in after) == 1
        assert await slot_status(clinic.fhir, target) == "busy"
        for before, now in zip(racers, after, strict=True):
            if now["start"] != NEW[0]:  # the losers keep their time and their slot
                assert now["slot"] == before["slot"]
                assert await slot_status(clinic.fhir, await slot_of(now)) == "busy"


# --- booking a proposal -----------------------------------------------------------------

async def propose(clinic: Clinic, period: tuple[str, str], patient: str = MARIA) -> Resource:
    """A follow-up proposal for the patient with the practitioner, as staff create one."""
    proposal = candidate([], status="proposed", patient=patient,
                         requestedPeriod=[{"start": period[0], "end": period[1]}],
                         minutesDuration=30, description="Follow-up visit")
    proposal.pop("start"), proposal.pop("end")
    return await created(clinic.fhir, proposal)


async def test_a_proposal_link_books_a_time_inside_the_requested_period(clinic: Clinic) -> None:
    mine = await schedule_of(clinic)
    inside, outside = await slot_in(clinic, mine, NEW), await slot_in(clinic, mine, OUTSIDE)
    proposal = await propose(clinic, (ahead(4, 0)[0], ahead(7, 0)[0]))
    url = clinic.links.book(proposal["id"])
    before = await versions_written(clinic.fhir)

    page = await clinic.web.get(path(url))

    assert page.status_code == 200 and "Book your appointment" in page.text
    assert offered(page.text) == [(NEW[0], (inside,))]
    assert outside not in page.text
    assert await versions_written(clinic.fhir) == before

    done = await choose(clinic, url, NEW[0], inside)

    assert done.status_code == 200 and "Appointment booked" in done.text, done.text
    booked_now = await appointment(clinic, proposal["id"])
    assert (booked_now["status"], booked_now["start"], booked_now["end"]) == \
        ("booked", NEW[0], NEW[1])
    assert booked_now["slot"] == [{"reference": f"Slot/{inside}"}]
    assert maria_status(booked_now) == "accepted"
    assert await slot_status(clinic.fhir, inside) == "busy"
    again = await choose(clinic, url, NEW[0], inside)
    assert again.status_code == 200 and "already been booked" in again.text
    [event] = await audit_events(clinic.fhir, f"agent={MARIA}")
    assert event["outcomeDesc"] == "booked by the patient"


async def test_a_proposal_link_refuses_a_time_outside_the_requested_period(
        clinic: Clinic) -> None:
    mine = await schedule_of(clinic)
    inside, outside = await slot_in(clinic, mine, NEW), await slot_in(clinic, mine, OUTSIDE)
    proposal = await propose(clinic, (ahead(4, 0)[0], ahead(7, 0)[0]))
    before = await versions_written(clinic.fhir)

    refused = await choose(clinic, clinic.links.book(proposal["id"]), OUTSIDE[0], outside)

    assert refused.status_code == 409, refused.text
    assert offered(refused.text) == [(NEW[0], (inside,))]
    assert await versions_written(clinic.fhir) == before
    assert (await appointment(clinic, proposal["id"]))["status"] == "proposed"
    assert await slot_status(clinic.fhir, outside) == "free"


async def test_of_patients_racing_to_book_proposals_at_one_time_exactly_one_gets_it(
        tmp_path: Path, store_url: str) -> None:
    async with running_clinic(tmp_path, store_url, racing=True) as clinic:
        target = await slot_in(clinic, await schedule_of(clinic), NEW)
        proposals = [await propose(clinic, (ahead(4, 0)[0], ahead(7, 0)[0]), f"Patient/racer{n}")
                     for n in range(RACERS)]

        responses = await asyncio.gather(*(
            choose(clinic, clinic.links.book(p["id"]), NEW[0], target) for p in proposals))

        assert Counter(r.status_code for r in responses) == {200: 1, 409: RACERS - 1}
        statuses = Counter([(await appointment(clinic, p["id"]))["status"] for p in proposals])
        assert statuses == {"booked": 1, "proposed": RACERS - 1}
        assert await slot_status(clinic.fhir, target) == "busy"
