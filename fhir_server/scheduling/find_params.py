"""Parameters of `Slot/$find-slots` and IHE ITI-115 `Appointment/$find`, as one `SlotQuery`.

Both operations take the same values by GET (query string: a parameter repeated, or values
joined by commas, is OR) or POST (a `Parameters` body with the same names). Each operation
declares its names in a `ParamSpec`; parsing is pure and raises `InvalidRequest` naming the
parameter, so the API layer only maps it to a 400.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.ids import FHIR_ID
from fhir_server.fhir.search.dates import parse_date_range

Code = tuple[str | None, str]
"""A coded value as `(system, code)`; system None matches any system."""
Kind = Literal["instant", "codes", "reference", "integer", "string", "patient", "concept"]

MAX_WINDOW = timedelta(days=93)
DEFAULT_COUNT = 10
MAX_COUNT = 500
MAX_DURATION = 24 * 60
ACTOR_ORDER = ("Practitioner", "PractitionerRole", "Schedule", "Location", "Device")
"""Groups are ANDed in this order; the first one present decides the offered start times."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SlotQuery:
    """What to find. `actors` is `(type, references)` per group, most preferred first."""

    start: datetime
    end: datetime
    service_types: tuple[Code, ...] = ()
    specialties: tuple[Code, ...] = ()
    appointment_types: tuple[Code, ...] = ()
    actors: tuple[tuple[str, tuple[str, ...]], ...] = ()
    patient: str | None = None
    duration: int | None = None
    count: int = DEFAULT_COUNT
    organizations: tuple[str, ...] = ()
    location_text: tuple[str, ...] = ()
    reasons: tuple[dict[str, Any], ...] = ()
    """Recorded on the proposed appointments; not a filter."""


@dataclass(frozen=True, slots=True)
class Param:
    """One accepted input: where it goes in the query, its kind and, for references, the type."""

    field: str
    kind: Kind
    target: str | None = None
    max_count: int | None = None


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """The names an operation accepts (aliases map to the same `Param`)."""

    params: Mapping[str, Param] = field(default_factory=dict)


def _actor(target: str) -> Param:
    return Param("actors", "reference", target)


_COMMON = {
    "start": Param("start", "instant", max_count=1),
    "end": Param("end", "instant", max_count=1),
    "specialty": Param("specialties", "codes"),
    "practitioner": _actor("Practitioner"),
    "location-reference": _actor("Location"),
    "patient-reference": Param("patient", "reference", "Patient", max_count=1),
    "_count": Param("count", "integer", max_count=1),
}
FIND_SLOTS = ParamSpec({
    **_COMMON,
    "service-type": Param("service_types", "codes"),
    "appointment-type": Param("appointment_types", "codes"),
    "practitioner-role": _actor("PractitionerRole"),
    "device": _actor("Device"),
    "schedule": _actor("Schedule"),
    "duration": Param("duration", "integer", max_count=1),
})
ITI_115_FIND = ParamSpec({
    **_COMMON,
    "startTime": _COMMON["start"],
    "endTime": _COMMON["end"],
    "visit-type": Param("service_types", "codes"),
    "organization": Param("organizations", "reference", "Organization"),
    "location-string": Param("location_text", "string"),
    "patient-resource": Param("patient", "patient", "Patient", max_count=1),
    "reason": Param("reasons", "concept"),
})
_IGNORED = frozenset({"_format", "_pretty"})


def from_query(pairs: Sequence[tuple[str, str]], spec: ParamSpec,) -> SlotQuery:
    """A query from GET parameters; comma-separated values are alternatives like repeats."""
    values: list[tuple[str, Any]] = []
    for name, raw in pairs:
        if name in _IGNORED:
            continue
        param = _known(name, spec)
        parts = [raw] if param.kind in ("instant", "string") else raw.split(",")
        values.extend((name, part.strip()) for part in parts)
    return _build(values, spec)


