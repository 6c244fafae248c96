"""The `Parameters` reader: values by name and type, resources, references, and 400s that
name the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.parameters import Parameters, parameter_expression

BASE = "http://example.org/fhir"


def params(*parts: dict[str, Any]) -> Parameters:
    return Parameters.parse({"resourceType": "Parameters", "parameter": list(parts)})


def refused(call: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        call()
    return caught.value


def expression_of(error: InvalidRequest) -> tuple[str, ...]:
    return error.issues[0].expression


def test_values_are_read_by_name_in_order() -> None:
    p = params({"name": "slot", "valueReference": {"reference": "Slot/a"}},
               {"name": "comment", "valueString": "hi"},
               {"name": "slot", "valueReference": {"reference": "Slot/b"}})
    assert [r["reference"] for r in p.values("slot", "Reference")] == ["Slot/a", "Slot/b"]
    assert p.value("comment", "string") == "hi"
    assert p.value("absent", "string") is None
    assert p.values("absent", "string") == []
    assert p.names() == {"slot", "comment"} and p.has("slot") and not p.has("start")


@pytest.mark.parametrize(("value_type", "good", "bad"), [
    ("integer", 10, True),
    ("integer", -3, "10"),
    ("positiveInt", 1, 0),
    ("boolean", False, "false"),
    ("string", "x", ""),
    ("dateTime", "2030-03-11T14:00:00Z", "2030-03-11 14:00"),
    ("dateTime", "2030-03", "March"),
    ("instant", "2030-03-11T14:00:00.5+01:00", "2030-03-11"),
    ("id", "abc-1.2", "a/b"),
    ("Reference", {"reference": "Patient/1"}, {"display": "only a name"}),
])
def test_values_are_type_checked(value_type: str, good: object, bad: object) -> None:
    key = f"value{value_type[0].upper()}{value_type[1:]}"
    assert params({"name": "n", key: good}).value("n", value_type) == good
    error = refused(lambda: params({"name": "n", key: bad}).value("n", value_type))
    assert expression_of(error) == (parameter_expression("n"),)
    assert "'n'" in str(error)


def test_a_value_of_another_type_is_refused_naming_the_parameter() -> None:
    p = params({"name": "hold-duration", "valueString": "10"})
    error = refused(lambda: p.value("hold-duration", "integer"))
    assert expression_of(error) == ("Parameters.parameter.where(name='hold-duration')",)


def test_required_and_single_valued_parameters() -> None:
    error = refused(lambda: params().value("start", "dateTime", required=True))
    assert error.issues[0].code == "required"
    assert expression_of(error) == (parameter_expression("start"),)
    twice = params({"name": "start", "valueDateTime": "2030-01-01"},
                   {"name": "start", "valueDateTime": "2030-01-02"})
    assert "only once" in str(refused(lambda: twice.value("start", "dateTime")))


def test_resources_are_read_and_their_type_checked() -> None:
    appointment = {"resourceType": "Appointment", "status": "proposed"}
    p = params({"name": "appointment-resource", "resource": appointment},
               {"name": "comment", "valueString": "x"})
    assert p.resource("appointment-resource", "Appointment") == appointment
    assert p.resource("patient-resource", "Patient") is None
    error = refused(lambda: p.resource("appointment-resource", "Patient"))
    assert expression_of(error) == (parameter_expression("appointment-resource"),)
    assert "must carry a resource" in str(refused(lambda: p.resource("comment")))
    assert refused(lambda: p.resource("patient-resource", required=True)).issues[0].code == \
        "required"


@pytest.mark.parametrize("reference", [
    "Appointment/a1", "Appointment/a1/_history/3", f"{BASE}/Appointment/a1",
])
def test_reference_id_accepts_local_forms(reference: str) -> None:
    p = params({"name": "appointment-reference", "valueReference": {"reference": reference}})
    assert p.reference_id("appointment-reference", "Appointment", base_url=BASE) == "a1"


def test_reference_ids_reads_every_part_by_name() -> None:
    p = params({"name": "slot", "valueReference": {"reference": "Slot/b"}},
               {"name": "slot", "valueReference": {"reference": f"{BASE}/Slot/a"}})
    assert p.reference_ids("slot", "Slot", base_url=BASE) == ["b", "a"]
    assert "only once" in str(refused(lambda: p.reference_id("slot", "Slot", base_url=BASE)))
    assert params().reference_ids("slot", "Slot") == []


def test_reference_id_also_reads_uri_and_id_values() -> None:
    assert params({"name": "cancelled-appt-id", "valueUri": "Appointment/x"}).reference_id(
        "cancelled-appt-id", "Appointment") == "x"
    assert params({"name": "cancelled-appt-id", "valueId": "x"}).reference_id(
        "cancelled-appt-id", "Appointment") == "x"
    assert params().reference_id("cancelled-appt-id", "Appointment") is None
    for bad in ({"name": "x", "valueId": "a/b"}, {"name": "x", "valueString": "Appointment/a"},
                {"name": "x", "valueReference": {"display": "no reference"}}):
        error = refused(lambda bad=bad: params(bad).reference_id("x", "Appointment"))
        assert expression_of(error) == (parameter_expression("x"),)


@pytest.mark.parametrize("reference", [
    "Patient/a1", "http://elsewhere.org/fhir/Appointment/a1", "Appointment/", "a1",
    "Appointment/a1/extra",
])
def test_reference_id_refuses_other_types_and_servers(reference: str) -> None:
    p = params({"name": "appointment-reference", "valueReference": {"reference": reference}})
    error = refused(lambda: p.reference_id("appointment-reference", "Appointment",
                                           base_url=BASE))
    assert expression_of(error) == (parameter_expression("appointment-reference"),)


@pytest.mark.parametrize("body", [
    None, [], {"resourceType": "Bundle"}, {"resourceType": "Parameters", "parameter": {}},
    {"resourceType": "Parameters", "parameter": [{"valueString": "no name"}]},
    {"resourceType": "Parameters", "parameter": ["text"]},
])
def test_malformed_parameters_are_refused(body: object) -> None:
    refused(lambda: Parameters.parse(body))


def test_a_part_carrying_two_things_is_refused() -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "x", "valueString": "a", "resource": {"resourceType": "Patient"}}]}
    error = refused(lambda: Parameters.parse(body))
    assert expression_of(error) == (parameter_expression("x"),)


def test_an_empty_parameters_resource_is_valid() -> None:
    assert Parameters.parse({"resourceType": "Parameters"}).names() == set()


def test_unknown_parameters_are_refused_by_name() -> None:
    p = params({"name": "slot", "valueReference": {"reference": "Slot/a"}},
               {"name": "colour", "valueString": "red"})
    p.refuse_unknown({"slot", "colour"})
    error = refused(lambda: p.refuse_unknown({"slot", "start"}))
    assert expression_of(error) == (parameter_expression("colour"),)
    assert error.issues[0].code == "not-supported"


def test_asking_for_an_unknown_fhir_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        params().values("x", "Quantity")
