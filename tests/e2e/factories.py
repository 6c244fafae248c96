"""Small valid resources to POST or PUT, one factory per shape a test needs."""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]

TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
START = "2030-03-11T14:00:00Z"
END = "2030-03-11T14:30:00Z"


def make_patient(family: str = "Okafor", **overrides: Any) -> Resource:
    """A patient with one official name."""
    return {"resourceType": "Patient", "active": True, "gender": "female",
            "name": [{"use": "official", "family": family, "given": ["Amara"]}],
            "birthDate": "1984-07-12", **overrides}


def make_practitioner(family: str = "Reyes", **overrides: Any) -> Resource:
    """A practitioner with one name."""
    return {"resourceType": "Practitioner", "active": True,
            "name": [{"family": family, "prefix": ["Dr."]}], **overrides}


def make_schedule(actor: str = "Practitioner/p1", **overrides: Any) -> Resource:
    """An active schedule of one actor, with an IANA time zone."""
    return {"resourceType": "Schedule", "active": True, "actor": [{"reference": actor}],
            "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": "America/New_York"}],
            **overrides}


def make_slot(schedule_id: str = "s1", start: str = START, end: str = END,
              status: str = "free", **overrides: Any) -> Resource:
    """A slot of `Schedule/<schedule_id>`."""
    return {"resourceType": "Slot", "schedule": {"reference": f"Schedule/{schedule_id}"},
            "status": status, "start": start, "end": end, **overrides}


def make_appointment(patient: str = "Patient/pat1", practitioner: str = "Practitioner/p1",
                     start: str = START, end: str = END, status: str = "booked",
                     **overrides: Any) -> Resource:
    """An appointment of a patient with a practitioner, both accepted."""
    return {"resourceType": "Appointment", "status": status, "start": start, "end": end,
            "participant": [
                {"actor": {"reference": patient}, "required": "required", "status": "accepted"},
                {"actor": {"reference": practitioner}, "status": "accepted"},
            ], **overrides}


def make_appointment_response(appointment: str = "Appointment/a1",
                              actor: str = "Patient/pat1",
                              participant_status: str = "accepted") -> Resource:
    """A participant's answer to an appointment."""
    return {"resourceType": "AppointmentResponse", "appointment": {"reference": appointment},
            "actor": {"reference": actor}, "participantStatus": participant_status}


def make_practitioner_role(practitioner: str = "Practitioner/p1") -> Resource:
    return {"resourceType": "PractitionerRole", "active": True,
            "practitioner": {"reference": practitioner}}


def make_location(name: str = "Exam room 1") -> Resource:
    return {"resourceType": "Location", "status": "active", "mode": "instance", "name": name}


def make_device(name: str = "ECG machine") -> Resource:
    return {"resourceType": "Device", "status": "active",
            "deviceName": [{"name": name, "type": "user-friendly-name"}]}


def make_healthcare_service(name: str = "Cardiology clinic") -> Resource:
    return {"resourceType": "HealthcareService", "active": True, "name": name}


def make_organization(name: str = "Riverside Clinic") -> Resource:
    return {"resourceType": "Organization", "active": True, "name": name}


def make_communication(patient: str = "Patient/pat1") -> Resource:
    return {"resourceType": "Communication", "status": "completed",
            "subject": {"reference": patient}, "sent": "2030-03-10T10:00:00Z",
            "payload": [{"contentString": "See you tomorrow"}]}


def make_communication_request(patient: str = "Patient/pat1") -> Resource:
    return {"resourceType": "CommunicationRequest", "status": "active",
            "subject": {"reference": patient}, "occurrenceDateTime": "2030-03-10T10:00:00Z",
            "payload": [{"contentString": "Reminder: appointment tomorrow"}]}


MINIMAL_FACTORIES = {
    "Schedule": make_schedule,
    "Slot": make_slot,
    "Appointment": make_appointment,
    "AppointmentResponse": make_appointment_response,
    "Patient": make_patient,
    "Practitioner": make_practitioner,
    "PractitionerRole": make_practitioner_role,
    "Location": make_location,
    "Device": make_device,
    "HealthcareService": make_healthcare_service,
    "Organization": make_organization,
    "Communication": make_communication,
    "CommunicationRequest": make_communication_request,
}


def make_minimal(resource_type: str) -> Resource:
    """A valid minimal resource of `resource_type`."""
    return MINIMAL_FACTORIES[resource_type]()
