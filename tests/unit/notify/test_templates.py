"""Every packaged template renders for every kind, language and channel, with full records and
with sparse ones (no place, no contact, no names): StrictUndefined turns a template slip into
a failed send, so it must be caught here."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fhir_server.notify.content import template_environment, template_variables
from fhir_server.notify.message_facts import Contact, MessageFacts, Place, Visit
from fhir_server.notify.messages import MessageKind
from fhir_server.notify.preferences import TEMPLATE_LANGUAGES

ZONE = ZoneInfo("America/New_York")
PARTS = ("subject", "txt", "html", "sms", "voice")


class FakeLinks:
    def confirm(self, appointment_id: str) -> str:
        return f"https://c.example/confirm/{appointment_id}"

    def cancel(self, appointment_id: str) -> str:
        return f"https://c.example/cancel/{appointment_id}"

    def reschedule(self, appointment_id: str) -> str:
        return f"https://c.example/reschedule/{appointment_id}"

    def book(self, proposal_id: str) -> str:
        return f"https://c.example/book/{proposal_id}"


FULL = MessageFacts(
    patient_name="María García", clinic="Riverside <Clinic>",
    visit=Visit("a1", {}, datetime(2030, 3, 5, 14, 5, tzinfo=ZONE),
                datetime(2030, 3, 5, 14, 35, tzinfo=ZONE), "Consultation", "Dr. Amara Okafor",
                "Bring your diary."),
    requested_start=datetime(2030, 4, 1, tzinfo=ZONE),
    requested_end=datetime(2030, 4, 15, tzinfo=ZONE),
    place=Place("Exam room 1", "250 Riverside Avenue", "Ground floor"),
    preparation="Fast for 8 hours.", contact=Contact("+1-617-555-0100", "desk@c.example"),
    note="Time for your check-up.")
SPARSE = MessageFacts(
    patient_name="", clinic=None,
    visit=Visit("a1", {}, datetime(2030, 3, 5, 9, tzinfo=ZONE), None, None, None, None),
    requested_start=None, requested_end=None, place=None, preparation=None,
    contact=Contact(None, None), note=None)


@pytest.mark.parametrize("facts", [FULL, SPARSE], ids=["full", "sparse"])
@pytest.mark.parametrize("language", sorted(TEMPLATE_LANGUAGES))
@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_part_renders(kind: MessageKind, language: str, facts: MessageFacts) -> None:
    templates = template_environment(None)
    variables = template_variables(kind, language, facts, FakeLinks())

    rendered = {part: templates.get_template(f"{language}/{kind}.{part}.j2").render(variables)
                for part in PARTS}

    assert all(text.strip() for text in rendered.values())
    assert len(" ".join(rendered["sms"].split())) <= 320
    assert "http" not in rendered["voice"]
    assert "<Clinic>" not in rendered["html"]  # autoescaped
    if facts is FULL and kind is not MessageKind.FOLLOW_UP:
        assert "2:05 PM" in rendered["txt"] or "14:05" in rendered["txt"] \
            or kind is MessageKind.PROPOSAL


def test_a_follow_up_renders_without_any_appointment() -> None:
    facts = MessageFacts("James Wilson", None, None, None, None, None, None,
                         Contact(None, None), "Take your medication with food.")
    variables = template_variables(MessageKind.FOLLOW_UP, "en", facts, FakeLinks())

    text = template_environment(None).get_template("en/follow-up.txt.j2").render(variables)

    assert "Take your medication with food." in text
