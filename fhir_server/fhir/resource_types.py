"""The resource types this server stores and serves."""

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

SUPPORTED_TYPES: Final[tuple[str, ...]] = SCHEDULING_TYPES + SUPPORTING_TYPES


def is_supported(resource_type: str) -> bool:
    """True when the server has a REST endpoint for `resource_type`."""
    return resource_type in SUPPORTED_TYPES
