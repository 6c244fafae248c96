"""Parsing `$find-slots` and ITI-115 `$find` inputs: GET and Parameters agree; errors name it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.scheduling.find_params import (
    FIND_SLOTS,
    ITI_115_FIND,
    SlotQuery,
    from_parameters,
    from_query,
)

WINDOW = [("start", "2030-03-11T08:00:00Z"), ("end", "2030-03-12T08:00:00+01:00")]


def parameters(*parts: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def test_get_values_become_a_typed_query() -> None:
    query = from_query([*WINDOW, ("practitioner", "Practitioner/b,a"),
                        ("location-reference", "http://x/fhir/Location/r1"),
                        ("practitioner", "Practitioner/c"), ("service-type", "http://s|c1"),
                        ("specialty", "card"), ("duration", "45"), ("_count", "3"),
                        ("patient-reference", "p1")], FIND_SLOTS)
    assert query == SlotQuery(
        start=datetime(2030, 3, 11, 8, tzinfo=UTC), end=datetime(2030, 3, 12, 7, tzinfo=UTC),
        service_types=(("http://s", "c1"),), specialties=((None, "card"),),
        actors=(("Practitioner", ("Practitioner/b", "Practitioner/a", "Practitioner/c")),
                ("Location", ("Location/r1",))),
        patient="Patient/p1", duration=45, count=3)


def test_parameters_body_gives_the_same_query_as_get() -> None:
    got = from_query([*WINDOW, ("device", "Device/d1"), ("schedule", "Schedule/s1"),
                      ("appointment-type", "FOLLOWUP"), ("_count", "0")], FIND_SLOTS)
    posted = from_parameters(parameters(
        {"name": "start", "valueInstant": "2030-03-11T08:00:00Z"},
        {"name": "end", "valueDateTime": "2030-03-12T08:00:00+01:00"},
        {"name": "device", "valueReference": {"reference": "Device/d1"}},
        {"name": "schedule", "valueString": "Schedule/s1"},
        {"name": "appointment-type", "valueCodeableConcept": {"coding": [{"code": "FOLLOWUP"}]}},
        {"name": "_count", "valueInteger": 0}), FIND_SLOTS)
    assert posted == got
    assert [kind for kind, _ in got.actors] == ["Schedule", "Device"]


def test_date_only_end_covers_that_whole_day() -> None:
    query = from_query([("start", "2030-03-11"), ("end", "2030-03-11"),
                        ("practitioner", "p")], FIND_SLOTS)
    assert (query.start, query.end) == (datetime(2030, 3, 11, tzinfo=UTC),
                                        datetime(2030, 3, 12, tzinfo=UTC))


def test_iti_115_names_aliases_and_extras() -> None:
    query = from_parameters(parameters(
        {"name": "startTime", "valueDateTime": "2030-03-11T08:00:00Z"},
        {"name": "endTime", "valueDateTime": "2030-03-11T18:00:00Z"},
        {"name": "visit-type", "valueCoding": {"system": "s", "code": "v"}},
        {"name": "organization", "valueReference": {"reference": "Organization/o1"}},
        {"name": "location-string", "valueString": "Main street"},
        {"name": "patient-resource", "resource": {"resourceType": "Patient", "id": "p9"}},
        {"name": "reason", "valueCoding": {"system": "s", "code": "r"}}), ITI_115_FIND)
    assert query.service_types == (("s", "v"),)
    assert query.organizations == ("Organization/o1",)
    assert query.location_text == ("Main street",)
    assert query.patient == "Patient/p9"
    assert query.reasons == ({"coding": [{"system": "s", "code": "r"}]},)


def test_a_patient_resource_without_id_names_nobody() -> None:
    query = from_parameters(parameters(
        {"name": "start", "valueDateTime": "2030-03-11T08:00:00Z"},
        {"name": "end", "valueDateTime": "2030-03-11T18:00:00Z"},
        {"name": "patient-resource", "resource": {"resourceType": "Patient"}}), ITI_115_FIND)
    assert query.patient is None


@pytest.mark.parametrize(("pairs", "expression"), [
    ([("end", "2030-03-11T10:00:00Z")], "start"),
    ([("start", "2030-03-11T10:00:00Z")], "end"),
    ([("start", "2030-03-11T10:00:00Z"), ("end", "2030-03-11T09:00:00Z")], "end"),
    ([("start", "2030-01-01"), ("end", "2030-04-04")], "end"),
    ([*WINDOW, ("start", "2030-03-11T09:00:00Z")], "start"),
    ([*WINDOW, ("practitioner", "Location/x")], "practitioner"),
    ([*WINDOW, ("duration", "1441")], "duration"),
    ([*WINDOW, ("duration", "1.5")], "duration"),
    ([*WINDOW, ("_count", "501")], "_count"),
    ([*WINDOW, ("service-type", "http://s|")], "service-type"),
    ([*WINDOW, ("visit-type", "v")], "visit-type"),
])
def test_bad_input_is_refused_naming_the_parameter(pairs: list[tuple[str, str]],
                                                   expression: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        from_query(pairs, FIND_SLOTS)
    assert raised.value.issues[0].expression == (expression,)


def test_a_93_day_window_is_the_longest_allowed() -> None:
    query = from_query([("start", "2030-01-01T00:00:00Z"), ("end", "2030-04-04T00:00:00Z")],
                       FIND_SLOTS)
    assert (query.end - query.start).days == 93


@pytest.mark.parametrize("part", [
    {"name": "start"},
    {"name": "start", "valueDateTime": "2030-03-11T08:00:00Z", "valueString": "x"},
    {"name": "practitioner", "valueReference": {"display": "Dr Who"}},
    {"name": "_count", "valueString": "3"},
    {"name": "patient-resource", "resource": {"resourceType": "Practitioner", "id": "x"}},
])
def test_malformed_parameters_are_refused(part: dict) -> None:
    with pytest.raises(InvalidRequest):
        from_parameters(parameters(part), ITI_115_FIND)


def test_only_a_parameters_resource_is_accepted() -> None:
    with pytest.raises(InvalidRequest):
        from_parameters({"resourceType": "Bundle"}, FIND_SLOTS)
