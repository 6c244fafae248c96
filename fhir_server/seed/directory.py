"""The demo clinic's directory: organization, places, device, services, staff, patients.

Pure factories with fixed, readable ids; `demo.py` adds the schedules, slots and bookings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

CLINIC_TZ = ZoneInfo("America/New_York")
ORG_ID = "riverside-clinic"
BUILDING_ID = "riverside-main-building"
SLOT_MINUTES = 30
OPENING, CLOSING = time(9), time(17)
LUNCH = (time(12), time(13))
WORKING_BLOCKS = ((OPENING, LUNCH[0]), (LUNCH[1], CLOSING))
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
PLANNING_DAYS = 28
UCUM = "http://unitsofmeasure.org"

SNOMED = "http://snomed.info/sct"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
CLINIC_DOMAIN = "riverside-clinic.example.org"
MRN_SYSTEM = f"http://{CLINIC_DOMAIN}/fhir/sid/mrn"
# Where each Schedule says which wall clock its hours are in (IANA zone).
TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
PHYSICAL_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/location-physical-type"

FAMILY_PRACTICE = (SNOMED, "419772000", "Family practice")
CARDIOLOGY = (SNOMED, "394579002", "Cardiology")
DERMATOLOGY = (SNOMED, "394582007", "Dermatology")
CONSULTATION = (SNOMED, "11429006", "Consultation")
ECG_PROCEDURE = (SNOMED, "29303009", "Electrocardiographic procedure")
SERVICE_TYPES = {"general-consultation": CONSULTATION, "ecg-testing": ECG_PROCEDURE}


@dataclass(frozen=True)
class StaffMember:
    """One practitioner and the role, service and room they work in."""

    id: str
    given: str
    family: str
    gender: str
    npi: str
    specialty: tuple[str, str, str]
    service_id: str
    room_id: str
    phone: str

    @property
    def display(self) -> str:
        return f"Dr. {self.given} {self.family}"


STAFF = (
    StaffMember("dr-amara-okafor", "Amara", "Okafor", "female", "1345789022",
                FAMILY_PRACTICE, "general-consultation", "exam-room-1", "+1-617-555-0111"),
    StaffMember("dr-daniel-reyes", "Daniel", "Reyes", "male", "1524680315",
                CARDIOLOGY, "ecg-testing", "ecg-room", "+1-617-555-0112"),
    StaffMember("dr-mei-lin-chen", "Mei-Lin", "Chen", "female", "1987352642",
                DERMATOLOGY, "general-consultation", "exam-room-1", "+1-617-555-0113"),
)

def ref(resource_type: str, resource_id: str, display: str | None = None) -> dict:
    out = {"reference": f"{resource_type}/{resource_id}"}
    return out | {"display": display} if display else out


def concept(code: tuple[str, str, str]) -> dict:
    system, value, display = code
    return {"coding": [{"system": system, "code": value, "display": display}], "text": display}


def contact_points(phone: str, email: str) -> list[dict]:
    return [
        {"system": "phone", "value": phone, "use": "work"},
        {"system": "email", "value": email, "use": "work"},
    ]


def clinic_address() -> dict:
    return {
        "use": "work", "type": "both", "line": ["250 Riverside Avenue", "Suite 200"],
        "city": "Boston", "state": "MA", "postalCode": "02114", "country": "US",
    }


def instant(day: date, at: time) -> str:
    """A clinic wall-clock time on `day` as a UTC FHIR instant."""
    local = datetime.combine(day, at, tzinfo=CLINIC_TZ)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def working_hours() -> list[dict]:
    """Weekday availability as two blocks, so the lunch break is simply not available."""
    return [
        {"daysOfWeek": WEEKDAYS, "availableStartTime": f"{start}", "availableEndTime": f"{end}"}
        for start, end in WORKING_BLOCKS
    ]


def make_organization() -> dict:
    return {
        "resourceType": "Organization",
        "id": ORG_ID,
        "active": True,
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type",
                              "code": "prov", "display": "Healthcare Provider"}]}],
        "name": "Riverside Family & Specialty Clinic",
        "alias": ["Riverside Clinic"],
        "telecom": contact_points("+1-617-555-0100", f"frontdesk@{CLINIC_DOMAIN}"),
        "address": [clinic_address()],
    }


def make_location(location_id: str, name: str, physical_type: tuple[str, str],
                  description: str, part_of: str | None = None) -> dict:
    """A building (with the address) or a room inside it (with opening hours)."""
    location = {
        "resourceType": "Location",
        "id": location_id,
        "status": "active",
        "name": name,
        "description": description,
        "mode": "instance",
        "physicalType": concept((PHYSICAL_TYPE_SYSTEM, *physical_type)),
        "managingOrganization": ref("Organization", ORG_ID),
    }
    if part_of is None:
        return location | {"address": clinic_address()}
    return location | {
        "partOf": ref("Location", part_of),
        "hoursOfOperation": [
            {"daysOfWeek": WEEKDAYS, "openingTime": "08:30:00", "closingTime": "17:30:00"}
        ],
    }


def make_device() -> dict:
    return {
        "resourceType": "Device",
        "id": "ecg-machine-1",
        "identifier": [{"system": f"http://{CLINIC_DOMAIN}/fhir/sid/asset-tag",
                        "value": "RC-ECG-0001"}],
        "status": "active",
        "manufacturer": "CardioTrace Medical",
        "modelNumber": "CT-12",
        "serialNumber": "CT12-2023-00417",
        "deviceName": [{"name": "12-lead ECG machine", "type": "user-friendly-name"}],
        "type": concept((SNOMED, "86184003", "Electrocardiographic monitor and recorder")),
        "owner": ref("Organization", ORG_ID),
        "location": ref("Location", "ecg-room"),
    }


def make_healthcare_service(service_id: str, name: str, service_type: tuple, specialties: list,
                            room_id: str, comment: str) -> dict:
    return {
        "resourceType": "HealthcareService",
        "id": service_id,
        "active": True,
        "providedBy": ref("Organization", ORG_ID),
        "type": [concept(service_type)],
        "specialty": [concept(code) for code in specialties],
        "location": [ref("Location", room_id)],
        "name": name,
        "comment": comment,
        "telecom": contact_points("+1-617-555-0100", f"appointments@{CLINIC_DOMAIN}"),
        "appointmentRequired": True,
        "availableTime": working_hours(),
        "availabilityExceptions": "Closed on US federal holidays.",
    }


def make_practitioner(staff: StaffMember) -> dict:
    return {
        "resourceType": "Practitioner",
        "id": staff.id,
        "identifier": [{"use": "official", "system": NPI_SYSTEM, "value": staff.npi}],
        "active": True,
        "name": [{"use": "official", "family": staff.family, "given": [staff.given],
                  "prefix": ["Dr."], "suffix": ["MD"]}],
        "telecom": contact_points(
            staff.phone, f"{staff.given.lower()}.{staff.family.lower()}@{CLINIC_DOMAIN}"
        ),
        "gender": staff.gender,
    }


@dataclass(frozen=True)
class OfficeMember:
    """A non-clinical colleague who signs in (front desk, administration): a Practitioner
    record so audit trails name the person, with a role but no schedule."""

    id: str
    given: str
    family: str
    occupation: tuple[str, str, str]


RECEPTIONIST = (SNOMED, "159561009", "Receptionist")
HEALTH_ADMINISTRATOR = (SNOMED, "224608005", "Administrative healthcare staff")
OFFICE = (
    OfficeMember("sam-rivera", "Sam", "Rivera", RECEPTIONIST),
    OfficeMember("jordan-blake", "Jordan", "Blake", HEALTH_ADMINISTRATOR),
)


def make_office_practitioner(member: OfficeMember) -> dict:
    return {
        "resourceType": "Practitioner",
        "id": member.id,
        "active": True,
        "name": [{"use": "official", "family": member.family, "given": [member.given]}],
        "telecom": [{"system": "email", "use": "work",
                     "value": f"{member.given.lower()}.{member.family.lower()}@{CLINIC_DOMAIN}"}],
    }


def make_office_role(member: OfficeMember) -> dict:
    return {
        "resourceType": "PractitionerRole",
        "id": f"role-{member.id}",
        "active": True,
        "practitioner": ref("Practitioner", member.id, f"{member.given} {member.family}"),
        "organization": ref("Organization", ORG_ID),
        "code": [concept(member.occupation)],
    }


def role_id(staff: StaffMember) -> str:
    return f"role-{staff.id}"


def make_practitioner_role(staff: StaffMember) -> dict:
    return {
        "resourceType": "PractitionerRole",
        "id": role_id(staff),
        "active": True,
        "practitioner": ref("Practitioner", staff.id, staff.display),
        "organization": ref("Organization", ORG_ID),
        "code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
                              "code": "doctor", "display": "Doctor"}]}],
        "specialty": [concept(staff.specialty)],
        "location": [ref("Location", staff.room_id)],
        "healthcareService": [ref("HealthcareService", staff.service_id)],
        "telecom": [{"system": "phone", "value": staff.phone, "use": "work"}],
        "availableTime": working_hours(),
        "availabilityExceptions": "Lunch 12:00-13:00; not available on US federal holidays.",
    }


# id, MRN, given, family, gender, birth date, preferred language (BCP-47), phone, street
PATIENTS = (
    ("maria-garcia", "RC-100001", "María", "García", "female", "1984-07-12", "es",
     "+1-617-555-0141", "18 Tremont Street, Apt 3"),
    ("james-wilson", "RC-100002", "James", "Wilson", "male", "1957-02-03", "en",
     "+1-617-555-0142", "402 Columbus Avenue"),
    ("aisha-khan", "RC-100003", "Aisha", "Khan", "female", "1995-11-28", "en",
     "+1-617-555-0143", "77 Dartmouth Street"),
    ("luis-hernandez", "RC-100004", "Luis", "Hernández", "male", "2012-05-19", "es",
     "+1-617-555-0144", "9 Union Park Street"),
)
LANGUAGES = {"en": "English", "es": "Spanish"}


def make_patient(patient_id: str, mrn: str, given: str, family: str, gender: str,
                 birth_date: str, language: str, phone: str, street: str) -> dict:
    mrn_type = {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                "display": "Medical record number"}
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"use": "usual", "type": {"coding": [mrn_type]}, "system": MRN_SYSTEM,
                        "value": mrn}],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": [
            {"system": "phone", "value": phone, "use": "mobile", "rank": 1},
            {"system": "email", "value": f"{patient_id.replace('-', '.')}@example.com",
             "use": "home", "rank": 2},
        ],
        "gender": gender,
        "birthDate": birth_date,
        "address": [{"use": "home", "line": [street], "city": "Boston", "state": "MA",
                     "postalCode": "02118", "country": "US"}],
        "communication": [{
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language,
                                     "display": LANGUAGES[language]}]},
            "preferred": True,
        }],
        "managingOrganization": ref("Organization", ORG_ID),
    }
