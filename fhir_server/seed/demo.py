"""Demo data for a small outpatient clinic: valid FHIR R4 resources with fixed, readable ids.

Pure: `today` is passed in and nothing is read or written, and the same `today` always yields
the same resources. Each Schedule carries the `schedule-availability` extension; its Slots are
what the scheduling engine plans from those rules over the planning horizon (seeding lets the
slot generation service write them), and the two demo Appointments book two of those slots.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from fhir_server.scheduling.availability import AVAILABILITY_URL, plan_slots, rules_from_schedule
from fhir_server.scheduling.slot_plan import reconcile_slots
from fhir_server.seed.directory import (
    BUILDING_ID,
    CARDIOLOGY,
    CLINIC_TZ,
    CLOSING,
    CONSULTATION,
    DERMATOLOGY,
    ECG_PROCEDURE,
    FAMILY_PRACTICE,
    LUNCH,
    OFFICE,
    OPENING,
    PATIENTS,
    PLANNING_DAYS,
    SERVICE_TYPES,
    SLOT_MINUTES,
    STAFF,
    TIMEZONE_EXTENSION,
    UCUM,
    WEEKDAYS,
    StaffMember,
    concept,
    instant,
    make_device,
    make_healthcare_service,
    make_location,
    make_office_practitioner,
    make_office_role,
    make_organization,
    make_patient,
    make_practitioner,
    make_practitioner_role,
    ref,
    role_id,
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
        *(make_office_practitioner(member) for member in OFFICE),
        *(make_office_role(member) for member in OFFICE),
        *(make_patient(*row) for row in PATIENTS),
        *schedules,
        *slots,
        *appointments,
    ]