def from_parameters(body: Any, spec: ParamSpec,) -> SlotQuery:
    """A query from a `Parameters` resource posted to the operation."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("The operation takes a Parameters resource", code="structure")
    entries = body.get("parameter", [])
    if not isinstance(entries, list):
        raise InvalidRequest("Parameters.parameter must be a list", code="structure",
                             expression="Parameters.parameter")
    values: list[tuple[str, Any]] = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise InvalidRequest("Every parameter needs a name", code="required",
                                 expression="Parameters.parameter.name")
        _known(name, spec)
        values.append((name, _parameter_value(entry)))
    return _build(values, spec)


def _known(name: str, spec: ParamSpec) -> Param:
    param = spec.params.get(name)
    if param is None:
        raise InvalidRequest(f"Unknown parameter '{name}'; accepted: "
                             f"{', '.join(sorted(spec.params))}", code="not-supported",
                             expression=name)
    return param


def _parameter_value(entry: dict[str, Any]) -> Any:
    """The one `value[x]` (or `resource`) of a Parameters entry, as given."""
    if "resource" in entry:
        return entry["resource"]
    values = [(key, value) for key, value in entry.items() if key.startswith("value")]
    if len(values) != 1:
        raise InvalidRequest(f"Parameter '{entry['name']}' needs exactly one value[x]",
                             code="required", expression=entry["name"])
    return values[0]


def _build(values: list[tuple[str, Any]], spec: ParamSpec) -> SlotQuery:
    """Convert every value by its parameter's kind, then check the whole query."""
    fields: dict[str, list[tuple[str, Any]]] = {}
    for name, raw in values:
        param = spec.params[name]
        converted = _convert(name, param, raw)
        entries = fields.setdefault(param.field, [])
        if converted is not None:
            entries.append((name, converted))
        if param.max_count is not None and len(entries) > param.max_count:
            raise InvalidRequest(f"'{name}' may be given only once", expression=name)
    return _query(fields)


def _query(fields: dict[str, list[tuple[str, Any]]]) -> SlotQuery:
    def one(key: str) -> Any:
        return fields[key][0][1] if fields.get(key) else None

    def many(key: str) -> tuple[Any, ...]:
        return tuple(dict.fromkeys(v for _, v in fields.get(key, ())))

    start, end = one("start"), one("end")
    for name, value in (("start", start), ("end", end)):
        if value is None:
            raise InvalidRequest(f"'{name}' is required", code="required", expression=name)
    window_end = end[1] if end[2] else end[0]
    window = (_from_ms(start[0]), _from_ms(window_end))
    if window[1] - window[0] > MAX_WINDOW:
        raise InvalidRequest(f"The window may span at most {MAX_WINDOW.days} days",
                             expression="end")
    if window[1] <= window[0]:
        raise InvalidRequest("'end' must be after 'start'", expression="end")
    groups = _actor_groups(many("actors"))
    duration, count = one("duration"), one("count")
    _check_range("duration", duration, 1, MAX_DURATION)
    _check_range("_count", count, 0, MAX_COUNT)
    return SlotQuery(
        start=window[0], end=window[1], service_types=many("service_types"),
        specialties=many("specialties"), appointment_types=many("appointment_types"),
        actors=groups, patient=one("patient"), duration=duration,
        count=DEFAULT_COUNT if count is None else count,
        organizations=many("organizations"), location_text=many("location_text"),
        reasons=tuple(v for _, v in fields.get("reasons", ())))


