"""Messages composed from the demo clinic's records in a real store, sent through a real SMTP
server: what the patient reads (instructions, preparation, place, contact, links, local
time), the calendar invite or cancellation, the patient's language, and template overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from icalendar import Calendar
from jinja2 import UndefinedError

from fhir_server.notify.channels.email import SmtpSender
from fhir_server.notify.content import compose
from fhir_server.notify.ics import appointment_uid
from fhir_server.notify.links import SignedLinks
from fhir_server.notify.messages import (
    MESSAGE_KIND_SYSTEM,
    ChannelName,
    DeliveryFailed,
    MessageKind,
    OutboundMessage,
)
from fhir_server.notify.preferences import plan_channels
from fhir_server.notify.records import Records
from fhir_server.seed.demo import availability, make_appointment, make_facilities, make_schedule
from fhir_server.seed.directory import (
    PATIENTS,
    STAFF,
    instant,
    make_patient,
    make_practitioner,
    ref,
)
from fhir_server.services import resources
from fhir_server.services.context import FhirContext
from fhir_server.services.wiring import make_context
from fhir_server.settings import REPO_ROOT, get_settings
from fhir_server.store.protocol import Store
from tests.support.smtp_sink import SmtpSink, running_smtp_sink

NOW = datetime(2030, 3, 1, 12, tzinfo=UTC)
WINTER_DAY = date(2030, 3, 5)  # EST (UTC-5); DST starts on 2030-03-10
SUMMER_DAY = date(2030, 7, 9)  # EDT (UTC-4)
OKAFOR = STAFF[0]  # general consultation in exam room 1
INSTRUCTION = "Please bring your blood-pressure diary from the last two weeks."
PREPARATION = "Please arrive 10 minutes early"  # general-consultation's HealthcareService.comment
LINKS = SignedLinks(b"k" * 32, public_url="https://clinic.example", ttl=timedelta(hours=72),
                    clock=lambda: NOW)


@pytest.fixture(autouse=True)
def packaged_templates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings as deployed by default (no override dir), whatever the shell exports."""
    monkeypatch.delenv("FHIR_SCHEDULER_TEMPLATES_DIR", raising=False)
    monkeypatch.delenv("FHIR_SCHEDULER_DEFAULT_LANGUAGE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with running_smtp_sink() as sink:
        yield sink


@pytest.fixture
async def ctx(store: Store) -> FhirContext:
    """The demo clinic's directory, Dr. Okafor's schedule, one slot and two bookings on it."""
    context = make_context(store, capability_dir=REPO_ROOT / "capability",
                           base_url="http://testserver/fhir")
    plain = dataclasses.replace(context, rules={})  # no slot generation, no booking rules
    schedule = make_schedule("schedule-okafor", [ref("Practitioner", OKAFOR.id)], WINTER_DAY,
                             "Clinic hours", availability())
    directory = [r for r in make_facilities(WINTER_DAY) if r["resourceType"] != "Schedule"]
    for resource in [*directory, make_practitioner(OKAFOR), schedule,
                     *(make_patient(*row) for row in PATIENTS)]:
        await resources.update(plain, resource["resourceType"], resource["id"], resource, now=NOW)
    for patient_id, day in (("james-wilson", WINTER_DAY), ("maria-garcia", SUMMER_DAY)):
        await book(plain, patient_id, day)
    return context


async def book(ctx: FhirContext, patient_id: str, day: date) -> None:
    start, end = instant(day, time(10)), instant(day, time(10, 30))
    slot = {"resourceType": "Slot", "id": f"slot-{patient_id}", "status": "busy",
            "schedule": ref("Schedule", "schedule-okafor"), "start": start, "end": end,
            "serviceType": [{"coding": [{"system": "http://snomed.info/sct",
                                         "code": "11429006", "display": "Consultation"}],
                             "text": "Consultation"}],
            "specialty": []}
    appointment = make_appointment(slot, patient_id, OKAFOR, day) | {
        "id": f"appt-{patient_id}", "patientInstruction": INSTRUCTION}
    del appointment["specialty"]
    for resource in (slot, appointment):
        await resources.update(ctx, resource["resourceType"], resource["id"], resource, now=NOW)


def request(kind: MessageKind, patient_id: str = "james-wilson", *,
            about: str | None = None, note: str | None = None) -> dict[str, Any]:
    about = about if about is not None else f"Appointment/appt-{patient_id}"
    body: dict[str, Any] = {
        "resourceType": "CommunicationRequest", "id": "cr-1", "status": "active",
        "category": [{"coding": [{"system": MESSAGE_KIND_SYSTEM, "code": str(kind)}]}],
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if about:
        body["about"] = [{"reference": about}]
    if note:
        body["payload"] = [{"contentString": note}]
    return body


async def write(ctx: FhirContext, kind: MessageKind, *, channel: ChannelName = ChannelName.EMAIL,
                language: str = "en", **options: Any) -> OutboundMessage:
    return await compose(Records(ctx), request(kind, **options), channel=channel,
                         to="patient@example.com", language=language, links=LINKS,
                         idempotency_key="cr-1/1")


async def deliver(message: OutboundMessage, sink: SmtpSink) -> EmailMessage:
    sender = SmtpSender(host=sink.host, port=sink.port, sender=get_settings().smtp_from)
    receipt = await sender.send(message)
    [email] = sink.messages()
    assert email["Message-ID"] == receipt.provider_id
    return email


def invite(email: EmailMessage) -> tuple[str, Calendar]:
    [attachment] = list(email.iter_attachments())
    return attachment.get_param("method"), Calendar.from_ical(attachment.get_content())


def event(calendar: Calendar) -> Any:
    [found] = calendar.walk("VEVENT")
    return found


async def test_a_confirmation_email_says_everything_the_patient_needs(
        ctx: FhirContext, smtp_sink: SmtpSink) -> None:
    email = await deliver(await write(ctx, MessageKind.CONFIRMATION), smtp_sink)

    text = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    assert email["Subject"] == "Appointment confirmed: Tue Mar 5, 10:00 AM EST"
    assert email["To"] == "patient@example.com"
    for body in (text, html):
        assert "Dear James Wilson," in body
        assert "Tuesday, March 5, 2030, 10:00 AM to 10:30 AM EST" in body
        assert "Dr. Amara Okafor" in body
        assert INSTRUCTION in body
        assert PREPARATION in body
        assert "Exam room 1, Riverside Clinic main building" in body
        assert "250 Riverside Avenue, Suite 200, Boston, MA 02114" in body
        assert "General examination room, ground floor" in body  # directions
        assert "+1-617-555-0100" in body  # the service's phone
        for link in (LINKS.confirm("appt-james-wilson"), LINKS.cancel("appt-james-wilson"),
                     LINKS.reschedule("appt-james-wilson")):
            assert link in body
    assert "Riverside Family &amp; Specialty Clinic" in html  # escaped in HTML only
    assert "Riverside Family & Specialty Clinic" in text


async def test_the_confirmation_invite_is_an_itip_request_for_this_appointment(
        ctx: FhirContext, smtp_sink: SmtpSink) -> None:
    email = await deliver(await write(ctx, MessageKind.CONFIRMATION), smtp_sink)

    method, calendar = invite(email)
    vevent = event(calendar)
    assert method == "REQUEST" and calendar["METHOD"] == "REQUEST"
    assert str(vevent["UID"]) == appointment_uid("appt-james-wilson")
    assert vevent.decoded("DTSTART") == datetime(2030, 3, 5, 15, tzinfo=UTC)
    assert vevent.decoded("DTEND") == datetime(2030, 3, 5, 15, 30, tzinfo=UTC)
    assert str(vevent["SUMMARY"]) == "Consultation with Dr. Amara Okafor"
    assert "250 Riverside Avenue" in str(vevent["LOCATION"])
    assert str(vevent["ORGANIZER"]) == "mailto:appointments@riverside-clinic.example.org"
    assert str(vevent["ATTENDEE"]) == "mailto:patient@example.com"


async def test_a_change_carries_an_updated_invite_with_the_same_uid(
        ctx: FhirContext, smtp_sink: SmtpSink) -> None:
    email = await deliver(await write(ctx, MessageKind.CHANGE), smtp_sink)

    method, calendar = invite(email)
    assert email["Subject"].startswith("Appointment rescheduled")
    assert method == "REQUEST"
    assert str(event(calendar)["UID"]) == appointment_uid("appt-james-wilson")


async def test_a_cancellation_carries_a_cancelling_invite_and_no_action_links(
        ctx: FhirContext, smtp_sink: SmtpSink) -> None:
    email = await deliver(await write(ctx, MessageKind.CANCELLATION), smtp_sink)

    method, calendar = invite(email)
    text = email.get_body(("plain",)).get_content()
    assert method == "CANCEL" and calendar["METHOD"] == "CANCEL"
    assert str(event(calendar)["STATUS"]) == "CANCELLED"
    assert str(event(calendar)["UID"]) == appointment_uid("appt-james-wilson")
    assert "has been cancelled" in text and "https://clinic.example" not in text


async def test_a_reminder_has_no_invite(ctx: FhirContext, smtp_sink: SmtpSink) -> None:
    email = await deliver(await write(ctx, MessageKind.REMINDER), smtp_sink)

    assert list(email.iter_attachments()) == []
    assert email["Subject"] == "Reminder: your appointment on Tue Mar 5, 10:00 AM EST"


async def test_a_spanish_speaking_patient_gets_the_spanish_templates_in_summer_time(
        ctx: FhirContext, smtp_sink: SmtpSink) -> None:
    patient = orjson.loads((await resources.read(ctx, "Patient", "maria-garcia")).body or b"")
    plan = plan_channels(patient, available=frozenset(ChannelName), kind=MessageKind.REMINDER,
                         now=NOW, same_day=False, default_language="en")

    message = await write(ctx, MessageKind.REMINDER, patient_id="maria-garcia",
                          language=plan.language)
    email = await deliver(message, smtp_sink)

    text = email.get_body(("plain",)).get_content()
    assert plan.language == "es" and message.language == "es"
    assert email["Content-Language"] == "es"
    assert email["Subject"] == "Recordatorio: su cita del martes 9 de julio, 10:00 EDT"
    assert "Estimado/a María García:" in text
    assert "martes, 9 de julio de 2030, 10:00 a 10:30 EDT" in text
    assert "Cómo prepararse:" in text and PREPARATION in text


async def test_a_language_without_templates_falls_back_to_the_default(ctx: FhirContext) -> None:
    message = await write(ctx, MessageKind.CONFIRMATION, language="vi")

    assert message.language == "en"
    assert message.subject.startswith("Appointment confirmed")


async def test_an_administrator_override_replaces_only_the_templates_it_has(
        ctx: FhirContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "confirmation.subject.j2").write_text(
        "{{ clinic }} booking for {{ patient.name }} <{{ appointment.service }}>")
    monkeypatch.setenv("FHIR_SCHEDULER_TEMPLATES_DIR", str(tmp_path))
    get_settings.cache_clear()

    message = await write(ctx, MessageKind.CONFIRMATION)

    assert message.subject == "Riverside Family & Specialty Clinic booking for James Wilson " \
                              "<Consultation>"
    assert INSTRUCTION in message.text  # the packaged body is still used


async def test_an_override_template_with_an_unknown_variable_fails_loudly(
        ctx: FhirContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "reminder.subject.j2").write_text("Hi {{ patient.nickname }}")
    monkeypatch.setenv("FHIR_SCHEDULER_TEMPLATES_DIR", str(tmp_path))
    get_settings.cache_clear()

    with pytest.raises(UndefinedError, match="nickname"):
        await write(ctx, MessageKind.REMINDER)


async def test_an_sms_is_short_with_the_key_facts_and_reply_codes(ctx: FhirContext) -> None:
    message = await write(ctx, MessageKind.REMINDER, channel=ChannelName.SMS)

    assert message.channel is ChannelName.SMS and message.html is None
    assert len(message.text) <= 320
    assert "Tue Mar 5, 10:00 AM EST" in message.text
    assert "Dr. Amara Okafor" in message.text and "Exam room 1" in message.text
    assert "Reply C to confirm, X to cancel, R to reschedule" in message.text


async def test_an_overlong_sms_from_an_override_is_cut_to_320_characters(
        ctx: FhirContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "reminder.sms.j2").write_text("{{ 'Please come. ' * 40 }}")
    monkeypatch.setenv("FHIR_SCHEDULER_TEMPLATES_DIR", str(tmp_path))
    get_settings.cache_clear()

    message = await write(ctx, MessageKind.REMINDER, channel=ChannelName.SMS)

    assert len(message.text) <= 320 and message.text.endswith("…")
    assert message.text.startswith("Please come. Please come.")


async def test_a_voice_script_is_plain_sentences_without_links(ctx: FhirContext) -> None:
    message = await write(ctx, MessageKind.CONFIRMATION, channel=ChannelName.VOICE)

    assert "Tuesday, March 5, at 10:00 AM" in message.text
    assert "http" not in message.text and "<" not in message.text
    assert "\n" not in message.text and message.attachments == ()


async def test_a_proposal_asks_the_patient_to_book_with_a_link(ctx: FhirContext) -> None:
    proposal = {"resourceType": "Appointment", "id": "proposal-1", "status": "proposed",
                "serviceType": [{"text": "Consultation"}],
                "requestedPeriod": [{"start": "2030-04-01", "end": "2030-04-15"}],
                "participant": [
                    {"actor": ref("Patient", "james-wilson"), "status": "needs-action"},
                    {"actor": ref("Practitioner", OKAFOR.id), "status": "accepted"}]}
    await resources.update(dataclasses.replace(ctx, rules={}), "Appointment", "proposal-1",
                           proposal, now=NOW)

    message = await write(ctx, MessageKind.PROPOSAL, about="Appointment/proposal-1")

    assert LINKS.book("proposal-1") in message.text
    assert "Dr. Amara Okafor recommends a follow-up appointment (Consultation) between " \
           "Monday, April 1, 2030 and Monday, April 15, 2030" in message.text
    assert message.attachments == ()


async def test_a_follow_up_without_an_appointment_carries_the_staff_note(
        ctx: FhirContext) -> None:
    note = "Time for your annual flu vaccination; please call us to arrange it."

    message = await write(ctx, MessageKind.FOLLOW_UP, about="", note=note)

    assert note in message.text and message.attachments == ()
    assert message.subject == "A message from Riverside Family & Specialty Clinic"


async def test_a_message_about_a_missing_appointment_fails_permanently(
        ctx: FhirContext) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await write(ctx, MessageKind.REMINDER, about="Appointment/gone")

    assert failed.value.permanent is True


async def test_a_request_without_a_known_kind_fails_permanently(ctx: FhirContext) -> None:
    unknown = request(MessageKind.REMINDER)
    unknown["category"][0]["coding"][0]["code"] = "newsletter"

    with pytest.raises(DeliveryFailed) as failed:
        await compose(Records(ctx), unknown, channel=ChannelName.EMAIL, to="patient@example.com",
                      language="en", links=LINKS, idempotency_key="cr-1/1")

    assert failed.value.permanent is True
