"""The outbox as FHIR data: CommunicationRequest and Communication shapes and the dispatch lease.

A CommunicationRequest is one message to send (`occurrenceDateTime` = when). While the
dispatcher works on it, it carries one `dispatch-lease` extension:

    {"url": DISPATCH_LEASE_URL, "extension": [
        {"url": "due", "valueDateTime": "<when this occurrence was first due>"},
        {"url": "attempt", "valueInteger": 2},
        {"url": "expires", "valueInstant": "<lease end; absent while waiting to retry>"},
        {"url": "delivered", "valueInteger": 3},      # repeating requests: occurrences sent
        {"url": "lastError", "valueString": "..."}]}

Claiming moves `occurrenceDateTime` to the lease's end, so the one indexed "due" query
(`status=active&occurrence=le<now>`) never returns a request someone holds, and returns it
again once the lease lapses. `due` keeps the original time: it names the occurrence (and so the
message's idempotency key) across retries, deferrals and crashes. Completing restores it.
Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from fhir_server.fhir.instants import format_instant, parse_instant
from fhir_server.notify.messages import (
    IDEMPOTENCY_SYSTEM,
    MESSAGE_KIND_SYSTEM,
    ChannelName,
    MessageKind,
)

DISPATCH_LEASE_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/dispatch-lease"
OCCURRENCE_TIMING_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/occurrence-timing"
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
PROVIDER_ID_SYSTEM = "https://fhir-scheduler.org/sid/provider-message-id"
NOT_DONE_REASON = "http://terminology.hl7.org/CodeSystem/communication-not-done-reason"
MEDIUM_CODES: Mapping[ChannelName, tuple[str, str]] = {
    ChannelName.EMAIL: ("EMAILWRIT", "email"),
    ChannelName.SMS: ("SMSWRIT", "SMS message"),
    ChannelName.VOICE: ("PHONE", "telephone"),
}
_NAMESPACE = uuid.UUID("8f1d2c3e-5b7a-4c1d-9e2f-0a6b4c8d7e91")

Resource = dict[str, Any]


def resource_id_for(key: str) -> str:
    """A stable logical id for a stable key: writing it twice is one conditional create."""
    return str(uuid.uuid5(_NAMESPACE, key))


@dataclass(frozen=True, slots=True)
class Lease:
    """The dispatcher's state of one request (see the module docstring)."""

    due: datetime
    attempt: int = 0
    expires: datetime | None = None
    delivered: int = 0
    last_error: str | None = None


def lease_of(request: Mapping[str, Any]) -> Lease | None:
    """The request's dispatch lease, if the dispatcher has touched it."""
    for extension in request.get("extension", ()):
        if extension.get("url") == DISPATCH_LEASE_URL:
            parts = {part["url"]: part for part in extension.get("extension", ())}
            value = _value_reader(parts)
            due = value("due", "valueDateTime")
            return Lease(due=parse_instant(due) if due else occurrence_of(request) or _EPOCH,
                         attempt=int(value("attempt", "valueInteger") or 0),
                         expires=_instant(value("expires", "valueInstant")),
                         delivered=int(value("delivered", "valueInteger") or 0),
                         last_error=value("lastError", "valueString"))
    return None


def with_lease(request: Mapping[str, Any], lease: Lease | None, *,
               occurrence: datetime) -> Resource:
    """A copy carrying `lease` (None: without one) and the given occurrence."""
    updated = _copy(request)
    others = [e for e in updated.get("extension", ()) if e.get("url") != DISPATCH_LEASE_URL]
    if lease is not None:
        others.append(lease_extension(lease))
    if others:
        updated["extension"] = others
    else:
        updated.pop("extension", None)
    updated["occurrenceDateTime"] = format_instant(occurrence)
    return updated


def lease_extension(lease: Lease) -> Resource:
    """The `dispatch-lease` extension for `lease`."""
    parts: list[Resource] = [{"url": "due", "valueDateTime": format_instant(lease.due)},
                             {"url": "attempt", "valueInteger": lease.attempt}]
    if lease.expires is not None:
        parts.append({"url": "expires", "valueInstant": format_instant(lease.expires)})
    if lease.delivered:
        parts.append({"url": "delivered", "valueInteger": lease.delivered})
    if lease.last_error:
        parts.append({"url": "lastError", "valueString": lease.last_error[:500]})
    return {"url": DISPATCH_LEASE_URL, "extension": parts}


def occurrence_of(request: Mapping[str, Any]) -> datetime | None:
    """`occurrenceDateTime` as an aware instant (a bare date counts from its midnight UTC)."""
    value = request.get("occurrenceDateTime")
    if not isinstance(value, str):
        return None
    return parse_instant(value if "T" in value else f"{value}T00:00:00Z")


