"""Patients answer by SMS (`C`, `X`, `R`) and through one-click links, on both stores: the
appointment changes through the API's own rules, a prefetching GET changes nothing, and a
forged, tampered or expired request is refused with nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from fhir_server.notify.links import LinkAction, SignedLinks, load_or_create_secret
from tests.e2e.audit_support import audit_events
from tests.e2e.checks import versions_written
from tests.e2e.patient_web import (
    MARIA,
    MARIA_MOBILE,
    ORIGIN,
    Clinic,
    add_maria,
    appointment,
    book_for_maria,
    hold_for_maria,
    maria_status,
    running_clinic,
    twilio_signature,
)
from tests.e2e.test_appointment_operations import slot_status

SOON = ("2030-03-11T14:00:00Z", "2030-03-11T14:30:00Z")
LATER = ("2030-03-12T14:00:00Z", "2030-03-12T14:30:00Z")
INBOUND = f"{ORIGIN}/notify/sms/inbound"


@pytest.fixture
async def clinic(tmp_path: Path, store_url: str) -> AsyncIterator[Clinic]:
    async with running_clinic(tmp_path, store_url) as running:
        await add_maria(running)
        yield running


async def text(clinic: Clinic, body: str, *, sender: str = MARIA_MOBILE,
               signature: str | None = None) -> str:
    """Send an inbound SMS as Twilio would; the TwiML message answered."""
    form = {"MessageSid": "SM0123", "AccountSid": "AC42", "From": sender,
            "To": "+16175550100", "Body": body}
    response = await clinic.web.post("/notify/sms/inbound", data=form, headers={
        "X-Twilio-Signature": signature or twilio_signature(INBOUND, form)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    [message] = ElementTree.fromstring(response.text).findall("Message")
    return str(message.text)


def link_token(url: str) -> str:
    return url.removeprefix(f"{ORIGIN}/links/")


# --- SMS ------------------------------------------------------------------------------

async def test_c_confirms_the_senders_next_appointment(clinic: Clinic) -> None:
    later = await book_for_maria(clinic, LATER)
    soon = await book_for_maria(clinic, SOON)

    reply = await text(clinic, " c ")

    assert "confirmada" in reply  # María prefers Spanish
    assert maria_status(await appointment(clinic, soon["id"])) == "accepted"
    assert maria_status(await appointment(clinic, later["id"])) == "needs-action"
    responses = (await clinic.fhir.get("AppointmentResponse", params={
        "appointment": f"Appointment/{soon['id']}"})).json()
    [response] = [e["resource"] for e in responses["entry"]]
    assert response["actor"]["reference"] == MARIA
    assert response["participantStatus"] == "accepted"


async def test_c_books_a_pending_appointment_that_waited_only_for_the_patient(
        clinic: Clinic) -> None:
    held = await hold_for_maria(clinic, SOON)

    await text(clinic, "C")

    confirmed = await appointment(clinic, held["id"])
    assert confirmed["status"] == "booked"
    assert await slot_status(clinic.fhir, confirmed["slot"][0]["reference"].split("/")[1]) \
        == "busy"


async def test_x_cancels_through_the_state_machine_and_frees_the_slot(clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)

    reply = await text(clinic, "X")

    assert "cancelada" in reply
    cancelled = await appointment(clinic, soon["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"]["coding"][0]["code"] == "pat-crs"
    assert await slot_status(clinic.fhir, soon["slot"][0]["reference"].split("/")[1]) == "free"


async def test_r_answers_with_a_reschedule_link_and_changes_nothing(clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)
    before = await versions_written(clinic.fhir)

    reply = await text(clinic, "R")

    url = reply.split()[-1]
    claim = clinic.links.verify(link_token(url))
    assert (claim.action, claim.subject) == (LinkAction.RESCHEDULE, soon["id"])
    assert await versions_written(clinic.fhir) == before


async def test_a_forged_or_altered_request_is_refused_and_changes_nothing(
        clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)
    before = await versions_written(clinic.fhir)
    signed = {"MessageSid": "SM1", "From": MARIA_MOBILE, "Body": "C"}

    altered = await clinic.web.post("/notify/sms/inbound", data={**signed, "Body": "X"},
                                    headers={"X-Twilio-Signature":
                                             twilio_signature(INBOUND, signed)})
    other_key = await clinic.web.post("/notify/sms/inbound", data=signed, headers={
        "X-Twilio-Signature": twilio_signature(INBOUND, signed, token="not-ours")})
    unsigned = await clinic.web.post("/notify/sms/inbound", data=signed)

    assert [r.status_code for r in (altered, other_key, unsigned)] == [403, 403, 403]
    assert await versions_written(clinic.fhir) == before
    assert (await appointment(clinic, soon["id"]))["status"] == "booked"


async def test_an_unknown_number_or_no_appointment_gets_a_polite_answer(clinic: Clinic) -> None:
    before = await versions_written(clinic.fhir)

    stranger = await text(clinic, "X", sender="+14155550199")
    no_visit = await text(clinic, "X")

    assert "could not find an upcoming appointment" in stranger
    assert "No encontramos" in no_visit
    assert await versions_written(clinic.fhir) == before


async def test_any_other_text_explains_the_keywords(clinic: Clinic) -> None:
    await book_for_maria(clinic, SOON)

    assert "C para confirmar" in await text(clinic, "hola")


# --- one-click links --------------------------------------------------------------------

async def test_opening_a_link_shows_the_appointment_and_changes_nothing(clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)
    before = await versions_written(clinic.fhir)

    page = await clinic.web.get(clinic.links.cancel(soon["id"]).removeprefix(ORIGIN))

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "Cancel appointment" in page.text and '<form method="post">' in page.text
    assert "10:00 (America/New_York)" in page.text  # 14:00Z in the schedule's zone
    assert await versions_written(clinic.fhir) == before


async def test_posting_a_confirm_link_records_the_patients_acceptance(clinic: Clinic) -> None:
    held = await hold_for_maria(clinic, SOON)

    done = await clinic.web.post(clinic.links.confirm(held["id"]).removeprefix(ORIGIN))

    assert done.status_code == 200 and "Appointment confirmed" in done.text
    confirmed = await appointment(clinic, held["id"])
    assert confirmed["status"] == "booked" and maria_status(confirmed) == "accepted"


async def test_posting_a_cancel_link_cancels_once(clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)
    path = clinic.links.cancel(soon["id"]).removeprefix(ORIGIN)

    first = await clinic.web.post(path)
    after_first = await versions_written(clinic.fhir)
    second = await clinic.web.post(path)

    assert first.status_code == 200 and "Appointment cancelled" in first.text
    assert (await appointment(clinic, soon["id"]))["status"] == "cancelled"
    assert await slot_status(clinic.fhir, soon["slot"][0]["reference"].split("/")[1]) == "free"
    assert second.status_code == 200 and "already cancelled" in second.text
    assert await versions_written(clinic.fhir) == after_first


async def test_an_expired_link_is_refused_with_410(clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)
    issued_long_ago = SignedLinks(
        load_or_create_secret(clinic.settings.data_dir), public_url=ORIGIN,
        ttl=timedelta(hours=72), clock=lambda: datetime.now(UTC) - timedelta(hours=73))
    path = issued_long_ago.cancel(soon["id"]).removeprefix(ORIGIN)

    shown, posted = await clinic.web.get(path), await clinic.web.post(path)

    assert (shown.status_code, posted.status_code) == (410, 410)
    assert "expired" in posted.text
    assert (await appointment(clinic, soon["id"]))["status"] == "booked"


@pytest.mark.parametrize("forge", ["tampered", "feed-token", "other-secret"])
async def test_a_tampered_or_foreign_token_is_refused_with_400(clinic: Clinic,
                                                               forge: str) -> None:
    soon = await book_for_maria(clinic, SOON)
    genuine = link_token(clinic.links.cancel(soon["id"]))
    other = await book_for_maria(clinic, LATER)
    token = {
        "tampered": clinic.links.token(LinkAction.CANCEL, other["id"], expires=None)
        .split(".")[0] + "." + genuine.split(".")[1],
        "feed-token": clinic.links.feed_token(MARIA),
        "other-secret": link_token(SignedLinks(b"s" * 32, public_url=ORIGIN,
                                               ttl=timedelta(hours=1)).cancel(soon["id"])),
    }[forge]

    response = await clinic.web.post(f"/links/{token}")

    assert response.status_code == 400 and "not valid" in response.text
    for id in (soon["id"], other["id"]):
        assert (await appointment(clinic, id))["status"] == "booked"


async def test_links_need_no_bearer_token_but_the_fhir_api_still_does(clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)

    assert (await clinic.web.get(f"/fhir/Appointment/{soon['id']}")).status_code == 401
    assert isinstance(clinic.web, httpx.AsyncClient)


async def test_changes_by_sms_and_link_are_audited_with_the_patient_as_agent(
        clinic: Clinic) -> None:
    soon = await book_for_maria(clinic, SOON)
    later = await book_for_maria(clinic, LATER)

    await text(clinic, "C")
    await clinic.web.post(clinic.links.cancel(later["id"]).removeprefix(ORIGIN))
    await clinic.web.get(clinic.links.cancel(soon["id"]).removeprefix(ORIGIN))  # no change

    by_maria = await audit_events(clinic.fhir, f"agent={MARIA}")
    changed = [(e["entity"][0]["what"]["reference"].split("/_history/")[0], e["action"])
               for e in by_maria]
    assert sorted(changed) == \
        sorted([(f"Appointment/{soon['id']}", "U"), (f"Appointment/{later['id']}", "U")])
