"""Date parsing by precision and time zone, as half-open epoch-ms ranges."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.search.dates import (
    MS_PER_DAY,
    epoch_ms,
    format_epoch_ms,
    parse_date_range,
    period_range,
)
from fhir_server.fhir.search.model import DATE_MAX, DATE_MIN


def ms(*args: int, tz: timezone = UTC) -> int:
    """Epoch ms computed independently through datetime."""
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2024", ms(2024, 1, 1), ms(2025, 1, 1)),
        ("2024-02", ms(2024, 2, 1), ms(2024, 3, 1)),
        ("2023-02", ms(2023, 2, 1), ms(2023, 3, 1)),
        ("2024-12", ms(2024, 12, 1), ms(2025, 1, 1)),
        ("2024-02-29", ms(2024, 2, 29), ms(2024, 3, 1)),
        ("2024-03-10T09:30", ms(2024, 3, 10, 9, 30), ms(2024, 3, 10, 9, 31)),
        ("2024-03-10T09:30Z", ms(2024, 3, 10, 9, 30), ms(2024, 3, 10, 9, 31)),
        ("2024-03-10T09:30:15", ms(2024, 3, 10, 9, 30, 15), ms(2024, 3, 10, 9, 30, 16)),
        ("2024-03-10T09:30:15Z", ms(2024, 3, 10, 9, 30, 15), ms(2024, 3, 10, 9, 30, 16)),
        ("2024-03-10T09:30:15.250Z", ms(2024, 3, 10, 9, 30, 15) + 250, ms(2024, 3, 10, 9, 30, 15) + 251),
        ("2024-03-10T09:30:15.2Z", ms(2024, 3, 10, 9, 30, 15) + 200, ms(2024, 3, 10, 9, 30, 15) + 201),
        ("2024-03-10T09:30:15.123456Z", ms(2024, 3, 10, 9, 30, 15) + 123, ms(2024, 3, 10, 9, 30, 15) + 124),
        ("1969-12-31", -MS_PER_DAY, 0),
    ],
)
def test_precision_sets_the_width_of_the_range(value: str, low: int, high: int) -> None:
    assert parse_date_range(value) == (low, high)


def test_time_zone_offsets_shift_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    minus_five_thirty = timezone(-timedelta(hours=5, minutes=30))
    assert parse_date_range("2024-06-01T09:00:00+02:00")[0] == ms(2024, 6, 1, 7, 0, 0)
    assert parse_date_range("2024-06-01T09:00:00+02:00")[0] == ms(2024, 6, 1, 9, 0, 0, tz=plus_two)
    assert parse_date_range("2024-06-01T23:00-05:30")[0] == ms(2024, 6, 1, 23, 0, tz=minus_five_thirty)
    assert parse_date_range("2024-06-01T23:00-05:30")[0] == ms(2024, 6, 2, 4, 30)


@pytest.mark.parametrize(
    "value",
    ["", "abc", "24", "2024-1", "2024-13", "2024-00", "2023-02-29", "2024-01-01T25:00",
     "2024-01-01T10:60", "2024-01-01T10:00:60Z", "2024-01-01T10", "2024-01-01+01:00",
     "2024-01-01T10:00:00+15:00", "0000", "2024-01-01T10:00:00 +01:00"],
)
def test_malformed_values_are_invalid_requests(value: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_date_range(value)


def test_period_spans_start_low_to_end_high_and_open_ends() -> None:
    assert period_range({"start": "2024-01-01", "end": "2024-01-31"}) == (ms(2024, 1, 1), ms(2024, 2, 1))
    assert period_range({"start": "2024-01-01T08:00:00Z"}) == (ms(2024, 1, 1, 8), DATE_MAX)
    assert period_range({"end": "2024-01"}) == (DATE_MIN, ms(2024, 2, 1))
    assert period_range({}) is None


def test_epoch_ms_treats_naive_as_utc_and_formats_back() -> None:
    assert epoch_ms(datetime(2024, 6, 1, 12, 0, 0, 123456)) == ms(2024, 6, 1, 12) + 123
    assert epoch_ms(datetime(2024, 6, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == ms(2024, 6, 1, 12)
    assert format_epoch_ms(ms(2024, 6, 1, 12) + 5) == "2024-06-01T12:00:00.005Z"
    assert format_epoch_ms(ms(5, 1, 1)) == "0005-01-01T00:00:00.000Z"


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.just(UTC)))
def test_instants_round_trip_through_format(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    low, high = parse_date_range(format_epoch_ms(epoch_ms(moment)))
    assert (low, high) == (epoch_ms(moment), epoch_ms(moment) + 1)


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 30)))
def test_a_day_covers_exactly_its_first_to_last_millisecond(day: date) -> None:
    low, high = parse_date_range(day.isoformat())
    assert high - low == MS_PER_DAY
    assert parse_date_range(f"{day.isoformat()}T00:00:00Z")[0] == low
    assert parse_date_range(f"{day.isoformat()}T23:59:59.999Z")[1] == high