def timing_of(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The repeating schedule of a follow-up request (our `occurrence-timing` extension)."""
    for extension in request.get("extension", ()):
        if extension.get("url") == OCCURRENCE_TIMING_URL:
            timing = extension.get("valueTiming")
            return timing if isinstance(timing, Mapping) else None
    return None


def outbox_key(request: Mapping[str, Any]) -> str:
    """The request's stable key (`IDEMPOTENCY_SYSTEM` identifier), else its reference."""
    for identifier in request.get("identifier", ()):
        if identifier.get("system") == IDEMPOTENCY_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return f"CommunicationRequest/{request.get('id')}"


def kind_of(request: Mapping[str, Any]) -> MessageKind:
    """The message kind from the category coding; staff-made requests are follow-ups."""
    for concept in request.get("category", ()):
        for coding in concept.get("coding", ()):
            if coding.get("system") == MESSAGE_KIND_SYSTEM and coding.get("code") in set(
                    MessageKind):
                return MessageKind(coding["code"])
    return MessageKind.FOLLOW_UP


def medium_channel(request: Mapping[str, Any]) -> ChannelName | None:
    """The channel the request asks for explicitly (`medium`), if any."""
    by_code = {code: channel for channel, (code, _) in MEDIUM_CODES.items()}
    for concept in request.get("medium", ()):
        for coding in concept.get("coding", ()):
            if coding.get("system") == PARTICIPATION_MODE and coding.get("code") in by_code:
                return by_code[coding["code"]]
    return None


def medium(channel: ChannelName) -> Resource:
    """`medium` CodeableConcept of a channel (v3 ParticipationMode)."""
    code, display = MEDIUM_CODES[channel]
    return {"coding": [{"system": PARTICIPATION_MODE, "code": code, "display": display}]}


def kind_category(kind: MessageKind) -> Resource:
    """`category` CodeableConcept of a message kind."""
    return {"coding": [{"system": MESSAGE_KIND_SYSTEM, "code": kind.value}]}


def reference_of(element: Any) -> str | None:
    """`Type/id` of a Reference element (or the first of a list of them)."""
    if isinstance(element, list):
        element = element[0] if element else None
    reference = element.get("reference") if isinstance(element, Mapping) else None
    return reference if isinstance(reference, str) else None


def delivery_key(request: Mapping[str, Any], due: datetime) -> str:
    """The idempotency key of one occurrence: `<request key>@<due>`. Every attempt at it
    shares the key, so a re-send after a crash carries the same email Message-ID."""
    return f"{outbox_key(request)}@{format_instant(due)}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one occurrence ended: sent on a channel, or not done and why."""

    key: str
    sent: datetime | None
    channel: ChannelName | None
    text: str
    provider_id: str | None = None
    reason: str | None = None
    reason_code: str = "system-error"


def communication(request: Mapping[str, Any], delivery: Delivery) -> Resource:
    """The Communication recording `delivery` of `request` (completed, or not-done)."""
    record: Resource = {
        "resourceType": "Communication", "id": resource_id_for(delivery.key),
        "identifier": [{"system": IDEMPOTENCY_SYSTEM, "value": delivery.key}],
        "basedOn": [{"reference": f"CommunicationRequest/{request.get('id')}"}],
        "status": "completed" if delivery.sent else "not-done",
        **{name: _copy(request[name]) for name in (
            "category", "priority", "subject", "about", "recipient") if name in request},
        "payload": [{"contentString": delivery.text}],
    }
    if delivery.channel is not None:
        record["medium"] = [medium(delivery.channel)]
    if delivery.sent is not None:
        record["sent"] = format_instant(delivery.sent)
    if delivery.provider_id:
        record["identifier"].append({"system": PROVIDER_ID_SYSTEM,
                                     "value": delivery.provider_id})
    if delivery.reason is not None:
        record["statusReason"] = {"coding": [{"system": NOT_DONE_REASON,
                                              "code": delivery.reason_code}],
                                  "text": delivery.reason[:500]}
    return record


def _value_reader(parts: Mapping[str, Mapping[str, Any]]) -> Any:
    def value(name: str, key: str) -> Any:
        return parts.get(name, {}).get(key)
    return value


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (an orjson round trip is ~10x faster than `copy.deepcopy`)."""
    return orjson.loads(orjson.dumps(value))


def _instant(value: str | None) -> datetime | None:
    return parse_instant(value) if value else None


_EPOCH = parse_instant("1970-01-01T00:00:00Z")
