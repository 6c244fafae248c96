"""MongoDB search: index entries as arrays inside each document; the typed query as a filter.

A resource document carries its entries as `tok: [{p, s, c}]`, `ref: [{p, t, i, u}]`,
`dt: [{p, lo, hi}]` and `str: [{p, n, e}]`, each covered by a multikey `(type, <array>.p, ...)`
index. Sorting by a parameter needs the lowest (ascending) or highest (descending) value of the
resource's entries; the jongodb test server has no aggregation expressions to compute that at
query time, so both are precomputed on write into `sa.<kind>.<param>` and `sd.<kind>.<param>`.
The orders match the SQLite adapter: a date sorts by its lowest `low` ascending and its highest
`high` descending, resources without a value sort first ascending and last descending.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fhir_server.fhir.search.model import (
    Clause,
    DateEntry,
    DateMatch,
    IdMatch,
    IndexEntry,
    Predicate,
    ReferenceEntry,
    ReferenceMatch,
    SortKey,
    StoreQuery,
    StringEntry,
    StringMatch,
    TokenEntry,
    TokenMatch,
)

Document = dict[str, Any]
SortSpec = list[tuple[str, int]]

# Matches nothing; MongoDB rejects an empty `$or`, so an empty OR is spelled this way.
NEVER: Document = {"_id": {"$in": []}}
DEFAULT_ORDER: SortSpec = [("updated_us", 1), ("id", 1)]


def index_fields(entries: Iterable[IndexEntry]) -> Document:
    """The indexed arrays and the precomputed sort keys of one resource version."""
    tok: list[Document] = []
    ref: list[Document] = []
    dt: list[Document] = []
    strings: list[Document] = []
    lowest: dict[str, dict[str, Any]] = {}
    highest: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if isinstance(entry, TokenEntry):
            tok.append({"p": entry.param, "s": entry.system or None, "c": entry.code})
            low, high, kind = entry.code, entry.code, "token"
        elif isinstance(entry, ReferenceEntry):
            ref.append({"p": entry.param, "t": entry.target_type, "i": entry.target_id,
                        "u": entry.url})
            low, high, kind = entry.target_id, entry.target_id, "reference"
        elif isinstance(entry, DateEntry):
            dt.append({"p": entry.param, "lo": entry.low, "hi": entry.high})
            low, high, kind = entry.low, entry.high, "date"
        elif isinstance(entry, StringEntry):
            strings.append({"p": entry.param, "n": entry.normalized, "e": entry.exact})
            low, high, kind = entry.normalized, entry.normalized, "string"
        else:
            raise TypeError(f"unsupported index entry: {entry!r}")
        if low is not None:
            _keep(lowest.setdefault(kind, {}), entry.param, low, min)
            _keep(highest.setdefault(kind, {}), entry.param, high, max)
    return {"tok": tok, "ref": ref, "dt": dt, "str": strings, "sa": lowest, "sd": highest}


def _keep(keys: dict[str, Any], param: str, value: Any, pick: Any) -> None:
    """Fold one entry's value into the param's sort key with `min` or `max`."""
    keys[param] = pick(keys[param], value) if param in keys else value


def compile_filter(query: StoreQuery) -> Document:
    """Current, non-deleted resources of the type matching every clause (AND)."""
    compiled = [_compile_clause(clause) for clause in query.where]
    conditions = [c for c in compiled if c is not None]
    filter_: Document = {"type": query.resource_type, "deleted": False}
    if conditions:
        filter_["$and"] = conditions
    return filter_


def _compile_clause(clause: Clause) -> Document | None:
    """Predicates OR-ed; a negated clause (`$nor`) also holds for resources with no entry."""
    if not clause.any_of:
        return None if clause.negate else NEVER
    predicates = [_compile_predicate(p) for p in clause.any_of]
    either = predicates[0] if len(predicates) == 1 else {"$or": predicates}
    return {"$nor": [either]} if clause.negate else either


def _compile_predicate(predicate: Predicate) -> Document:
    """One predicate as an `$elemMatch` on its index array (or `id $in`)."""
    if isinstance(predicate, IdMatch):
        return {"id": {"$in": list(predicate.ids)}} if predicate.ids else NEVER
    if isinstance(predicate, TokenMatch):
        return {"tok": {"$elemMatch": _token_element(predicate)}}
    if isinstance(predicate, ReferenceMatch):
        return _reference_filter(predicate)
    if isinstance(predicate, DateMatch):
        return {"dt": {"$elemMatch": _date_element(predicate)}}
    if isinstance(predicate, StringMatch):
        return {"str": {"$elemMatch": _string_element(predicate)}}
    raise TypeError(f"unsupported predicate: {predicate!r}")


def _token_element(match: TokenMatch) -> Document:
    """`system=None` is any system, `""` is no system; `code=None` is any code."""
    element: Document = {"p": match.param}
    if match.code is not None:
        element["c"] = match.code
    if match.system == "":
        element["s"] = None
    elif match.system is not None:
        element["s"] = match.system
    return element


def _reference_filter(match: ReferenceMatch) -> Document:
    """By id (and type when given), or by absolute url; either one may identify the target."""
    alternatives: list[Document] = []
    if match.target_id is not None:
        element: Document = {"p": match.param, "i": match.target_id}
        if match.target_type is not None:
            element["t"] = match.target_type
        alternatives.append(element)
    elif match.target_type is not None:
        alternatives.append({"p": match.param, "t": match.target_type})
    if match.url is not None:
        alternatives.append({"p": match.param, "u": match.url})
    if not alternatives:
        alternatives.append({"p": match.param})
    filters = [{"ref": {"$elemMatch": element}} for element in alternatives]
    return filters[0] if len(filters) == 1 else {"$or": filters}


def _date_element(match: DateMatch) -> Document:
    """Every bound that is set must hold on the same entry's `[lo, hi)` range."""
    element: Document = {"p": match.param}
    low: Document = {}
    high: Document = {}
    if match.low_ge is not None:
        low["$gte"] = match.low_ge
    if match.low_lt is not None:
        low["$lt"] = match.low_lt
    if match.high_gt is not None:
        high["$gt"] = match.high_gt
    if match.high_le is not None:
        high["$lte"] = match.high_le
    if low:
        element["lo"] = low
    if high:
        element["hi"] = high
    return element


def _string_element(match: StringMatch) -> Document:
    """`exact` on the raw value; prefix as an anchored (index-friendly) regex; `contains` not."""
    element: Document = {"p": match.param}
    if match.mode == "exact":
        element["e"] = match.value
    elif match.value:
        anchor = "^" if match.mode == "startswith" else ""
        element["n"] = {"$regex": anchor + re.escape(match.value)}
    return element


def compile_sort(keys: tuple[SortKey, ...]) -> SortSpec:
    """The sort keys in order, then `id` so pages are stable; default is oldest first."""
    if not keys:
        return list(DEFAULT_ORDER)
    spec: SortSpec = []
    for key in keys:
        field = sort_field(key)
        if all(field != seen for seen, _ in spec):
            spec.append((field, -1 if key.descending else 1))
    if all(field != "id" for field, _ in spec):
        spec.append(("id", 1))
    return spec


def sort_field(key: SortKey) -> str:
    """The document field a sort key orders by."""
    if key.kind == "id":
        return "id"
    if key.kind == "lastUpdated":
        return "updated_us"
    return f"{'sd' if key.descending else 'sa'}.{key.kind}.{key.param}"
