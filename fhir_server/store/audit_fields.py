"""What both audit log adapters agree on: the searchable fields and the recorded-time bounds."""

from __future__ import annotations

from typing import Final

from fhir_server.fhir.search.model import DateMatch

TOKEN_FIELDS: Final = frozenset({"subtype", "action", "outcome"})
REFERENCE_FIELDS: Final = frozenset({"entity", "patient", "agent"})
DATE_FIELD: Final = "date"
CLIENT_FIELD: Final = "agent-name"
_US_PER_MS: Final = 1000
_LIMIT: Final = 2**62  # clamped so that open-ended bounds stay 64-bit integers


def recorded_bounds(match: DateMatch) -> tuple[int | None, int | None]:
    """`[lower, upper)` in epoch microseconds of the events a date match selects.

    An event's date is its recorded millisecond `[ms, ms + 1)`, so `low >= x` and `high > x`
    both mean `ms >= x`, and `low < x` and `high <= x` both mean `ms < x`.
    """
    lowers = [b for b in (match.low_ge, match.high_gt) if b is not None]
    uppers = [b for b in (match.low_lt, match.high_le) if b is not None]
    return (_micros(max(lowers)) if lowers else None, _micros(min(uppers)) if uppers else None)


def _micros(ms: int) -> int:
    return max(-_LIMIT, min(_LIMIT, ms * _US_PER_MS))
