"""Channel planning: preferred channels then SMS → voice → email, addresses from telecom,
language from Patient.communication, and quiet hours that only same-day changes may break."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhir_server.notify.messages import ChannelName, MessageKind
from fhir_server.notify.preferences import (
    CONTACT_PREFERENCES_URL,
    TEMPLATE_LANGUAGES,
    plan_channels,
)

ROOT = Path(__file__).resolve().parents[3]
NEW_YORK = ZoneInfo("America/New_York")
ALL = frozenset(ChannelName)
EMAIL, SMS, VOICE = ChannelName.EMAIL, ChannelName.SMS, ChannelName.VOICE
NOON = datetime(2030, 3, 5, 12, 0, tzinfo=NEW_YORK)


def make_patient(*, telecom: list[dict[str, Any]] | None = None, languages: tuple[str, ...] = (),
                 preferred: str | None = None, channels: tuple[str, ...] = (),
                 quiet: tuple[str, str] | None = None, zone: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1", **extra}
    patient["telecom"] = telecom if telecom is not None else [
        {"system": "phone", "value": "+1 (617) 555-0141", "use": "mobile", "rank": 1},
        {"system": "email", "value": "maria@example.com", "use": "home", "rank": 2},
    ]
    patient["communication"] = [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": code}]},
         **({"preferred": True} if code == preferred else {})}
        for code in languages]
    parts = [{"url": "channel", "valueCode": code} for code in channels]
    if quiet:
        parts += [{"url": "quietStart", "valueTime": quiet[0]},
                  {"url": "quietEnd", "valueTime": quiet[1]}]
    if zone:
        parts.append({"url": "timeZone", "valueCode": zone})
    if parts:
        patient["extension"] = [{"url": CONTACT_PREFERENCES_URL, "extension": parts}]
    return patient


def plan(patient: dict[str, Any] | None, *, available: frozenset[ChannelName] = ALL,
         kind: MessageKind = MessageKind.REMINDER, now: datetime = NOON,
         same_day: bool = False, default_language: str = "en"):  # noqa: ANN202
    return plan_channels(patient, available=available, kind=kind, now=now, same_day=same_day,
                         default_language=default_language)


# --- channels and fallback ---------------------------------------------------------------

def test_without_a_preference_the_fallback_order_is_sms_voice_email() -> None:
    result = plan(make_patient())

    assert result.channels == (SMS, VOICE, EMAIL)
    assert result.addresses == {SMS: "+16175550141", VOICE: "+16175550141",
                                EMAIL: "maria@example.com"}
    assert result.not_before is None


def test_preferred_channels_come_first_in_their_order_then_the_fallbacks() -> None:
    assert plan(make_patient(channels=("email",))).channels == (EMAIL, SMS, VOICE)
    assert plan(make_patient(channels=("voice", "email"))).channels == (VOICE, EMAIL, SMS)


def test_an_unknown_channel_code_is_ignored() -> None:
    assert plan(make_patient(channels=("fax", "email"))).channels == (EMAIL, SMS, VOICE)


def test_channels_without_an_address_or_not_configured_are_dropped() -> None:
    email_only = [{"system": "email", "value": "maria@example.com"}]

    assert plan(make_patient(telecom=email_only, channels=("sms",))).channels == (EMAIL,)
    assert plan(make_patient(channels=("sms",)), available=frozenset({EMAIL})).channels == (
        EMAIL,)
    assert plan(make_patient(telecom=[])).channels == ()


def test_sms_prefers_a_mobile_and_never_uses_a_home_or_work_number() -> None:
    telecom = [
        {"system": "phone", "value": "+16175550100", "use": "home", "rank": 1},
        {"system": "phone", "value": "+16175550199", "use": "mobile", "rank": 3},
    ]
    landline_only = [{"system": "phone", "value": "+16175550100", "use": "work"}]

    result = plan(make_patient(telecom=telecom))
    assert result.addresses[SMS] == "+16175550199"
    assert result.addresses[VOICE] == "+16175550100"  # rank decides for calls
    assert plan(make_patient(telecom=landline_only)).channels == (VOICE,)


def test_rank_orders_addresses_and_old_or_expired_ones_are_skipped() -> None:
    telecom = [
        {"system": "email", "value": "old@example.com", "rank": 1, "use": "old"},
        {"system": "email", "value": "expired@example.com", "rank": 1,
         "period": {"end": "2030-01-01T00:00:00Z"}},
        {"system": "email", "value": "future@example.com", "rank": 1,
         "period": {"start": "2031-01-01"}},
        {"system": "email", "value": "second@example.com", "rank": 5},
        {"system": "email", "value": "first@example.com", "rank": 2},
    ]

    assert plan(make_patient(telecom=telecom)).addresses == {EMAIL: "first@example.com"}


def test_malformed_addresses_are_not_used() -> None:
    telecom = [{"system": "phone", "value": "call reception", "use": "mobile"},
               {"system": "email", "value": "not-an-address"}]

    assert plan(make_patient(telecom=telecom)).channels == ()


def test_no_patient_or_a_deceased_one_gets_no_channels() -> None:
    assert plan(None).channels == ()
    assert plan(make_patient(deceasedBoolean=True)).channels == ()
    assert plan(make_patient(deceasedDateTime="2029-12-01")).channels == ()


# --- language ----------------------------------------------------------------------------

def test_the_preferred_language_wins_over_the_others() -> None:
    assert plan(make_patient(languages=("en", "es"), preferred="es")).language == "es"


def test_a_regional_tag_falls_back_to_its_primary_language() -> None:
    assert plan(make_patient(languages=("es-MX",), preferred="es-MX")).language == "es"


def test_a_language_without_templates_falls_back_to_the_next_then_the_default() -> None:
    assert plan(make_patient(languages=("vi", "es"), preferred="vi")).language == "es"
    assert plan(make_patient(languages=("vi",))).language == "en"
    assert plan(make_patient(), default_language="es").language == "es"


def test_the_default_language_counts_as_known_even_without_packaged_templates() -> None:
    result = plan(make_patient(languages=("fr-CA",)), default_language="fr")

    assert result.language == "fr"


def test_template_languages_are_the_packaged_template_folders() -> None:
    folders = {p.name for p in (ROOT / "fhir_server/notify/templates").iterdir() if p.is_dir()}

    assert folders == TEMPLATE_LANGUAGES


# --- quiet hours -------------------------------------------------------------------------

@pytest.mark.parametrize(("local", "expected"), [
    ((22, 30), datetime(2030, 3, 6, 8, 0, tzinfo=NEW_YORK)),  # evening: next morning
    ((6, 15), datetime(2030, 3, 5, 8, 0, tzinfo=NEW_YORK)),  # early morning: same day
    ((21, 0), datetime(2030, 3, 6, 8, 0, tzinfo=NEW_YORK)),  # the start is quiet
    ((8, 0), None),  # the end is not
    ((12, 0), None),
])
def test_quiet_hours_past_midnight_hold_messages_until_they_end(
        local: tuple[int, int], expected: datetime | None) -> None:
    now = datetime(2030, 3, 5, *local, tzinfo=NEW_YORK)

    result = plan(make_patient(quiet=("21:00:00", "08:00:00")), now=now)

    assert result.not_before == expected
    assert result.channels == (SMS, VOICE, EMAIL)  # held, not dropped


def test_quiet_hours_within_one_day() -> None:
    patient = make_patient(quiet=("12:00:00", "14:00:00"))

    assert plan(patient, now=NOON).not_before == datetime(2030, 3, 5, 14, tzinfo=NEW_YORK)
    assert plan(patient, now=datetime(2030, 3, 5, 14, 1, tzinfo=NEW_YORK)).not_before is None


def test_quiet_hours_are_read_in_the_patients_zone_when_given() -> None:
    # 22:00 in New York is 19:00 in Los Angeles: outside the patient's 21:00-08:00.
    now = datetime(2030, 3, 5, 22, tzinfo=NEW_YORK)
    patient = make_patient(quiet=("21:00:00", "08:00:00"), zone="America/Los_Angeles")

    assert plan(patient, now=now).not_before is None
    late = plan(patient, now=datetime(2030, 3, 6, 3, tzinfo=UTC))  # 19:00 LA: still free
    assert late.not_before is None
    night = plan(patient, now=datetime(2030, 3, 6, 6, tzinfo=UTC))  # 22:00 LA
    assert night.not_before == datetime(2030, 3, 6, 16, tzinfo=UTC)  # 08:00 LA


def test_quiet_hours_end_on_local_time_across_a_dst_change() -> None:
    # Spring forward in New York on 2030-03-10: 08:00 EDT is 12:00 UTC, not 13:00.
    now = datetime(2030, 3, 10, 5, tzinfo=UTC)  # 00:00 EST

    result = plan(make_patient(quiet=("21:00:00", "08:00:00"), zone="America/New_York"),
                  now=now)

    assert result.not_before == datetime(2030, 3, 10, 12, tzinfo=UTC)


@pytest.mark.parametrize("kind", [MessageKind.CHANGE, MessageKind.CANCELLATION])
def test_a_same_day_change_or_cancellation_breaks_quiet_hours(kind: MessageKind) -> None:
    now = datetime(2030, 3, 5, 6, tzinfo=NEW_YORK)
    patient = make_patient(quiet=("21:00:00", "08:00:00"))

    assert plan(patient, now=now, kind=kind, same_day=True).not_before is None
    assert plan(patient, now=now, kind=kind, same_day=False).not_before is not None


@pytest.mark.parametrize("kind", [MessageKind.REMINDER, MessageKind.CONFIRMATION,
                                  MessageKind.FOLLOW_UP, MessageKind.PROPOSAL])
def test_other_kinds_wait_even_on_the_same_day(kind: MessageKind) -> None:
    now = datetime(2030, 3, 5, 6, tzinfo=NEW_YORK)
    patient = make_patient(quiet=("21:00:00", "08:00:00"))

    result = plan(patient, now=now, kind=kind, same_day=True)

    assert result.not_before == datetime(2030, 3, 5, 8, tzinfo=NEW_YORK)


@pytest.mark.parametrize("quiet", [("21:00:00", "21:00:00"), ("21:00:00", "bedtime")])
def test_empty_or_malformed_quiet_hours_hold_nothing(quiet: tuple[str, str]) -> None:
    now = datetime(2030, 3, 5, 23, tzinfo=NEW_YORK)

    assert plan(make_patient(quiet=quiet), now=now).not_before is None


def test_the_profile_defines_every_part_the_planner_reads() -> None:
    profile = json.loads(
        (ROOT / "profiles/StructureDefinition-contact-preferences.json").read_text())
    slices = {e["sliceName"]: e for e in profile["differential"]["element"]
              if "sliceName" in e}
    types = {e["id"].split(":")[1].removesuffix(".value[x]"): e["type"][0]["code"]
             for e in profile["differential"]["element"]
             if e["id"].startswith("Extension.extension:") and e["id"].endswith("value[x]")}

    assert profile["url"] == CONTACT_PREFERENCES_URL
    assert types == {"channel": "code", "quietStart": "time", "quietEnd": "time",
                     "timeZone": "code"}
    assert slices["channel"]["max"] == "*"
