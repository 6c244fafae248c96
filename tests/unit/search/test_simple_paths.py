"""The fast member-path evaluator must select exactly what fhirpathpy selects."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from fhir_server.fhir.search.parameters import SearchParameterRegistry, choice_element_paths
from fhir_server.fhir.search.simple_paths import compile_simple_path
from fhir_server.notify.messages import ChannelName, MessageKind
from fhir_server.scheduling.message_plan import NewRequest, reminder_key
from fhir_server.scheduling.outbox_records import Delivery, Lease, communication, with_lease
from fhir_server.seed.demo import demo_resources
from fhir_server.services.outbox import request_resource
from tests.e2e.factories import make_minimal
from tests.unit.search.test_extract import make_appointment

RICH_PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "p1", "active": True, "gender": "female",
    "birthDate": "1980-05-04", "deceasedDateTime": "2020-01-01",
    "name": [{"family": "Dupré", "given": ["Ána", "Marie"], "prefix": ["Dr."]},
             {"text": "Ana Dupre"}],
    "telecom": [{"system": "phone", "value": "+1 555"}, {"system": "email", "value": "a@x.org"}],
    "address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": "12345"}],
    "identifier": [{"system": "urn:mrn", "value": "42"}, {"value": "no-system"}],
    "generalPractitioner": [{"reference": "Practitioner/d1"}, {"reference": "Organization/o1"}],
    "managingOrganization": {"reference": "https://other.example/fhir/Organization/o9"},
    "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}],
    "meta": {"lastUpdated": "2026-01-01T00:00:00.000Z", "tag": [{"system": "s", "code": "t"}],
             "profile": ["http://example.org/p"]},
}


def outbox_resources() -> list[dict[str, Any]]:
    """A leased reminder, a follow-up over a period, and the Communications recording them."""
    now = datetime(2026, 3, 6, 9, tzinfo=UTC)
    reminder = request_resource(NewRequest(reminder_key("a1", 24), MessageKind.REMINDER, now,
                                           "a1", "Patient/p1", "Reminder"), now=now)
    leased = with_lease(reminder, Lease(due=now, attempt=1, expires=now), occurrence=now)
    period = {**leased, "occurrencePeriod": {"start": "2026-03-06", "end": "2026-03-07"}}
    del period["occurrenceDateTime"]
    sent = communication(leased, Delivery("k@x", now, ChannelName.EMAIL, "text",
                                          provider_id="<x@y>"))
    failed = communication(leased, Delivery("k@y", None, None, "text", reason="no address"))
    return [leased, period, sent, failed]


def sample_resources() -> list[dict[str, Any]]:
    """Demo clinic, a minimal resource of each type, and some richly populated ones."""
    resources = demo_resources(date(2026, 3, 6))
    types = sorted({r["resourceType"] for r in resources} | {"Communication",
                                                             "CommunicationRequest",
                                                             "AppointmentResponse"})
    return [*resources, *(make_minimal(t) for t in types), RICH_PATIENT, make_appointment(),
            *outbox_resources()]


def test_fast_path_selects_what_fhirpathpy_selects(registry: SearchParameterRegistry) -> None:
    compared = 0
    for resource in sample_resources():
        for definition in registry.for_type(resource["resourceType"]).values():
            if definition.code == "_id":
                continue
            fast = registry.evaluate(definition, resource)
            reference = registry.evaluate_with_fhirpathpy(definition, resource)
            assert fast == reference, (resource["resourceType"], definition.code)
            compared += 1
    assert compared > 2000


@pytest.mark.parametrize("expression", [
    "Patient.deceased.exists() and Patient.deceased != false",
    "(Patient.name as HumanName)",  # a cast of an element that is not a choice
    "Patient.telecom.where(system='phone')",
    "Patient.deceased",  # a choice element: deceasedBoolean / deceasedDateTime in JSON
])
def test_expressions_beyond_member_paths_stay_with_fhirpathpy(expression: str) -> None:
    assert compile_simple_path(expression, "Patient", choice_element_paths()) is None


def test_most_parameters_of_the_scheduling_types_take_the_fast_path() -> None:
    simple = [compile_simple_path("Appointment.participant.actor.where(resolve() is Patient)",
                                  "Appointment", choice_element_paths()),
              compile_simple_path("Slot.start", "Slot", choice_element_paths()),
              compile_simple_path("Patient.name.family | Practitioner.name.family", "Patient",
                                  choice_element_paths())]
    assert all(evaluator is not None for evaluator in simple)


def test_every_outbox_parameter_takes_the_fast_path(registry: SearchParameterRegistry) -> None:
    for resource_type in ("CommunicationRequest", "Communication"):
        slow = [code for code, definition in registry.for_type(resource_type).items()
                if code != "_id" and compile_simple_path(
                    definition.expression, resource_type, choice_element_paths()) is None]
        assert slow == [], resource_type
