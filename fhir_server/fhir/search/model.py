"""The store-neutral shapes of search: index entries extracted on write, and the typed query.

Extraction (`extract.py`) turns a resource into `IndexEntry` values; parsing (`parse.py`)
turns a FHIR query string into a `StoreQuery`. Each store adapter stores the entries natively
(SQLite index tables, MongoDB fields inside the document) and compiles the query; neither
adapter knows FHIR search syntax, and the FHIR layer knows no store.

Dates are half-open ranges of integer epoch milliseconds `[low, high)`: a value with day
precision covers the whole day, an instant covers its millisecond, an open-ended Period
runs to `DATE_MAX`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DATE_MIN: int = -(2**62)
DATE_MAX: int = 2**62

# ---------------------------------------------------------------------------------------
# Index entries: what a resource version is findable by.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A coded value: Coding/CodeableConcept/Identifier/code/boolean/uri (system may be None)."""

    param: str
    system: str | None
    code: str


@dataclass(frozen=True, slots=True)
class ReferenceEntry:
    """A reference to a resource: `type`/`id` for local references, `url` for absolute ones."""

    param: str
    target_type: str | None
    target_id: str | None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class DateEntry:
    """A date, dateTime, instant or Period as the half-open range `[low, high)` in epoch ms."""

    param: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class StringEntry:
    """A string value, `normalized` (case- and accent-folded) for default and :contains search."""

    param: str
    normalized: str
    exact: str


IndexEntry = TokenEntry | ReferenceEntry | DateEntry | StringEntry

# ---------------------------------------------------------------------------------------
# The typed query each adapter compiles.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """Matches a TokenEntry. `system=None` means any system; `""` means no system; `code=None` any code."""

    param: str
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReferenceMatch:
    """Matches a ReferenceEntry by id (and type when given), or by absolute `url`."""

    param: str
    target_type: str | None
    target_id: str | None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class DateMatch:
    """Matches a DateEntry whose range satisfies every bound that is set.

    FHIR prefixes reduce to these bounds (see `parse.py`): eq is `low >= ql and high <= qh`,
    gt is `high > qh`, lt is `low < ql`, sa is `low >= qh`, eb is `high <= ql`.
    """

    param: str
    low_ge: int | None = None
    low_lt: int | None = None
    high_gt: int | None = None
    high_le: int | None = None


@dataclass(frozen=True, slots=True)
class StringMatch:
    """Matches a StringEntry: `startswith`/`contains` on the normalized value, `exact` on the raw one."""

    param: str
    value: str
    mode: Literal["startswith", "contains", "exact"] = "startswith"


@dataclass(frozen=True, slots=True)
class IdMatch:
    """Matches resources by logical id."""

    ids: tuple[str, ...]


Predicate = TokenMatch | ReferenceMatch | DateMatch | StringMatch | IdMatch


@dataclass(frozen=True, slots=True)
class Clause:
    """Predicates joined by OR; `negate` inverts the whole clause (`:not`, `ne`)."""

    any_of: tuple[Predicate, ...]
    negate: bool = False


SortKind = Literal["id", "lastUpdated", "date", "string", "token", "reference"]


@dataclass(frozen=True, slots=True)
class SortKey:
    """Sort on `_id`, `_lastUpdated` or a parameter's entries (lowest date, string, code or id)."""

    param: str
    kind: SortKind
    descending: bool = False


@dataclass(frozen=True, slots=True)
class StoreQuery:
    """Current, non-deleted resources of one type matching every clause (AND), paged."""

    resource_type: str
    where: tuple[Clause, ...] = ()
    sort: tuple[SortKey, ...] = ()
    offset: int = 0
    limit: int = 50
    with_total: bool = True
