"""The conformance resources the server serves from `capability/` and `profiles/`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

CONFORMANCE_TYPES = ("SearchParameter", "OperationDefinition", "StructureDefinition",
                     "SubscriptionTopic")


@dataclass(frozen=True, slots=True)
class ConformanceResources:
    """CapabilityStatement template plus definitional resources, keyed by type and id."""

    capability_template: dict[str, Any]
    by_type: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def get(self, resource_type: str, id: str) -> dict[str, Any] | None:
        """One definitional resource, or None."""
        return self.by_type.get(resource_type, {}).get(id)

    def all_of(self, resource_type: str) -> Iterator[dict[str, Any]]:
        """Every definitional resource of a type, in id order."""
        for id in sorted(self.by_type.get(resource_type, {})):
            yield self.by_type[resource_type][id]


def load_conformance(capability_dir: Path, profiles_dir: Path) -> ConformanceResources:
    """Read every JSON resource in both folders; a file that is not a resource is an error."""
    template: dict[str, Any] | None = None
    by_type: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in (capability_dir, profiles_dir):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            resource = orjson.loads(path.read_bytes())
            kind = resource.get("resourceType")
            if kind == "CapabilityStatement":
                template = resource
            elif kind in CONFORMANCE_TYPES and resource.get("id"):
                by_type.setdefault(kind, {})[resource["id"]] = resource
            else:
                raise ValueError(f"{path}: not a conformance resource with an id")
    if template is None:
        raise ValueError(f"{capability_dir}: no CapabilityStatement template")
    return ConformanceResources(template, by_type)
