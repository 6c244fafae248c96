"""Read an operation's `Parameters` resource by name, with FHIR type checks.

Pure: no HTTP, no store. Every complaint is an `InvalidRequest` (400) whose `expression`
names the offending parameter (`Parameters.parameter.where(name='hold-duration')`), so a
client sees which input to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.ids import FHIR_ID

_DATE = r"\d{4}(-\d{2}(-\d{2})?)?"
_TIME = r"\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"
_DATE_TIME = re.compile(rf"{_DATE}(T{_TIME})?")
_INSTANT = re.compile(rf"\d{{4}}-\d{{2}}-\d{{2}}T{_TIME}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _matches(pattern: re.Pattern[str]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and pattern.fullmatch(value) is not None


VALUE_CHECKS: Mapping[str, Callable[[object], bool]] = {
    "string": _is_text,
    "code": _is_text,
    "uri": _is_text,
    "url": _is_text,
    "canonical": _is_text,
    "markdown": _is_text,
    "id": _matches(FHIR_ID),
    "boolean": lambda value: isinstance(value, bool),
    "integer": _is_int,
    "positiveInt": lambda value: _is_int(value) and value > 0,  # type: ignore[operator]
    "unsignedInt": lambda value: _is_int(value) and value >= 0,  # type: ignore[operator]
    "decimal": lambda value: _is_int(value) or isinstance(value, float),
    "date": _matches(re.compile(_DATE)),
    "dateTime": _matches(_DATE_TIME),
    "instant": _matches(_INSTANT),
    "Reference": lambda value: isinstance(value, dict) and (
        _is_text(value.get("reference")) or isinstance(value.get("identifier"), dict)),
}
"""The FHIR types a value[x] may be read as, with the JSON shape each must have."""


def parameter_expression(name: str) -> str:
    """The FHIRPath that points a client at parameter `name`."""
    return f"Parameters.parameter.where(name='{name}')"


@dataclass(frozen=True, slots=True)
class Parameters:
    """The top-level parts of a `Parameters` resource, read by name."""

    parts: tuple[dict[str, Any], ...]

    @classmethod
    def parse(cls, body: object) -> Parameters:
        """Check the resource's shape: a Parameters with named parts, each carrying one thing."""
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise InvalidRequest("The operation takes a Parameters resource",
                                 expression="Parameters")
        parts = body.get("parameter", [])
        if not isinstance(parts, list):
            raise InvalidRequest("Parameters.parameter must be an array",
                                 expression="Parameters.parameter")
        for index, part in enumerate(parts):
            _check_part(part, f"Parameters.parameter[{index}]")
        return cls(tuple(parts))

    def names(self) -> set[str]:
        """Every parameter name present."""
        return {part["name"] for part in self.parts}

    def has(self, name: str) -> bool:
        """Whether at least one part is called `name`."""
        return any(part["name"] == name for part in self.parts)

    def refuse_unknown(self, known: Iterable[str]) -> None:
        """Refuse parameters the operation does not define, rather than silently ignore them."""
        unknown = sorted(self.names() - set(known))
        if unknown:
            raise InvalidRequest(f"Unknown parameter '{unknown[0]}'; this operation takes "
                                 f"{', '.join(sorted(known))}",
                                 expression=parameter_expression(unknown[0]),
                                 code="not-supported")

    def values(self, name: str, value_type: str) -> list[Any]:
        """Every `value<value_type>` of the parts called `name`, in order."""
        check = VALUE_CHECKS.get(value_type)
        if check is None:
            raise ValueError(f"no check for FHIR type {value_type}")
        found = []
        for part in self._named(name):
            key = f"value{value_type[0].upper()}{value_type[1:]}"
            if key not in part or not check(part[key]):
                raise InvalidRequest(f"Parameter '{name}' must be a valid {value_type} "
                                     f"({key})", expression=parameter_expression(name))
            found.append(part[key])
        return found

    def value(self, name: str, value_type: str, *, required: bool = False) -> Any:
        """The one `value<value_type>` called `name`, or None when absent and optional."""
        return _at_most_one(name, self.values(name, value_type), required=required)

    def resources(self, name: str, resource_type: str | None = None) -> list[dict[str, Any]]:
        """Every `resource` of the parts called `name`, checked to be of `resource_type`."""
        found = []
        for part in self._named(name):
            resource = part.get("resource")
            if not isinstance(resource, dict):
                raise InvalidRequest(f"Parameter '{name}' must carry a resource",
                                     expression=parameter_expression(name))
            if resource_type is not None and resource.get("resourceType") != resource_type:
                raise InvalidRequest(f"Parameter '{name}' must be a {resource_type}, not "
                                     f"{resource.get('resourceType')}",
                                     expression=parameter_expression(name))
            found.append(resource)
        return found

    def resource(self, name: str, resource_type: str | None = None, *,
                 required: bool = False) -> dict[str, Any] | None:
        """The one `resource` called `name`, or None when absent and optional."""
        found: dict[str, Any] | None = _at_most_one(
            name, self.resources(name, resource_type), required=required)
        return found

    def reference_id(self, name: str, resource_type: str, *, base_url: str | None = None,
                     required: bool = False) -> str | None:
        """The id the one reference named `name` points at (see `reference_ids`)."""
        found: str | None = _at_most_one(
            name, self.reference_ids(name, resource_type, base_url=base_url), required=required)
        return found

    def reference_ids(self, name: str, resource_type: str, *,
                      base_url: str | None = None) -> list[str]:
        """The ids the parts named `name` point at: `valueReference`, `valueUri` or `valueId`.

        Accepts `Type/id`, `Type/id/_history/n` and, with `base_url`, an absolute URL on this
        server; a reference to another type or another server is refused.
        """
        ids = []
        for part in self._named(name):
            if "valueId" in part:
                value = part["valueId"]
                if not VALUE_CHECKS["id"](value):
                    raise InvalidRequest(f"Parameter '{name}' must be a valid id",
                                         expression=parameter_expression(name))
                ids.append(str(value))
                continue
            if "valueReference" in part and VALUE_CHECKS["Reference"](part["valueReference"]):
                text = part["valueReference"].get("reference")
            else:
                text = part.get("valueUri")
            if not isinstance(text, str):
                raise InvalidRequest(f"Parameter '{name}' must be a reference to a "
                                     f"{resource_type}", expression=parameter_expression(name))
            ids.append(_local_id(text, name, resource_type, base_url))
        return ids

    def _named(self, name: str) -> list[dict[str, Any]]:
        return [part for part in self.parts if part["name"] == name]


