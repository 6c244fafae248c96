"""Demo data for a small outpatient clinic: valid FHIR R4 resources with fixed, readable ids.

Pure: `today` is passed in and nothing is read or written, and the same `today` always yields
the same resources. Each Schedule carries the `schedule-availability` extension; its Slots are
what the scheduling engine plans from those rules over the planning horizon (seeding lets the
slot generation service write them), and the two demo Appointments book two of those slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fhir_server.scheduling.availability import AVAILABILITY_URL, plan_slots, rules_from_schedule
from fhir_server.scheduling.slot_plan import reconcile_slots

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

# Per-practitioner extras in their availability rules.
BUFFER_AFTER = {"dr-mei-lin-chen": 5}  # minutes of notes after each visit
EMERGENCY_RESERVE = {"dr-daniel-reyes": (time(16), time(17), 2)}  # start, end, release hours
DEVICE_SLOT_MINUTES = {ECG_PROCEDURE: 60}

# (patient id, staff index, working-day index, local start time): the two demo bookings.
# Working days count from tomorrow: slots are generated from now on, so today's may be past.
BOOKINGS = (
    ("maria-garcia", 0, 0, time(10)),
    ("james-wilson", 1, 1, time(14)),
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


def duration(value: int, unit: str = "min") -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _sub(url: str, **value: object) -> dict:
    return {"url": url, **value}


def _nested(url: str, *children: dict) -> dict:
    return {"url": url, "extension": list(children)}


def _days(days: list[str]) -> list[dict]:
    return [_sub("daysOfWeek", valueCode=day) for day in days]


def availability(*, service_minutes: dict | None = None, buffer_after: int = 0,
                 emergency: tuple[time, time, int] | None = None) -> dict:
    """The `schedule-availability` extension: clinic hours with a lunch break, 30-min slots,
    2 h minimum notice and a 60-day booking horizon, plus the given extras."""
    rules = [
        _sub("timeZone", valueCode=CLINIC_TZ.key),
        _nested("availableTime", *_days(WEEKDAYS),
                _sub("availableStartTime", valueTime=f"{OPENING}"),
                _sub("availableEndTime", valueTime=f"{CLOSING}")),
        _nested("break", *_days(WEEKDAYS), _sub("startTime", valueTime=f"{LUNCH[0]}"),
                _sub("endTime", valueTime=f"{LUNCH[1]}"), _sub("description", valueString="Lunch")),
        _nested("slotDuration", _sub("duration", valueDuration=duration(SLOT_MINUTES))),
    ]
    for code, minutes in (service_minutes or {}).items():
        rules.append(_nested("slotDuration",
                             _sub("serviceType", valueCodeableConcept=concept(code)),
                             _sub("duration", valueDuration=duration(minutes))))
    if buffer_after:
        rules.append(_sub("bufferAfter", valueDuration=duration(buffer_after)))
    if emergency:
        start, end, release_hours = emergency
        rules.append(_nested("emergencyReserve", *_days(WEEKDAYS),
                             _sub("startTime", valueTime=f"{start}"),
                             _sub("endTime", valueTime=f"{end}"),
                             _sub("releaseBefore", valueDuration=duration(release_hours, "h"))))
    rules += [_sub("minimumNotice", valueDuration=duration(2, "h")),
              _sub("bookingHorizon", valueDuration=duration(60, "d"))]
    return _nested(AVAILABILITY_URL, *rules)


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


def planning_horizon(today: date) -> dict:
    """From clinic-local midnight of `today` to the same time `PLANNING_DAYS` later, in UTC."""
    return {
        "start": instant(today, time(0)),
        "end": instant(today + timedelta(days=PLANNING_DAYS), time(0)),
    }


def make_schedule(schedule_id: str, actors: list[dict], today: date, comment: str,
                  rules: dict, specialty: tuple | None = None,
                  service_type: tuple | None = None) -> dict:
    """A Schedule with its availability rules; the R4 timezone extension is for other clients."""
    schedule = {
        "resourceType": "Schedule",
        "id": schedule_id,
        "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": CLINIC_TZ.key}, rules],
        "active": True,
        "actor": actors,
        "planningHorizon": planning_horizon(today),
        "comment": comment,
    }
    if service_type:
        schedule["serviceType"] = [concept(service_type)]
    if specialty:
        schedule["specialty"] = [concept(specialty)]
    return schedule


def practitioner_schedule(staff: StaffMember, today: date) -> dict:
    actors = [ref("Practitioner", staff.id), ref("PractitionerRole", role_id(staff))]
    rules = availability(buffer_after=BUFFER_AFTER.get(staff.id, 0),
                         emergency=EMERGENCY_RESERVE.get(staff.id))
    return make_schedule(f"schedule-{staff.id}", actors, today,
                         f"Clinic hours for {staff.display}", rules,
                         specialty=staff.specialty, service_type=SERVICE_TYPES[staff.service_id])


def working_days(today: date, count: int) -> list[date]:
    """The first `count` weekdays starting with `today` (today counts when it is a weekday)."""
    days, day = [], today
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def planned_slots(schedule: dict) -> list[dict]:
    """The free Slots the slot generator makes from the schedule's rules over its horizon."""
    rules = rules_from_schedule(schedule)
    assert rules is not None, schedule["id"]
    horizon = schedule["planningHorizon"]
    start, end = (datetime.fromisoformat(horizon[key].replace("Z", "+00:00"))
                  for key in ("start", "end"))
    codings = [(c["system"], c["code"]) for concept in schedule.get("serviceType", [])
               for c in concept["coding"]]
    plan = plan_slots(rules, start, end, service_codings=codings)
    return reconcile_slots(schedule["id"], plan, [], now=start, template=schedule).create


