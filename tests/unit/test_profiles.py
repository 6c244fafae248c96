"""Our StructureDefinitions: every profile is a valid R4 extension definition, every extension
URL the server uses has one, and the extensions the code writes have the shape they define."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.structuredefinition import StructureDefinition

from fhir_server.scheduling.slot_hold import (
    OVERBOOKING_URL,
    REPLACES_URL,
    SLOT_HOLD_URL,
    hold_extension,
    with_overbooking_reason,
    with_replaces,
)

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted((ROOT / "profiles").glob("*.json"))
OUR_URL = re.compile(r"http://fhir-scheduler\.org/fhir/StructureDefinition/[A-Za-z0-9\-.]+")


def load(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(path.read_text())
    return raw


def profiles_by_url() -> dict[str, dict[str, Any]]:
    return {raw["url"]: raw for raw in map(load, PROFILES)}


def urls_used_in_code() -> set[str]:
    return {url for source in (ROOT / "fhir_server").rglob("*.py")
            for url in OUR_URL.findall(source.read_text())}


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_profile_is_a_valid_extension_definition(path: Path) -> None:
    raw = load(path)
    definition = StructureDefinition.model_validate(raw)

    assert path.name == f"StructureDefinition-{definition.id}.json"
    assert definition.url == f"http://fhir-scheduler.org/fhir/StructureDefinition/{definition.id}"
    assert (definition.kind, definition.type, definition.derivation, definition.fhirVersion) == (
        "complex-type", "Extension", "constraint", "4.0.1")
    assert definition.baseDefinition == "http://hl7.org/fhir/StructureDefinition/Extension"
    assert definition.status == "active" and definition.context
    url = next(e for e in raw["differential"]["element"] if e["id"] == "Extension.url")
    assert url["fixedUri"] == definition.url


def test_every_extension_url_the_server_uses_is_defined() -> None:
    used = urls_used_in_code()

    assert {SLOT_HOLD_URL, OVERBOOKING_URL, REPLACES_URL} <= used  # the scan sees constants
    assert sorted(used - set(profiles_by_url())) == []


def shape(profile: dict[str, Any]) -> dict[str, str]:
    """What an instance may carry: sub-extension name ("" for the extension's own value) → the
    JSON key of its value, from the profiled type (`Reference` → `valueReference`)."""
    found = {}
    for element in profile["differential"]["element"]:
        id, types = element["id"], element.get("type", [])
        if id == "Extension.value[x]" and types:
            found[""] = value_key(types[0]["code"])
        elif id.startswith("Extension.extension:") and id.endswith(".value[x]") \
                and id.count(":") == 1 and types:
            found[id.split(":")[1].removesuffix(".value[x]")] = value_key(types[0]["code"])
    return found


def value_key(code: str) -> str:
    return f"value{code[0].upper()}{code[1:]}"


def carried(extension: dict[str, Any]) -> dict[str, str]:
    """The same view of an extension instance: name → the JSON key of its value."""
    def key(element: dict[str, Any]) -> str:
        [found] = [k for k in element if k.startswith("value")]
        return found

    if "extension" in extension:
        return {part["url"]: key(part) for part in extension["extension"]}
    return {"": key(extension)}


@pytest.mark.parametrize("extension", [
    hold_extension("a1", datetime(2030, 3, 4, 9, tzinfo=UTC)),
    with_overbooking_reason({"resourceType": "Appointment"}, "urgent")["extension"][0],
    with_replaces({"resourceType": "Appointment"}, "a0")["extension"][0],
], ids=["slot-hold", "overbooking", "replaces"])
def test_the_extensions_the_code_writes_have_the_profiled_shape(
        extension: dict[str, Any]) -> None:
    profile = profiles_by_url()[extension["url"]]

    assert carried(extension) == shape(profile)