def _check_part(part: object, expression: str) -> None:
    if not isinstance(part, dict) or not _is_text(part.get("name")):
        raise InvalidRequest("Each parameter needs a name", expression=f"{expression}.name")
    carried = [key for key in part if key.startswith("value") or key in ("resource", "part")]
    if len(carried) > 1:
        raise InvalidRequest(f"Parameter '{part['name']}' carries more than one of value[x], "
                             f"resource and part", expression=parameter_expression(part["name"]))


def _at_most_one(name: str, found: list[Any], *, required: bool) -> Any:
    if len(found) > 1:
        raise InvalidRequest(f"Parameter '{name}' may appear only once",
                             expression=parameter_expression(name))
    if not found:
        if required:
            raise InvalidRequest(f"Parameter '{name}' is required",
                                 expression=parameter_expression(name), code="required")
        return None
    return found[0]


def _local_id(text: str, name: str, resource_type: str, base_url: str | None) -> str:
    relative = text
    if base_url and text.startswith(base_url.rstrip("/") + "/"):
        relative = text[len(base_url.rstrip("/")) + 1:]
    segments = relative.split("/")
    if len(segments) == 4 and segments[2] == "_history":
        segments = segments[:2]
    if len(segments) != 2 or segments[0] != resource_type or not FHIR_ID.fullmatch(segments[1]):
        raise InvalidRequest(f"Parameter '{name}' must reference a {resource_type} on this "
                             f"server as {resource_type}/<id>, not '{text}'",
                             expression=parameter_expression(name))
    return segments[1]
