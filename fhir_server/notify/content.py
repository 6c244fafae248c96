"""Compose one message for one channel: Jinja2 templates per kind and language, filled with
what the records say (see `message_facts`), plus the calendar invite for emails.

Templates are `<language>/<kind>.<part>.j2` with the parts `subject`, `txt` and `html`
(email), `sms` and `voice`; a file of the same name under `settings.templates_dir` replaces
the packaged one. A kind without templates in the requested language is written in the
default language, else in English. HTML is autoescaped; an unknown variable is an error.
Each worker process compiles every template once and never looks at the files again: restart
the workers after changing an administrator's template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email.utils import formataddr
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from fhir_server.notify.ics import appointment_invite
from fhir_server.notify.message_facts import MessageFacts, gather_facts
from fhir_server.notify.messages import (
    MESSAGE_KIND_SYSTEM,
    Attachment,
    ChannelName,
    DeliveryFailed,
    Links,
    MessageKind,
    OutboundMessage,
)
from fhir_server.notify.records import Records
from fhir_server.settings import get_settings

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"
SMS_LIMIT = 320  # two concatenated SMS segments
BODY_PART = {ChannelName.EMAIL: "txt", ChannelName.SMS: "sms", ChannelName.VOICE: "voice"}
INVITE_METHOD: dict[MessageKind, Literal["REQUEST", "CANCEL"]] = {
    MessageKind.CONFIRMATION: "REQUEST", MessageKind.CHANGE: "REQUEST",
    MessageKind.CANCELLATION: "CANCEL"}
_ATTEND = ("confirm", "cancel", "reschedule")
LINKS_BY_KIND: dict[MessageKind, tuple[str, ...]] = {
    MessageKind.CONFIRMATION: _ATTEND, MessageKind.CHANGE: _ATTEND, MessageKind.REMINDER: _ATTEND,
    MessageKind.PROPOSAL: ("book",)}
"""Which `Links` each kind offers; a cancellation or a follow-up has none."""
_KINDS = frozenset(kind.value for kind in MessageKind)
STANDALONE_KINDS = frozenset({MessageKind.FOLLOW_UP})
"""Kinds that make sense without an Appointment (a medication reminder, a recall)."""


def message_kind(request: Mapping[str, Any]) -> MessageKind:
    """The kind coded in `CommunicationRequest.category` with `MESSAGE_KIND_SYSTEM`."""
    for category in request.get("category") or []:
        for coding in category.get("coding") or []:
            if coding.get("system") == MESSAGE_KIND_SYSTEM and coding.get("code") in _KINDS:
                return MessageKind(coding["code"])
    raise DeliveryFailed("the CommunicationRequest has no known message-kind category",
                         permanent=True)


@lru_cache(maxsize=4)
def template_environment(override: Path | None) -> Environment:
    """Templates from the administrator's folder first, then the packaged ones, each compiled
    on first use and kept (no check of the files per message)."""
    folders = [override, PACKAGED_TEMPLATES] if override else [PACKAGED_TEMPLATES]
    return Environment(loader=ChoiceLoader([FileSystemLoader(f) for f in folders]),
                       autoescape=select_autoescape(enabled_extensions=("html.j2",),
                                                    default=False),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       auto_reload=False, cache_size=-1)


async def compose(records: Records, request: Mapping[str, Any], *, channel: ChannelName,
                  to: str, language: str, links: Links, idempotency_key: str) -> OutboundMessage:
    """The message `request` asks for, written for `channel` in `language` (or the fallback).

    Raises `DeliveryFailed(permanent=True)` when the request cannot be written at all (no
    kind, or no readable Appointment for a kind that is about one)."""
    settings = get_settings()
    kind = message_kind(request)
    facts = await gather_facts(records, request)
    if facts.visit is None and kind not in STANDALONE_KINDS:
        raise DeliveryFailed(f"a {kind} message needs the Appointment it is about",
                             permanent=True)
    templates = template_environment(settings.templates_dir)
    chosen = _language(settings.templates_dir, kind, channel,
                       (language, settings.default_language, "en"))
    variables = template_variables(kind, chosen, facts, links)

    def render(name: str) -> str:
        return templates.get_template(f"{chosen}/{name}.j2").render(variables)

    subject = " ".join(render(f"{kind}.subject").split())
    if channel is ChannelName.EMAIL:
        invite = _invite(kind, facts, render, to=to, fallback=settings.smtp_from)
        return OutboundMessage(channel, to, idempotency_key, subject,
                               render(f"{kind}.txt").strip() + "\n",
                               html=render(f"{kind}.html"), attachments=invite,
                               language=chosen)
    text = " ".join(render(f"{kind}.{BODY_PART[channel]}").split())
    if channel is ChannelName.SMS and len(text) > SMS_LIMIT:
        text = text[:SMS_LIMIT - 1].rstrip() + "…"
    return OutboundMessage(channel, to, idempotency_key, subject, text, language=chosen)


@lru_cache(maxsize=256)
def _language(override: Path | None, kind: MessageKind, channel: ChannelName,
              candidates: tuple[str, ...]) -> str:
    """The first candidate language with this kind's body template for this channel."""
    templates = template_environment(override)
    for language in dict.fromkeys(candidates):
        try:
            templates.get_template(f"{language}/{kind}.{BODY_PART[channel]}.j2")
        except TemplateNotFound:
            continue
        return language
    raise TemplateNotFound(f"{candidates[-1]}/{kind}.{BODY_PART[channel]}.j2")


def template_variables(kind: MessageKind, language: str, facts: MessageFacts,
                       links: Links) -> dict[str, Any]:
    """What every template may use (README, "Email (SMTP)", lists them)."""
    visit, wanted = facts.visit, LINKS_BY_KIND.get(kind, ())
    urls = {name: getattr(links, name)(visit.id) if visit and name in wanted else None
            for name in ("confirm", "cancel", "reschedule", "book")}
    return {
        "kind": str(kind), "language": language, "patient": {"name": facts.patient_name},
        "clinic": facts.clinic, "appointment": visit,
        "requested": {"start": facts.requested_start, "end": facts.requested_end},
        "place": facts.place, "preparation": facts.preparation, "contact": facts.contact,
        "note": facts.note, "links": urls,
    }


def _invite(kind: MessageKind, facts: MessageFacts, render: Callable[[str], str], *, to: str,
            fallback: str) -> tuple[Attachment, ...]:
    """The ICS invite (confirmation, change) or cancellation, organized by the clinic's
    appointment desk (else the sender address); its summary is `invite.summary.j2`."""
    method = INVITE_METHOD.get(kind)
    if method is None or facts.visit is None or facts.visit.start is None:
        return ()
    email = facts.contact.email
    organizer = formataddr((facts.clinic or "", email)) if email else fallback
    place = facts.place
    where = ", ".join(p for p in (place.name, place.address) if p) if place else None
    data = appointment_invite(facts.visit.resource, method=method,
                              summary=" ".join(render("invite.summary").split()),
                              location=where, organizer=organizer, attendee=to)
    filename = "cancellation.ics" if method == "CANCEL" else "invite.ics"
    return (Attachment(filename, f"text/calendar; method={method}; charset=utf-8", data),)