def booked_slot(slots: list[dict], schedule_id: str, day: date, at: time) -> dict:
    """The generated slot of `schedule_id` starting at local `at` on `day`."""
    start = instant(day, at)
    reference = f"Schedule/{schedule_id}"
    return next(slot for slot in slots
                if slot["schedule"]["reference"] == reference and slot["start"] == start)


def make_appointment(slot: dict, patient_id: str, staff: StaffMember, today: date) -> dict:
    def accepted(actor: dict) -> dict:
        return {"actor": actor, "required": "required", "status": "accepted"}

    return {
        "resourceType": "Appointment",
        "id": f"appt-{patient_id}-{slot['id'].removeprefix('schedule-')}",
        "status": "booked",
        "serviceType": slot["serviceType"],
        "specialty": slot["specialty"],
        "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                                        "code": "ROUTINE", "display": "Routine appointment"}]},
        "description": f"{slot['serviceType'][0]['text']} with {staff.display}",
        "start": slot["start"],
        "end": slot["end"],
        "minutesDuration": SLOT_MINUTES,  # the practitioners' slot length
        "slot": [ref("Slot", slot["id"])],
        "created": today.isoformat(),
        "participant": [
            accepted(ref("Patient", patient_id)),
            accepted(ref("Practitioner", staff.id, staff.display)),
            accepted(ref("Location", staff.room_id)),
        ],
    }


def make_facilities(today: date) -> list[dict]:
    """Organization, building, rooms, the ECG machine, services, and the room/device Schedules."""
    services = [
        make_healthcare_service(
            "general-consultation", "General consultation", CONSULTATION,
            [FAMILY_PRACTICE, DERMATOLOGY], "exam-room-1",
            "Please arrive 10 minutes early and bring your insurance card, a photo ID and a list "
            "of your current medications."),
        make_healthcare_service(
            "ecg-testing", "ECG testing", ECG_PROCEDURE, [CARDIOLOGY], "ecg-room",
            "Wear a loose two-piece outfit; avoid body lotion on the chest and caffeine or "
            "smoking for 2 hours before the test. Take your usual medications."),
    ]
    room_schedules = [
        make_schedule("schedule-exam-room-1", [ref("Location", "exam-room-1")], today,
                      "Exam room 1 bookings", availability()),
        make_schedule("schedule-ecg-room", [ref("Location", "ecg-room")], today,
                      "ECG room bookings", availability()),
        make_schedule("schedule-ecg-machine-1", [ref("Device", "ecg-machine-1")], today,
                      "ECG machine bookings", availability(service_minutes=DEVICE_SLOT_MINUTES),
                      service_type=ECG_PROCEDURE),
    ]
    return [
        make_organization(),
        make_location(BUILDING_ID, "Riverside Clinic main building", ("bu", "Building"),
                      "Three-storey outpatient building with step-free access"),
        make_location("exam-room-1", "Exam room 1", ("ro", "Room"),
                      "General examination room, ground floor", part_of=BUILDING_ID),
        make_location("ecg-room", "ECG room", ("ro", "Room"),
                      "Cardiac diagnostics room with an ECG couch, 2nd floor", part_of=BUILDING_ID),
        make_device(),
        *services,
        *room_schedules,
    ]


def demo_resources(today: date) -> list[dict]:
    """Every demo resource, each safe to `PUT` by its id: the Slots are those the rules plan
    over the four-week horizon, two of them busy with the demo Appointments."""
    facilities = make_facilities(today)
    schedules = [practitioner_schedule(staff, today) for staff in STAFF]
    all_schedules = schedules + [r for r in facilities if r["resourceType"] == "Schedule"]
    slots = [slot for schedule in all_schedules for slot in planned_slots(schedule)]
    days = working_days(today + timedelta(days=1), 1 + max(b[2] for b in BOOKINGS))
    appointments = []
    for patient_id, staff_index, day_index, at in BOOKINGS:
        slot = booked_slot(slots, schedules[staff_index]["id"], days[day_index], at)
        slot["status"] = "busy"
        appointments.append(make_appointment(slot, patient_id, STAFF[staff_index], today))
    return [
        *facilities,
        *(make_practitioner(staff) for staff in STAFF),
        *(make_practitioner_role(staff) for staff in STAFF),
        *(make_patient(*row) for row in PATIENTS),
        *schedules,
        *slots,
        *appointments,
    ]
