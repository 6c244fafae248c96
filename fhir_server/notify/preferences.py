"""Which channels to try, in which language, and when, for one patient and one message.

Pure: the patient resource and the clock come in, a `ChannelPlan` goes out. Preferences are
FHIR: the language is `Patient.communication` (preferred first), the channels and quiet hours
are our `contact-preferences` extension (profiles/StructureDefinition-contact-preferences.json),
the addresses are `Patient.telecom`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_server.notify.messages import ChannelName, ChannelPlan, MessageKind

CONTACT_PREFERENCES_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/contact-preferences"
FALLBACK_ORDER = (ChannelName.SMS, ChannelName.VOICE, ChannelName.EMAIL)
TEMPLATE_LANGUAGES = frozenset({"en", "es"})
"""Languages the packaged templates are written in (tests keep this equal to templates/)."""
URGENT_KINDS = frozenset({MessageKind.CHANGE, MessageKind.CANCELLATION})
"""Kinds that may break quiet hours when the appointment is the same day."""

_PHONE_FORMATTING = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"\+?\d{6,15}")
_CHANNEL_CODES = frozenset(channel.value for channel in ChannelName)


def plan_channels(patient: Mapping[str, Any] | None, *, available: frozenset[ChannelName],
                  kind: MessageKind, now: datetime, same_day: bool,
                  default_language: str) -> ChannelPlan:
    """The patient's channels in order (preferred, then SMS → voice → email), each with an
    address and configured; the language; and, during quiet hours, when sending may start.

    Quiet hours are read in the extension's `timeZone`, else in `now`'s zone: pass `now` in the
    clinic's zone for patients who state none. No patient, or a deceased one, gets no channels.
    """
    if patient is None or _deceased(patient):
        return ChannelPlan(channels=(), language=default_language)
    preferences = _preferences(patient)
    addresses = {channel: address for channel in _channel_order(preferences)
                 if channel in available
                 and (address := contact_address(patient, channel, now=now)) is not None}
    not_before = None
    if not (same_day and kind in URGENT_KINDS):
        not_before = quiet_hours_end(preferences, now=now)
    return ChannelPlan(channels=tuple(addresses), addresses=addresses, not_before=not_before,
                       language=preferred_language(patient, default_language=default_language))


def preferred_language(patient: Mapping[str, Any], *, default_language: str) -> str:
    """The first of the patient's languages (preferred first) we have templates for, matched
    on the full BCP-47 tag or its primary subtag (`es-MX` → `es`); else the default."""
    known = TEMPLATE_LANGUAGES | {default_language}
    entries = [e for e in _list(patient.get("communication")) if isinstance(e, Mapping)]
    entries.sort(key=lambda entry: entry.get("preferred") is not True)
    for entry in entries:
        for tag in _language_tags(entry.get("language")):
            for candidate in (tag, tag.split("-")[0]):
                if candidate in known:
                    return candidate
    return default_language


def contact_address(patient: Mapping[str, Any], channel: ChannelName, *,
                    now: datetime) -> str | None:
    """The best current `Patient.telecom` value for `channel`: lowest rank first; for SMS a
    mobile number first, and never a home or work number, which may be a landline."""
    candidates = []
    for point in _list(patient.get("telecom")):
        if not isinstance(point, Mapping) or not _current(point.get("period"), now):
            continue
        value, system, use = point.get("value"), point.get("system"), point.get("use")
        if not isinstance(value, str) or not value.strip() or use == "old":
            continue
        address = _address(channel, system, use, value.strip())
        if address is not None:
            rank = point.get("rank") if isinstance(point.get("rank"), int) else 1 << 31
            candidates.append(((channel is ChannelName.SMS and use != "mobile", rank), address))
    return min(candidates, key=lambda candidate: candidate[0])[1] if candidates else None


def quiet_hours_end(preferences: Mapping[str, Any], *, now: datetime) -> datetime | None:
    """When the quiet hours `now` falls in end (in `now`'s zone); None outside quiet hours."""
    start, end = _time(preferences.get("quietStart")), _time(preferences.get("quietEnd"))
    if start is None or end is None or start == end:
        return None
    zone = _zone(preferences.get("timeZone")) or now.tzinfo
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if start < end:
        quiet, end_day = start <= wall < end, local.date()
    else:  # past midnight, e.g. 21:00 to 08:00
        quiet = wall >= start or wall < end
        end_day = local.date() + timedelta(days=1) if wall >= start else local.date()
    if not quiet:
        return None
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(now.tzinfo)


def _channel_order(preferences: Mapping[str, Any]) -> list[ChannelName]:
    preferred = [ChannelName(code) for code in preferences["channel"] if code in _CHANNEL_CODES]
    return list(dict.fromkeys([*preferred, *FALLBACK_ORDER]))


def _preferences(patient: Mapping[str, Any]) -> dict[str, Any]:
    """The extension's parts by name; `channel` as the list of its codes, in order."""
    found: dict[str, Any] = {"channel": []}
    for extension in _list(patient.get("extension")):
        if not isinstance(extension, Mapping) or extension.get("url") != CONTACT_PREFERENCES_URL:
            continue
        for part in _list(extension.get("extension")):
            if not isinstance(part, Mapping):
                continue
            name = part.get("url")
            value = part.get("valueTime") or part.get("valueCode")
            if name == "channel":
                found["channel"].append(value)
            elif name in ("quietStart", "quietEnd", "timeZone"):
                found[name] = value
    return found


def _address(channel: ChannelName, system: Any, use: Any, value: str) -> str | None:
    if channel is ChannelName.EMAIL:
        return value if system == "email" and "@" in value else None
    if system not in ("phone", "sms") or (channel is ChannelName.VOICE and system == "sms"):
        return None
    if channel is ChannelName.SMS and use in ("home", "work"):
        return None
    number = _PHONE_FORMATTING.sub("", value)
    return number if _PHONE.fullmatch(number) else None


def _current(period: Any, now: datetime) -> bool:
    if not isinstance(period, Mapping):
        return True
    start, end = _instant(period.get("start"), now), _instant(period.get("end"), now)
    return (start is None or start <= now) and (end is None or now < end)


def _instant(value: Any, now: datetime) -> datetime | None:
    """A FHIR dateTime; a date or a time without offset is read in `now`'s zone."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def _deceased(patient: Mapping[str, Any]) -> bool:
    return patient.get("deceasedBoolean") is True or "deceasedDateTime" in patient


def _language_tags(concept: Any) -> Iterable[str]:
    if not isinstance(concept, Mapping):
        return []
    return [coding["code"].lower() for coding in _list(concept.get("coding"))
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str)]


def _time(value: Any) -> time | None:
    try:
        return time.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _zone(value: Any) -> tzinfo | None:
    try:
        return ZoneInfo(value) if isinstance(value, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
