"""Outbox records: valid FHIR, a lease that round-trips, and repeating follow-ups' next times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_server.fhir.validation import validate_resource
from fhir_server.notify.messages import ChannelName, MessageKind
from fhir_server.scheduling.message_plan import NewRequest
from fhir_server.scheduling.occurrence_timing import next_occurrence
from fhir_server.scheduling.outbox_records import (
    Delivery,
    Lease,
    communication,
    delivery_key,
    kind_of,
    lease_extension,
    lease_of,
    medium,
    medium_channel,
    occurrence_of,
    outbox_key,
    with_lease,
)
from fhir_server.services.outbox import request_resource
from tests.unit.test_profiles import carried, profiles_by_url, shape

NOW = datetime(2030, 3, 1, 12, tzinfo=UTC)


def reminder() -> dict:
    new = NewRequest("a1/reminder/24h", MessageKind.REMINDER, NOW, "a1", "Patient/p1",
                     "Reminder: appointment on 2030-03-02T12:00:00Z")
    return {**request_resource(new, now=NOW - timedelta(days=3)), "id": "r1"}


def test_a_planned_request_is_a_valid_communication_request_of_its_kind() -> None:
    request = reminder()

    validate_resource(request, resource_type="CommunicationRequest")
    assert (kind_of(request), outbox_key(request)) == (MessageKind.REMINDER, "a1/reminder/24h")
    assert occurrence_of(request) == NOW


def test_a_lease_round_trips_and_moves_the_occurrence_to_its_end() -> None:
    lease = Lease(due=NOW, attempt=2, expires=NOW + timedelta(minutes=2), last_error="busy")

    leased = with_lease(reminder(), lease, occurrence=NOW + timedelta(minutes=2))
    released = with_lease(leased, None, occurrence=NOW)

    validate_resource(leased, resource_type="CommunicationRequest")
    assert lease_of(leased) == lease
    assert occurrence_of(leased) == NOW + timedelta(minutes=2)
    assert lease_of(released) is None and "extension" not in released


def test_the_lease_extension_has_the_profiled_shape() -> None:
    extension = lease_extension(Lease(due=NOW, attempt=1, expires=NOW, delivered=2,
                                      last_error="x"))

    assert carried(extension) == shape(profiles_by_url()[extension["url"]])


@pytest.mark.parametrize("sent", [True, False], ids=["completed", "not-done"])
def test_a_delivery_record_is_a_valid_communication_based_on_the_request(sent: bool) -> None:
    key = delivery_key(reminder(), NOW)
    delivery = Delivery(key, NOW if sent else None, ChannelName.EMAIL if sent else None,
                        "Dear patient", provider_id="<m@x>" if sent else None,
                        reason=None if sent else "smtp: refused")

    record = communication(reminder(), delivery)

    validate_resource(record, resource_type="Communication")
    assert record["status"] == ("completed" if sent else "not-done")
    assert record["basedOn"] == [{"reference": "CommunicationRequest/r1"}]
    assert record["about"] == [{"reference": "Appointment/a1"}]
    assert record["identifier"][0]["value"] == "a1/reminder/24h@2030-03-01T12:00:00.000Z"
    assert ("statusReason" in record) is not sent


def test_medium_codes_round_trip() -> None:
    for channel in ChannelName:
        assert medium_channel({"medium": [medium(channel)]}) is channel


def every(period: float, unit: str, **repeat: object) -> dict:
    return {"repeat": {"period": period, "periodUnit": unit, **repeat}}


@pytest.mark.parametrize(("timing", "delivered", "expected"), [
    (every(1, "d"), 1, NOW + timedelta(days=1)),
    (every(1, "d", frequency=2), 1, NOW + timedelta(hours=12)),
    (every(1, "wk", count=3), 2, NOW + timedelta(weeks=1)),
    (every(1, "wk", count=3), 3, None),
    (every(1, "d", boundsPeriod={"end": "2030-03-01"}), 1, None),
    (every(1, "mo"), 1, datetime(2030, 4, 1, 12, tzinfo=UTC)),
    ({"event": ["2030-03-01T12:00:00Z", "2030-03-05T09:00:00Z"]}, 1,
     datetime(2030, 3, 5, 9, tzinfo=UTC)),
    ({"event": ["2030-03-01T12:00:00Z"]}, 1, None),
], ids=["daily", "twice-daily", "weekly-count", "count-reached", "past-bounds", "monthly",
        "events", "events-done"])
def test_next_occurrence(timing: dict, delivered: int, expected: datetime | None) -> None:
    assert next_occurrence(timing, after=NOW, delivered=delivered) == expected


def test_month_end_keeps_the_last_day() -> None:
    assert next_occurrence(every(1, "mo"), after=datetime(2030, 1, 31, tzinfo=UTC),
                           delivered=1) == datetime(2030, 2, 28, tzinfo=UTC)
