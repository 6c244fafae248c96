"""Test doubles of the channel boundary and small factories the dispatch tests share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.fhir.instants import format_instant
from fhir_server.notify.dispatch import Dispatcher, DispatchPolicy
from fhir_server.notify.messages import (
    ChannelName,
    DeliveryFailed,
    Links,
    OutboundMessage,
    Receipt,
)
from fhir_server.notify.preferences import CONTACT_PREFERENCES_URL, plan_channels
from fhir_server.notify.records import Records
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of

Resource = dict[str, Any]
EMAIL = "maria@example.org"
PHONE = "+15550100"


@dataclass
class RecordingSender:
    """A Sender that accepts everything and keeps what it was given; `failures` are raised
    first, one per call."""

    channel: ChannelName
    sent: list[OutboundMessage] = field(default_factory=list)
    failures: list[DeliveryFailed] = field(default_factory=list)

    async def send(self, message: OutboundMessage) -> Receipt:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return Receipt(self.channel, f"{self.channel}-{len(self.sent)}", datetime.now(UTC))


class NoLinks:
    """Links are the content composer's business; dispatch only passes them on."""

    def confirm(self, appointment_id: str) -> str:
        return f"https://clinic.example/confirm/{appointment_id}"

    cancel = reschedule = book = confirm


async def compose_stub(records: Records, request: Mapping[str, Any], *, channel: ChannelName,
                       to: str, language: str, links: Links,
                       idempotency_key: str) -> OutboundMessage:
    """A message naming the request, so tests see what was sent for which request."""
    return OutboundMessage(channel, to, idempotency_key, subject=f"About {request['id']}",
                           text=f"{request['id']} via {channel} in {language}",
                           language=language)


def make_dispatcher(ctx: FhirContext, *senders: RecordingSender, max_attempts: int = 3,
                    lease_for: timedelta = timedelta(minutes=2)) -> Dispatcher:
    return Dispatcher(ctx=ctx, senders={s.channel: s for s in senders}, links=NoLinks(),
                      compose=compose_stub, plan_channels=plan_channels,
                      policy=DispatchPolicy(lease_for=lease_for, max_attempts=max_attempts,
                                            backoff_base=timedelta(seconds=10),
                                            default_language="en"))


def patient(id: str = "p1", *, channels: tuple[str, ...] = (), quiet: tuple[str, str] | None
            = None) -> Resource:
    """A patient with an email address and a mobile number, and optional preferences."""
    parts: list[Resource] = [{"url": "channel", "valueCode": c} for c in channels]
    if quiet is not None:
        parts += [{"url": "quietStart", "valueTime": quiet[0]},
                  {"url": "quietEnd", "valueTime": quiet[1]},
                  {"url": "timeZone", "valueCode": "UTC"}]
    body: Resource = {"resourceType": "Patient", "id": id, "telecom": [
        {"system": "email", "value": EMAIL},
        {"system": "phone", "use": "mobile", "value": PHONE}]}
    if parts:
        body["extension"] = [{"url": CONTACT_PREFERENCES_URL, "extension": parts}]
    return body


def follow_up(id: str, when: datetime, *, timing: Resource | None = None) -> Resource:
    """A staff-made follow-up reminder for Patient/p1."""
    request: Resource = {
        "resourceType": "CommunicationRequest", "id": id, "status": "active",
        "subject": {"reference": "Patient/p1"}, "recipient": [{"reference": "Patient/p1"}],
        "occurrenceDateTime": format_instant(when),
        "payload": [{"contentString": "Time for your blood pressure check"}]}
    if timing is not None:
        request["extension"] = [{
            "url": "http://fhir-scheduler.org/fhir/StructureDefinition/occurrence-timing",
            "valueTiming": timing}]
    return request


async def read_body(ctx: FhirContext, resource_type: str, id: str) -> Resource:
    stored = await ctx.store.read(resource_type, id)
    assert stored is not None
    return body_of(stored)
