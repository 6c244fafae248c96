"""Small valid resources of every served type, to be broken one element at a time in tests."""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]


def make_appointment(**overrides: Any) -> Resource:
    """A booked half-hour appointment for a patient with a practitioner in a room."""
    resource: Resource = {
        "resourceType": "Appointment",
        "id": "appt-1",
        "meta": {"versionId": "3", "lastUpdated": "2025-03-01T09:00:00Z"},
        "status": "booked",
        "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": "394814009"}]}],
        "start": "2025-03-10T10:00:00Z",
        "end": "2025-03-10T10:30:00Z",
        "minutesDuration": 30,
        "slot": [{"reference": "Slot/slot-1"}],
        "participant": [
            {"actor": {"reference": "Patient/p1", "display": "Ada"}, "required": "required",
             "status": "accepted"},
            {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"},
            {"actor": {"reference": "Location/room-4"}, "status": "accepted"},
        ],
    }
    return {**resource, **overrides}


def make_slot(**overrides: Any) -> Resource:
    """A free slot of schedule `sched-1`."""
    resource: Resource = {
        "resourceType": "Slot", "id": "slot-1", "schedule": {"reference": "Schedule/sched-1"},
        "status": "free", "start": "2025-03-10T10:00:00Z", "end": "2025-03-10T10:30:00Z",
    }
    return {**resource, **overrides}


def make_schedule(**overrides: Any) -> Resource:
    """A practitioner's schedule with an IANA time zone extension."""
    resource: Resource = {
        "resourceType": "Schedule", "id": "sched-1", "active": True,
        "actor": [{"reference": "Practitioner/d1"}],
        "planningHorizon": {"start": "2025-03-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"},
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/timezone",
                       "valueCode": "America/New_York"}],
    }
    return {**resource, **overrides}


VALID_RESOURCES: dict[str, Resource] = {
    "Appointment": make_appointment(),
    "Slot": make_slot(),
    "Schedule": make_schedule(),
    "AppointmentResponse": {
        "resourceType": "AppointmentResponse", "appointment": {"reference": "Appointment/appt-1"},
        "actor": {"reference": "Patient/p1"}, "participantStatus": "accepted",
    },
    "Patient": {
        "resourceType": "Patient", "id": "p1", "active": True, "gender": "female",
        "name": [{"family": "Lovelace", "given": ["Ada"]}], "birthDate": "1815-12-10",
        "telecom": [{"system": "phone", "value": "+1 555 0100", "use": "mobile"}],
        "contact": [{"name": {"text": "Byron"}, "gender": "male"}],
        "managingOrganization": {"reference": "Organization/org-1"},
    },
    "Practitioner": {
        "resourceType": "Practitioner", "id": "d1", "gender": "male",
        "name": [{"family": "Snow", "prefix": ["Dr"]}],
    },
    "PractitionerRole": {
        "resourceType": "PractitionerRole", "practitioner": {"reference": "Practitioner/d1"},
        "organization": {"reference": "Organization/org-1"},
        "location": [{"reference": "Location/room-4"}],
        "availableTime": [{"daysOfWeek": ["mon", "tue"], "availableStartTime": "09:00:00",
                           "availableEndTime": "17:00:00"}],
    },
    "Location": {
        "resourceType": "Location", "status": "active", "mode": "instance", "name": "Room 4",
        "managingOrganization": {"reference": "Organization/org-1"},
        "hoursOfOperation": [{"daysOfWeek": ["wed"], "allDay": True}],
    },
    "Device": {
        "resourceType": "Device", "status": "active",
        "deviceName": [{"name": "Ultrasound 2", "type": "user-friendly-name"}],
        "location": {"reference": "Location/room-4"},
    },
    "HealthcareService": {
        "resourceType": "HealthcareService", "active": True, "name": "Cardiology clinic",
        "providedBy": {"reference": "Organization/org-1"},
        "availableTime": [{"daysOfWeek": ["fri"], "availableStartTime": "08:00:00"}],
    },
    "Organization": {
        "resourceType": "Organization", "id": "org-1", "name": "Good Health Clinic",
        "telecom": [{"system": "phone", "value": "+1 555 0199", "use": "work"}],
    },
    "Communication": {
        "resourceType": "Communication", "status": "completed", "priority": "routine",
        "basedOn": [{"reference": "CommunicationRequest/cr-1"}],
        "subject": {"reference": "Patient/p1"}, "recipient": [{"reference": "Patient/p1"}],
        "sent": "2025-03-09T10:00:00Z", "payload": [{"contentString": "See you tomorrow"}],
    },
    "CommunicationRequest": {
        "resourceType": "CommunicationRequest", "status": "active", "priority": "routine",
        "subject": {"reference": "Patient/p1"}, "recipient": [{"reference": "Patient/p1"}],
        "about": [{"reference": "Appointment/appt-1"}],
        "occurrenceDateTime": "2025-03-09T10:00:00Z",
        "payload": [{"contentString": "Reminder: appointment tomorrow at 10:00"}],
    },
}
