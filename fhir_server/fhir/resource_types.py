"""The resource types this server stores and serves, and what the API may do with each."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

SCHEDULING_TYPES: Final = ("Schedule", "Slot", "Appointment", "AppointmentResponse")

SUPPORTING_TYPES: Final = (
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Device",
    "HealthcareService",
    "Organization",
    "Communication",
    "CommunicationRequest",
)

# Written by the server alone (the audit trail); the API only reads and searches them.
SERVER_WRITTEN_TYPES: Final = ("AuditEvent",)

CLIENT_WRITTEN_TYPES: Final[tuple[str, ...]] = SCHEDULING_TYPES + SUPPORTING_TYPES
SUPPORTED_TYPES: Final[tuple[str, ...]] = CLIENT_WRITTEN_TYPES + SERVER_WRITTEN_TYPES

TYPE_INTERACTIONS: Final = ("create", "read", "vread", "update", "patch", "delete",
                            "history-instance", "history-type", "search-type")
# The audit trail is an append-only log, not versioned resources: read and search only.
LOG_INTERACTIONS: Final = ("read", "search-type")
INTERACTIONS_BY_TYPE: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    resource_type: (LOG_INTERACTIONS if resource_type in SERVER_WRITTEN_TYPES
                    else TYPE_INTERACTIONS)
    for resource_type in SUPPORTED_TYPES})

# Types searched by something narrower than the resource index, with the parameters it
# supports (all others support every registered parameter).
SEARCH_PARAMS_BY_TYPE: Final[Mapping[str, frozenset[str]]] = MappingProxyType({
    "AuditEvent": frozenset({"_id", "_lastUpdated", "date", "type", "subtype", "action",
                             "outcome", "entity", "patient", "agent", "agent-name"}),
})


def is_supported(resource_type: str) -> bool:
    """True when the server has a REST endpoint for `resource_type`."""
    return resource_type in SUPPORTED_TYPES


def is_searchable(resource_type: str, code: str) -> bool:
    """False when `resource_type`'s search does not support the registered parameter `code`."""
    limited = SEARCH_PARAMS_BY_TYPE.get(resource_type)
    return limited is None or code in limited


def supports_interaction(resource_type: str, interaction: str) -> bool:
    """True unless `resource_type` is served but `interaction` is not offered on it."""
    allowed = INTERACTIONS_BY_TYPE.get(resource_type)
    return allowed is None or interaction in allowed
