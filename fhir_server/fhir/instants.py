"""FHIR instant formatting: the server stamps every version in UTC with millisecond precision."""

from __future__ import annotations

from datetime import UTC, datetime


def format_instant(moment: datetime) -> str:
    """`2026-11-26T12:00:00.123Z` — the form used in `meta.lastUpdated` and history."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_instant(value: str) -> datetime:
    """Parse an instant written by `format_instant` or any ISO 8601 with offset."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def http_date(moment: datetime) -> str:
    """RFC 9110 date for the `Last-Modified` header."""
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def to_millisecond(moment: datetime) -> datetime:
    """Drop sub-millisecond digits so stored timestamps equal what `meta.lastUpdated` shows."""
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)
