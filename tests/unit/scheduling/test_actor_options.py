"""Options per actor group, and the finder's view of them under notice and horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fhir_server.scheduling.actor_options import actor_group, actor_options, default_duration
from fhir_server.scheduling.availability import DEFAULT_SLOT_MINUTES, AvailabilityRules
from fhir_server.scheduling.finding import FreeSlot
from fhir_server.scheduling.intervals import to_minutes
from fhir_server.scheduling.slot_records import ScheduleRecord

NOW = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
T = to_minutes(NOW)
RULES = AvailabilityRules(time_zone=ZoneInfo("UTC"), available=(), slot_minutes_default=20,
                          buffer_after=5, minimum_notice=timedelta(hours=1),
                          booking_horizon=timedelta(hours=3))
ADA = ScheduleRecord("s-ada", ("Practitioner/ada",), RULES)
ROOM = ScheduleRecord("s-room", ("Location/room",), None)


def test_actors_are_options_in_order_and_schedules_stand_alone() -> None:
    groups = {"Practitioner": ["Practitioner/bo", "Practitioner/ada"],
              "Schedule": ["Schedule/s-room", "Schedule/missing"]}

    options = actor_options(groups, [ADA, ROOM])

    [(first, doctors), (second, rooms)] = options
    assert (first, [o.key for o in doctors]) == ("Practitioner", ["Practitioner/bo",
                                                                  "Practitioner/ada"])
    assert doctors[0].schedules == [] and doctors[1].schedules == [ADA]
    assert (second, [(o.key, o.actors) for o in rooms]) == (
        "Schedule", [("Schedule/s-room", ("Location/room",))])
    assert [o.key for _, g in actor_options({}, [ADA, ROOM]) for o in g] == [
        "Schedule/s-ada", "Schedule/s-room"]


def test_the_duration_is_the_first_schedules_slot_length() -> None:
    assert default_duration(actor_options({}, [ADA]), ()) == 20
    assert default_duration(actor_options({}, [ROOM, ADA]), ()) == DEFAULT_SLOT_MINUTES
    assert default_duration([], ()) == DEFAULT_SLOT_MINUTES


def test_the_lead_keeps_slots_inside_notice_and_horizon_others_are_cut_to_notice() -> None:
    [(_, group)] = actor_options({"Practitioner": ["Practitioner/ada"]}, [ADA])
    slots = {"s-ada": [FreeSlot("early", "s-ada", T + 30, T + 90),
                       FreeSlot("ok", "s-ada", T + 60, T + 80),
                       FreeSlot("late", "s-ada", T + 200, T + 220)]}
    busy = {"Practitioner/ada": [(T, T + 10)]}

    lead = actor_group("Practitioner", group, slots, busy, now=NOW, lead=True)
    other = actor_group("Practitioner", group, slots, busy, now=NOW, lead=False)

    [option] = lead.options
    assert [s.id for s in option.slots] == ["ok"]
    assert option.busy == ((T, T + 10),) and option.buffer_after == 5
    assert [(s.id, s.start) for s in other.options[0].slots] == [
        ("early", T + 60), ("ok", T + 60), ("late", T + 200)]
