"""FHIR search query → typed `SearchRequest`: filters as a `StoreQuery`, plus result controls.

Repeated parameters are AND (one Clause each), comma-separated values are OR (one Clause with
several predicates). Chained parameters are returned unresolved: the service searches the
target type, then adds a ReferenceMatch clause with the ids it found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal
from urllib.parse import parse_qsl

from fhir_server.fhir.errors import InvalidRequest, UnknownSearchParameter
from fhir_server.fhir.resource_types import SUPPORTED_TYPES
from fhir_server.fhir.search.dates import MS_PER_DAY, epoch_ms, parse_date_range
from fhir_server.fhir.search.extract import normalize_string, split_reference
from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    IdMatch,
    Predicate,
    ReferenceMatch,
    SortKey,
    SortKind,
    StoreQuery,
    StringMatch,
    TokenMatch,
)
from fhir_server.fhir.search.parameters import SearchParameterDef, SearchParameterRegistry

# `true` and `text` need the summary flags of every element, which the packaged
# definitions do not carry, so they are refused rather than silently ignored.
SummaryMode = Literal["count", "data", "false"]
TotalMode = Literal["none", "estimate", "accurate"]

RESULT_PARAMETERS: Final = frozenset({
    "_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_total", "_elements",
    "_format", "_pretty",
})
_SUMMARY_MODES: Final = ("count", "data", "false")
_TOTAL_MODES: Final = ("none", "estimate", "accurate")
_DATE_PREFIX = re.compile(r"(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.+)", re.DOTALL)
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ESCAPABLE = frozenset("\\,$|")


@dataclass(frozen=True, slots=True)
class ChainedSearch:
    """`param.inner=value`: resources whose `param` refers to a `target_types` match of `inner`."""

    param: str
    target_types: tuple[str, ...]
    inner: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class IncludeSpec:
    """`_include`/`_revinclude=source_type:param[:target_type]`; `param` may be `*`."""

    source_type: str
    param: str
    target_type: str | None = None
    iterate: bool = False


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """Everything a search asks for: the store query, chains to resolve, and result controls."""

    query: StoreQuery
    chains: tuple[ChainedSearch, ...] = ()
    includes: tuple[IncludeSpec, ...] = ()
    revincludes: tuple[IncludeSpec, ...] = ()
    summary: SummaryMode | None = None
    total: TotalMode | None = None
    elements: tuple[str, ...] = ()
    count: int = 50
    offset: int = 0
    ignored: tuple[str, ...] = ()


def parse_query_string(qs: str) -> list[tuple[str, str]]:
    """Decode a raw query string into ordered (name, value) pairs, keeping blank values."""
    return parse_qsl(qs, keep_blank_values=True)


def split_unescaped(text: str, separator: str) -> list[str]:
    """Split on `separator` except where backslash-escaped; escapes are kept for the next step."""
    parts, current, index = [], [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index:index + 2])
            index += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """Drop the backslash of FHIR search escapes (`\\,`, `\\|`, `\\$`, `\\\\`)."""
    return re.sub(r"\\(.)", lambda m: m.group(1) if m.group(1) in _ESCAPABLE else m.group(0), text)


def date_predicates(param: str, prefix: str, low: int, high: int, now_ms: int) -> tuple[DateMatch, ...]:
    """The DateMatch alternatives (OR) of one prefixed date value over `[low, high)`."""
    eq = DateMatch(param, low_ge=low, high_le=high)
    gt = DateMatch(param, high_gt=high)
    lt = DateMatch(param, low_lt=low)
    if prefix == "eq":
        return (eq,)
    if prefix == "ne":  # not fully inside the query range
        return (lt, gt)
    if prefix in ("gt", "lt"):
        return (gt,) if prefix == "gt" else (lt,)
    if prefix == "ge":  # reaches into [low, ∞): a period ending on the given day matches
        return (DateMatch(param, high_gt=low),)
    if prefix == "le":  # reaches into (-∞, high)
        return (DateMatch(param, low_lt=high),)
    if prefix == "sa":
        return (DateMatch(param, low_ge=high),)
    if prefix == "eb":
        return (DateMatch(param, high_le=low),)
    distance = 0 if low <= now_ms < high else min(abs(now_ms - low), abs(now_ms - high))
    delta = max(MS_PER_DAY, distance // 10)
    return (DateMatch(param, low_lt=high + delta, high_gt=low - delta),)


def token_match(param: str, raw: str) -> TokenMatch:
    """`code`, `system|code`, `|code` (no system) or `system|` (any code) of one raw value."""
    parts = split_unescaped(raw, "|")
    if len(parts) == 1:
        return TokenMatch(param, None, unescape(parts[0]))
    if len(parts) != 2 or parts == ["", ""]:
        raise InvalidRequest(f"Invalid token value for {param!r}: {raw!r}", expression=param)
    system, code = unescape(parts[0]), unescape(parts[1])
    return TokenMatch(param, system, code or None)


def reference_match(definition: SearchParameterDef, raw: str, *, type_modifier: str | None,
                    base_url: str | None) -> ReferenceMatch:
    """`Type/id`, plain `id` (typed by `:Type` or a sole target) or an absolute URL."""
    value, code = unescape(raw), definition.code
    if "/" not in value and ":" not in value:
        sole = definition.targets[0] if len(definition.targets) == 1 else None
        return ReferenceMatch(code, type_modifier or sole, value)
    target_type, target_id, url = split_reference(value, base_url=base_url)
    if url is not None:
        if "://" not in url and not url.startswith("urn:"):
            raise InvalidRequest(f"Invalid reference for {code!r}: {raw!r}", expression=code)
        return ReferenceMatch(code, None, None, url=url)
    if type_modifier is not None and target_type != type_modifier:
        raise InvalidRequest(f"{raw!r} is not a {type_modifier} reference", expression=code)
    return ReferenceMatch(code, target_type, target_id)


@dataclass
class _Parser:
    """Accumulates the pieces of one search while walking its parameters in order."""

    resource_type: str
    registry: SearchParameterRegistry
    now_ms: int
    lenient: bool
    base_url: str | None
    default_count: int
    max_count: int
    where: list[Clause] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    chains: list[ChainedSearch] = field(default_factory=list)
    includes: list[IncludeSpec] = field(default_factory=list)
    revincludes: list[IncludeSpec] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    summary: SummaryMode | None = None
    total: TotalMode | None = None
    elements: tuple[str, ...] = ()
    count: int | None = None
    offset: int = 0

    def reject(self, name: str, diagnostics: str) -> None:
        """Unknown parameter or modifier: an error, or dropped and reported when lenient."""
        if not self.lenient:
            raise UnknownSearchParameter(diagnostics, expression=name)
        self.ignored.append(name)

    def add(self, name: str, value: str) -> None:
        """Route one (name, value) pair to the filter, chain or result-control handler."""
        if value == "":
            return  # FHIR: a parameter with an empty value is ignored
        if "." in name and not name.startswith("_"):
            self.add_chain(name, value)
            return
        code, _, modifier = name.partition(":")
        if code in RESULT_PARAMETERS:
            self.add_control(name, code, modifier, value)
            return
        definition = self.registry.get(self.resource_type, code)
        if definition is None:
            self.reject(name, f"Unknown search parameter {code!r} for {self.resource_type}")
            return
        clause = self.clause(definition, name, modifier, value)
        if clause is not None:
            self.where.append(clause)

    def clause(self, definition: SearchParameterDef, name: str, modifier: str,
               value: str) -> Clause | None:
        """One Clause (OR of comma-separated values) for a filter parameter, or None if rejected."""
        kind, code = definition.type, definition.code
        if modifier == "missing" and modifier in definition.modifiers:
            return _missing_clause(definition, value)
        raw_values = [raw for raw in split_unescaped(value, ",") if raw != ""]
        if not raw_values:
            return None
        if code == "_id":
            if modifier not in ("", "not"):
                self.reject(name, f"Unsupported modifier {modifier!r} on _id")
                return None
            return Clause((IdMatch(tuple(unescape(v) for v in raw_values)),), negate=modifier == "not")
        if kind == "reference":
            if modifier and modifier not in definition.targets:
                self.reject(name, f"Unsupported modifier {modifier!r} on {code!r}")
                return None
            return Clause(tuple(reference_match(definition, raw, type_modifier=modifier or None,
                                                base_url=self.base_url) for raw in raw_values))
        if modifier and modifier not in definition.modifiers:
            self.reject(name, f"Unsupported modifier {modifier!r} on {code!r}")
            return None
        if kind in ("token", "uri"):
            matches = tuple(token_match(code, raw) if kind == "token"
                            else TokenMatch(code, None, unescape(raw)) for raw in raw_values)
            return Clause(matches, negate=modifier == "not")
        if kind == "date":
            return self.date_clause(code, raw_values)
        mode = "exact" if modifier == "exact" else "contains" if modifier == "contains" else "startswith"
        return Clause(tuple(StringMatch(code, unescape(raw) if mode == "exact"
                                        else normalize_string(unescape(raw)), mode)
                            for raw in raw_values))

    def date_clause(self, code: str, raw_values: list[str]) -> Clause:
        """Prefixed date values; a lone `ne` is the negated `eq` so missing values match too."""
        parsed: list[tuple[str, int, int]] = []
        for raw in raw_values:
            # An unencoded `+` in a time zone arrives as a space after query-string decoding.
            match = _DATE_PREFIX.fullmatch(unescape(raw).strip().replace(" ", "+"))
            if match is None:
                raise InvalidRequest(f"Invalid date value for {code!r}: {raw!r}", expression=code)
            low, high = parse_date_range(match.group(2))
            parsed.append((match.group(1) or "eq", low, high))
        if len(parsed) == 1 and parsed[0][0] == "ne":
            _, low, high = parsed[0]
            return Clause((DateMatch(code, low_ge=low, high_le=high),), negate=True)
        predicates: list[Predicate] = []
        for prefix, low, high in parsed:
            predicates.extend(date_predicates(code, prefix, low, high, self.now_ms))
        return Clause(tuple(predicates))

    def add_chain(self, name: str, value: str) -> None:
        """One level of chaining: `ref.inner`, `ref:Type.inner`; resolved later by the service."""
        head, _, inner_name = name.partition(".")
        code, _, type_modifier = head.partition(":")
        definition = self.registry.get(self.resource_type, code)
        if definition is None or definition.type != "reference":
            self.reject(name, f"{code!r} is not a reference parameter of {self.resource_type}")
            return
        if "." in inner_name or not inner_name:
            self.reject(name, f"Only one level of chaining is supported: {name!r}")
            return
        inner_code = inner_name.partition(":")[0]
        candidates = (type_modifier,) if type_modifier else definition.targets
        targets = tuple(t for t in candidates if t in definition.targets and t in SUPPORTED_TYPES
                        and self.registry.get(t, inner_code) is not None)
        if not targets:
            self.reject(name, f"No target of {code!r} supports the chained parameter {inner_name!r}")
            return
        self.chains.append(ChainedSearch(code, targets, ((inner_name, value),)))

    def add_control(self, name: str, code: str, modifier: str, value: str) -> None:
        """Result parameters: paging, sorting, includes, summary, total and elements."""
        if code in ("_include", "_revinclude"):
            if modifier not in ("", "iterate", "recurse"):
                self.reject(name, f"Unsupported modifier {modifier!r} on {code}")
                return
            self.add_include(code, value, iterate=bool(modifier))
        elif modifier:
            self.reject(name, f"Unsupported modifier {modifier!r} on {code}")
        elif code in ("_count", "_offset"):
            number = _non_negative_int(code, value)
            if code == "_count":
                self.count = min(number, self.max_count)
            else:
                self.offset = number
        elif code == "_sort":
            self.add_sort(value)
        elif code == "_summary":
            self.summary = _one_of(code, value, _SUMMARY_MODES)  # type: ignore[assignment]
        elif code == "_total":
            self.total = _one_of(code, value, _TOTAL_MODES)  # type: ignore[assignment]
        elif code == "_elements":
            self.elements = _elements(value)
        # _format and _pretty only shape the response; the API layer reads them itself.

    def add_sort(self, value: str) -> None:
        """`_sort=a,-b`: sort keys in order, descending when prefixed with `-`."""
        for item in (part.strip() for part in value.split(",")):
            code = item.lstrip("-")
            if not code:
                continue
            descending = item.startswith("-")
            if code in ("_id", "_lastUpdated"):
                kind: SortKind = "id" if code == "_id" else "lastUpdated"
            else:
                definition = self.registry.get(self.resource_type, code)
                if definition is None:
                    self.reject(f"_sort={item}", f"Unknown sort parameter {code!r} for {self.resource_type}")
                    continue
                kind = "token" if definition.type == "uri" else definition.type
            self.sort.append(SortKey(code, kind, descending))

    def add_include(self, code: str, value: str, *, iterate: bool) -> None:
        """`Source:param[:Target]` (or `*`), checked against the registry."""
        parts = [self.resource_type, "*"] if value == "*" else value.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidRequest(f"Invalid {code} value {value!r}", expression=code)
        source, param = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if code == "_include" and source != self.resource_type and not iterate:
            raise InvalidRequest(f"_include source {source!r} must be {self.resource_type}"
                                 " (or use _include:iterate)", expression=code)
        if not self.include_is_known(code, source, param, target):
            self.reject(f"{code}={value}", f"Unknown {code} {value!r}")
            return
        spec = IncludeSpec(source, param, target, iterate)
        (self.includes if code == "_include" else self.revincludes).append(spec)

    def include_is_known(self, code: str, source: str, param: str, target: str | None) -> bool:
        """The source type is served and `param` is one of its references to `target`."""
        if source not in SUPPORTED_TYPES:
            return False
        if param == "*":
            return target is None or target in SUPPORTED_TYPES
        definition = self.registry.get(source, param)
        if definition is None or definition.type != "reference":
            return False
        if target is not None and target not in definition.targets:
            return False
        # A revinclude must point back at the searched type.
        return code == "_include" or self.resource_type in definition.targets

    def result(self) -> SearchRequest:
        """The finished request; `_summary=count` asks the store for no rows, only the total."""
        count = self.default_count if self.count is None else self.count
        query = StoreQuery(
            resource_type=self.resource_type,
            where=tuple(self.where),
            sort=tuple(self.sort),
            offset=self.offset,
            limit=0 if self.summary == "count" else count,
            with_total=self.total != "none",
        )
        return SearchRequest(
            query=query, chains=tuple(self.chains), includes=tuple(self.includes),
            revincludes=tuple(self.revincludes), summary=self.summary, total=self.total,
            elements=self.elements, count=count, offset=self.offset, ignored=tuple(self.ignored),
        )


def _missing_clause(definition: SearchParameterDef, value: str) -> Clause:
    """`:missing=true` is "no entry at all" (a negated match-anything), `false` is "some entry"."""
    if value not in ("true", "false"):
        raise InvalidRequest(f":missing takes true or false, not {value!r}", expression=definition.code)
    code = definition.code
    anything: Predicate
    if definition.type == "date":
        anything = DateMatch(code)
    elif definition.type == "string":
        anything = StringMatch(code, "", "startswith")
    else:
        anything = TokenMatch(code, None, None)
    return Clause((anything,), negate=value == "true")


def _non_negative_int(code: str, value: str) -> int:
    """A paging number; a malformed one is the client's error."""
    if not value.strip().isdigit():
        raise InvalidRequest(f"{code} must be a non-negative integer, not {value!r}", expression=code)
    return int(value)


def _one_of(code: str, value: str, allowed: tuple[str, ...]) -> str:
    """An enumerated control value."""
    if value not in allowed:
        raise InvalidRequest(f"{code} must be one of {', '.join(allowed)}; got {value!r}",
                             expression=code)
    return value


def _elements(value: str) -> tuple[str, ...]:
    """`_elements=a,b`: top-level element names to keep."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    for name in names:
        if not _ELEMENT.fullmatch(name):
            raise InvalidRequest(f"Invalid element name in _elements: {name!r}", expression="_elements")
    return names


def parse_search(resource_type: str, params: Sequence[tuple[str, str]],
                 registry: SearchParameterRegistry, *, now: datetime, lenient: bool = False,
                 base_url: str | None = None, default_count: int = 50,
                 max_count: int = 1000) -> SearchRequest:
    """Parse FHIR search parameters for `resource_type`; UnknownSearchParameter / InvalidRequest."""
    parser = _Parser(resource_type=resource_type, registry=registry, now_ms=epoch_ms(now),
                     lenient=lenient, base_url=base_url, default_count=min(default_count, max_count),
                     max_count=max_count)
    for name, value in params:
        parser.add(name, value)
    return parser.result()