def _check_range(name: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be between {low} and {high}", expression=name)


def _actor_groups(references: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """References grouped by type in `ACTOR_ORDER`, keeping the order they were given in."""
    by_type: dict[str, list[str]] = {}
    for reference in references:
        by_type.setdefault(reference.split("/", 1)[0], []).append(reference)
    return tuple((kind, tuple(by_type[kind])) for kind in ACTOR_ORDER if kind in by_type)


def _from_ms(value: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=value)


def _convert(name: str, param: Param, raw: Any) -> Any:
    """One value in the shape its kind needs; None for a value that names nothing."""
    key, value = raw if isinstance(raw, tuple) else (None, raw)
    converter = _CONVERTERS[param.kind]
    return converter(name, param, key, value)


def _instant(name: str, param: Param, key: str | None, value: Any) -> tuple[int, int, bool]:
    """`(low, high, date_only)` in epoch ms: a date-only `end` means the end of that day."""
    if key not in (None, "valueDateTime", "valueInstant", "valueDate", "valueString") \
            or not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a dateTime", expression=name)
    try:
        low, high = parse_date_range(value)
    except InvalidRequest as error:
        raise InvalidRequest(f"'{name}': {error}", expression=name) from error
    return low, high, "T" not in value


def _codes(name: str, param: Param, key: str | None, value: Any) -> Code:
    if key == "valueCoding" and isinstance(value, dict):
        return _coding(name, value)
    if key == "valueCodeableConcept" and isinstance(value, dict):
        codings = value.get("coding") or []
        if len(codings) != 1:
            raise InvalidRequest(f"'{name}' needs a CodeableConcept with one coding",
                                 expression=name)
        return _coding(name, codings[0])
    if key in (None, "valueString", "valueCode", "valueToken") and isinstance(value, str):
        system, bar, code = value.rpartition("|")
        if code:
            return (system if bar else None, code)
    raise InvalidRequest(f"'{name}' must be a code, system|code, Coding or CodeableConcept",
                         expression=name)


def _coding(name: str, coding: Any) -> Code:
    code = coding.get("code") if isinstance(coding, dict) else None
    if not isinstance(code, str) or not code:
        raise InvalidRequest(f"'{name}' needs a Coding with a code", expression=name)
    system = coding.get("system")
    return (system if isinstance(system, str) else None, code)


def _reference(name: str, param: Param, key: str | None, value: Any) -> str:
    """A local `Type/id` reference of the parameter's type (a bare id takes that type)."""
    if key == "valueReference" and isinstance(value, dict):
        value = value.get("reference")
    elif key not in (None, "valueString", "valueUri"):
        value = None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a reference to a {param.target}", expression=name)
    return local_reference(value, param.target, name)


def local_reference(value: str, target: str | None, name: str) -> str:
    """`Type/id` from a relative, absolute or bare-id reference; InvalidRequest otherwise."""
    parts = value.strip().split("/_history/")[0].rstrip("/").split("/")
    kind, id_ = (parts[-2], parts[-1]) if len(parts) >= 2 else (target, parts[-1])
    if kind != target or not FHIR_ID.fullmatch(id_ or ""):
        raise InvalidRequest(f"'{name}' must reference a {target}, e.g. {target}/123; got "
                             f"'{value}'", expression=name)
    return f"{kind}/{id_}"


def _integer(name: str, param: Param, key: str | None, value: Any) -> int:
    if key is None and isinstance(value, str) and value.isdigit():
        return int(value)
    if key in ("valueInteger", "valuePositiveInt", "valueUnsignedInt") \
            and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidRequest(f"'{name}' must be a whole number", expression=name)


def _string(name: str, param: Param, key: str | None, value: Any) -> str:
    if key in (None, "valueString") and isinstance(value, str) and value.strip():
        return value.strip()
    raise InvalidRequest(f"'{name}' must be a non-empty string", expression=name)


def _patient(name: str, param: Param, key: str | None, value: Any) -> str | None:
    """A Patient resource in the Parameters: its id names the patient; without one, nobody."""
    if key is not None or not isinstance(value, dict) or value.get("resourceType") != "Patient":
        raise InvalidRequest(f"'{name}' must be a Patient resource", expression=name)
    id_ = value.get("id")
    return None if id_ is None else local_reference(str(id_), "Patient", name)


def _concept(name: str, param: Param, key: str | None, value: Any) -> dict[str, Any]:
    """A reason as a CodeableConcept: given as one, as a Coding, or as text."""
    if key == "valueCodeableConcept" and isinstance(value, dict):
        return value
    if key == "valueCoding" and isinstance(value, dict):
        return {"coding": [value]}
    if key in (None, "valueString") and isinstance(value, str) and value.strip():
        system, bar, code = value.rpartition("|")
        if bar and key is None:
            return {"coding": [{"system": system, "code": code} if system else {"code": code}]}
        return {"text": value.strip()}
    raise InvalidRequest(f"'{name}' must be a CodeableConcept, Coding or text", expression=name)


_CONVERTERS = {
    "instant": _instant, "codes": _codes, "reference": _reference, "integer": _integer,
    "string": _string, "patient": _patient, "concept": _concept,
}
