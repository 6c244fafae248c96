"""Index extraction: what a resource version is findable by, computed once on write.

Each supported search parameter's FHIRPath selects raw JSON values; their FHIR data type is
recognised from shape (a Coding has `code`, a Reference has `reference`, ...) and turned into
store-neutral `IndexEntry` values the adapters store natively.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any, Final

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.search.dates import parse_date_range, period_range
from fhir_server.fhir.search.model import (
    DateEntry,
    IndexEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
)
from fhir_server.fhir.search.parameters import SearchParameterDef, SearchParameterRegistry

CONTACT_POINT_SYSTEMS: Final = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
# HumanName and Address parts that string search matches (FHIR R4 §3.1.1.4.8 / search.html#string).
STRING_PARTS: Final = ("text", "family", "given", "prefix", "suffix",
                       "line", "city", "district", "state", "postalCode", "country")

_TYPE_ID = re.compile(r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})")
_HISTORY = re.compile(r"/_history/[^/]+$")


def normalize_string(value: str) -> str:
    """Case- and accent-folded form used by default and `:contains` string search."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def extract_index(resource: dict[str, Any], registry: SearchParameterRegistry, *,
                  base_url: str | None = None) -> tuple[IndexEntry, ...]:
    """Every distinct index entry of `resource` for the parameters of its type."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidRequest("Resource has no resourceType")
    entries: dict[IndexEntry, None] = {}
    for definition in registry.for_type(resource_type).values():
        if definition.code == "_id":
            continue  # ids are matched directly, never through the index
        for value in registry.evaluate(definition, resource):
            for entry in entries_for_value(definition, value, base_url=base_url):
                entries[entry] = None
    return tuple(entries)


def entries_for_value(definition: SearchParameterDef, value: Any, *,
                      base_url: str | None = None) -> Iterator[IndexEntry]:
    """The entries one FHIRPath result contributes, by the parameter's type."""
    if definition.type == "token":
        yield from _token_entries(definition.code, value)
    elif definition.type == "uri":
        if isinstance(value, str) and value:
            yield TokenEntry(definition.code, None, value)
    elif definition.type == "reference":
        entry = reference_entry(definition.code, value, base_url=base_url)
        if entry is not None:
            yield entry
    elif definition.type == "date":
        entry_range = _date_range(value)
        if entry_range is not None:
            yield DateEntry(definition.code, *entry_range)
    elif definition.type == "string":
        for text in _string_parts(value):
            yield StringEntry(definition.code, normalize_string(text), text)


def _token_entries(param: str, value: Any) -> Iterator[TokenEntry]:
    """Coding, CodeableConcept, Identifier, ContactPoint, code and boolean values as tokens."""
    if isinstance(value, bool):
        yield TokenEntry(param, None, "true" if value else "false")
    elif isinstance(value, str):
        if value:
            yield TokenEntry(param, None, value)
    elif isinstance(value, Mapping):
        if "coding" in value:
            for coding in value.get("coding") or ():
                yield from _token_entries(param, coding)
        elif isinstance(value.get("code"), str):
            yield TokenEntry(param, value.get("system"), value["code"])
        elif isinstance(value.get("value"), str):
            system = value.get("system")
            if system in CONTACT_POINT_SYSTEMS:  # ContactPoint: matched on value only
                system = None
            yield TokenEntry(param, system, value["value"])


def reference_entry(param: str, value: Any, *, base_url: str | None = None) -> ReferenceEntry | None:
    """A Reference (or canonical string) as an entry; None for contained or identifier-only ones."""
    reference = value.get("reference") if isinstance(value, Mapping) else value
    if not isinstance(reference, str) or not reference or reference.startswith("#"):
        return None
    target_type, target_id, url = split_reference(reference, base_url=base_url)
    return ReferenceEntry(param, target_type, target_id, url)


def split_reference(reference: str, *, base_url: str | None = None
                    ) -> tuple[str | None, str | None, str | None]:
    """`(type, id, url)` of a literal reference; local when it is under `base_url`."""
    reference = _HISTORY.sub("", reference.split("|", 1)[0])
    if base_url and reference.startswith(base_url.rstrip("/") + "/"):
        reference = reference[len(base_url.rstrip("/")) + 1:]
    if "://" not in reference and not reference.startswith("urn:"):
        local = _TYPE_ID.fullmatch(reference)
        if local is not None:
            return local["type"], local["id"], None
        return None, None, reference
    tail = _TYPE_ID.fullmatch("/".join(reference.rstrip("/").rsplit("/", 2)[-2:]))
    if tail is None:
        return None, None, reference
    return tail["type"], tail["id"], reference


def _date_range(value: Any) -> tuple[int, int] | None:
    """The range of a date/dateTime/instant string or a Period; None for anything else."""
    try:
        if isinstance(value, str):
            return parse_date_range(value)
        if isinstance(value, Mapping):
            return period_range(value)
    except InvalidRequest:
        return None  # stored data was validated on write; an odd value is simply not findable
    return None


def _string_parts(value: Any) -> Iterator[str]:
    """The searchable strings of a string, HumanName or Address value."""
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, Mapping):
        for part in STRING_PARTS:
            found = value.get(part)
            for text in found if isinstance(found, list) else (found,):
                if isinstance(text, str) and text:
                    yield text
