"""Small builders for Schedules carrying the availability extension."""

from __future__ import annotations

from typing import Any

from fhir_server.scheduling.availability import AVAILABILITY_URL, R4_TIMEZONE_URL

UCUM = "http://unitsofmeasure.org"
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def sub(url: str, **value: Any) -> dict:
    """A simple sub-extension, e.g. `sub("timeZone", valueCode="Europe/Berlin")`."""
    return {"url": url, **value}


def nested(url: str, *children: dict) -> dict:
    """A complex sub-extension."""
    return {"url": url, "extension": list(children)}


def minutes(value: float, code: str = "min") -> dict:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def available_time(days: list[str], start: str, end: str) -> dict:
    return nested("availableTime", *[sub("daysOfWeek", valueCode=d) for d in days],
                  sub("availableStartTime", valueTime=start),
                  sub("availableEndTime", valueTime=end))


def break_time(start: str, end: str, days: list[str] = ()) -> dict:
    return nested("break", *[sub("daysOfWeek", valueCode=d) for d in days],
                  sub("startTime", valueTime=start), sub("endTime", valueTime=end),
                  sub("description", valueString="Lunch"))


def time_off(start: str, end: str, description: str = "Holiday") -> dict:
    return nested("notAvailableTime", sub("description", valueString=description),
                  sub("during", valuePeriod={"start": start, "end": end}))


def slot_duration(value: int, service: tuple[str, str] | None = None) -> dict:
    children = [sub("duration", valueDuration=minutes(value))]
    if service:
        concept = {"coding": [{"system": service[0], "code": service[1]}]}
        children.insert(0, sub("serviceType", valueCodeableConcept=concept))
    return nested("slotDuration", *children)


def emergency(start: str, end: str, release: dict, days: list[str] = ()) -> dict:
    return nested("emergencyReserve", *[sub("daysOfWeek", valueCode=d) for d in days],
                  sub("startTime", valueTime=start), sub("endTime", valueTime=end),
                  sub("releaseBefore", valueDuration=release))


def availability(*children: dict, zone: str = "America/New_York") -> dict:
    """The extension with `timeZone` first, then `children`."""
    return nested(AVAILABILITY_URL, sub("timeZone", valueCode=zone), *children)


def make_schedule(*extensions: dict, schedule_id: str = "sched-1") -> dict:
    """A Schedule with the R4 timezone extension first, then `extensions`."""
    return {
        "resourceType": "Schedule", "id": schedule_id, "active": True,
        "actor": [{"reference": "Practitioner/d1"}],
        "extension": [{"url": R4_TIMEZONE_URL, "valueCode": "America/New_York"},
                      *extensions],
    }
