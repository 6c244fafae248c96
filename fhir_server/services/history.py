"""`_history` at instance, type and system level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fhir_server.fhir.errors import InvalidRequest, ResourceNotFound
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.resource_types import SERVER_WRITTEN_TYPES
from fhir_server.services.context import FhirContext
from fhir_server.services.resources import require_supported
from fhir_server.store.protocol import HistoryPage

DEFAULT_COUNT = 50
MAX_COUNT = 1000
HISTORY_PARAMS = frozenset({"_count", "_offset", "_since", "_format", "_pretty"})


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """Paging and `_since` of a history interaction."""

    since: datetime | None
    count: int
    offset: int


def parse_history_params(params: Sequence[tuple[str, str]]) -> HistoryRequest:
    """Read `_since`, `_count` and `_offset`; anything else is an error."""
    values = dict(params)
    unknown = sorted(set(values) - HISTORY_PARAMS)
    if unknown:
        raise InvalidRequest(f"Unsupported history parameter(s): {', '.join(unknown)}")
    try:
        since = parse_instant(values["_since"]) if "_since" in values else None
        count = min(int(values.get("_count", DEFAULT_COUNT)), MAX_COUNT)
        offset = int(values.get("_offset", 0))
    except ValueError as error:
        raise InvalidRequest(f"Invalid history parameter: {error}") from error
    if since is not None and since.tzinfo is None:
        raise InvalidRequest("_since must be an instant with a time zone")
    if count < 0 or offset < 0:
        raise InvalidRequest("_count and _offset must not be negative")
    return HistoryRequest(since, count, offset)


async def history(ctx: FhirContext, resource_type: str | None, id: str | None,
                  request: HistoryRequest) -> HistoryPage:
    """Versions newest first; an instance that never existed is 404."""
    if resource_type is not None:
        require_supported(resource_type)
    # The audit trail is not part of the system's history: it is searched as AuditEvent, and
    # every history read would otherwise list the events it just caused.
    page = await ctx.store.history(resource_type, id, since=request.since,
                                   offset=request.offset, limit=request.count,
                                   exclude_types=SERVER_WRITTEN_TYPES)
    if id is not None and page.total == 0 and request.since is None:
        raise ResourceNotFound(f"{resource_type}/{id} is not known")
    return page
