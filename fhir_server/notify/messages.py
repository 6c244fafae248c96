"""What the outbox, the content composer and the channels agree on: one outbound message and
how a channel reports it. Pure data: no I/O, no FHIR store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

MESSAGE_KIND_SYSTEM = "https://fhir-scheduler.org/CodeSystem/message-kind"
"""`CommunicationRequest.category` / `Communication.category` coding system for the kind."""

IDEMPOTENCY_SYSTEM = "https://fhir-scheduler.org/sid/outbox-key"
"""`identifier.system` of the stable key of a CommunicationRequest (and its Communication)."""


class MessageKind(StrEnum):
    """Why a message is sent; one Jinja2 template set per kind and language."""

    CONFIRMATION = "confirmation"
    CHANGE = "change"
    CANCELLATION = "cancellation"
    REMINDER = "reminder"
    FOLLOW_UP = "follow-up"  # treatment, medication, check-up reminders and recalls
    PROPOSAL = "proposal"  # "please book" for a proposed follow-up Appointment


class ChannelName(StrEnum):
    """A delivery channel; `CommunicationRequest.medium` carries the v3 ParticipationMode."""

    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an email (an ICS invite or cancellation)."""

    filename: str
    content_type: str  # e.g. "text/calendar; method=REQUEST"
    data: bytes


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message ready for one channel. `idempotency_key` is stable per CommunicationRequest
    and attempt; email uses it to derive a stable Message-ID."""

    channel: ChannelName
    to: str  # an email address, or an E.164 phone number for SMS and voice
    idempotency_key: str
    subject: str
    text: str  # the email's text part, the SMS body, or the voice script
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the channel accepted: its own message id (SMTP Message-ID, provider SID)."""

    channel: ChannelName
    provider_id: str
    accepted_at: datetime


class DeliveryFailed(Exception):
    """The channel refused or could not be reached. `permanent` failures (no address, rejected
    recipient) move on to the fallback channel at once; others are retried with back-off."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Sender(Protocol):
    """A channel adapter (SMTP, Twilio-compatible SMS or voice)."""

    channel: ChannelName

    async def send(self, message: OutboundMessage) -> Receipt: ...


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """Which channels to try, in order, in which language, and not before when (quiet
    hours); from the recipient's preferences and the channels configured."""

    channels: tuple[ChannelName, ...]
    language: str
    not_before: datetime | None = None
    addresses: dict[ChannelName, str] = field(default_factory=dict)


class Links(Protocol):
    """Signed, expiring patient links the content composer puts into messages."""

    def confirm(self, appointment_id: str) -> str: ...

    def cancel(self, appointment_id: str) -> str: ...

    def reschedule(self, appointment_id: str) -> str: ...

    def book(self, proposal_id: str) -> str: ...
