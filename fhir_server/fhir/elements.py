"""`_elements` and `_summary=data`: return part of a resource, marked as SUBSETTED."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED", "display": "subsetted"}
ALWAYS_KEPT = ("resourceType", "id", "meta")


def _mark_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    resource["meta"] = meta
    return resource


def keep_elements(resource: dict[str, Any], elements: Iterable[str]) -> dict[str, Any]:
    """Only the named top-level elements, plus the mandatory ones."""
    wanted = set(elements) | set(ALWAYS_KEPT)
    return _mark_subsetted({k: v for k, v in resource.items() if k in wanted})


def without_text(resource: dict[str, Any]) -> dict[str, Any]:
    """`_summary=data`: everything but the narrative."""
    return _mark_subsetted({k: v for k, v in resource.items() if k != "text"})
