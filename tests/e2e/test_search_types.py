"""Search parameter types over HTTP: token, reference, string and date forms, OR and AND."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.search_factories import (
    ID_SYSTEM,
    device,
    found,
    healthcare_service,
    identifier,
    location,
    organization,
    patient,
    practitioner,
    practitioner_role,
    put,
)

OTHER_SYSTEM = "http://other.example.org/ids"


@pytest.fixture
async def directory(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """People, places and organizations with names that exercise string matching."""
    await put(
        client,
        patient("maria", "García", "María", "José", identifier=identifier("MRN-1")),
        patient("mario", "Garcia-Lopez", "Mario", identifier=identifier("MRN-2", OTHER_SYSTEM)),
        patient("james", "Wilson", "James",
                identifier=[{"value": "MRN-3"}], gender="male"),
        practitioner("okafor", "Okafor", "Amara", identifier=identifier("NPI-1")),
        practitioner("reyes", "Reyes", "Daniel", identifier=identifier("NPI-2")),
        organization("riverside", "Riverside Family Clinic", identifier=identifier("ORG-1")),
        organization("lakeside", "Lakeside Hospital", identifier=identifier("ORG-2")),
        location("exam-1", "Exam Room 1", identifier=identifier("LOC-1"),
                 managingOrganization={"reference": "Organization/riverside"}),
        location("ecg", "ECG Room", identifier=identifier("LOC-2")),
        healthcare_service("cardio", "Cardiology Clinic", identifier=identifier("HS-1")),
        healthcare_service("derm", "Dermatology", identifier=identifier("HS-2")),
        practitioner_role("role-okafor", practitioner_id="okafor", organization_id="riverside",
                          location_id="exam-1", identifier=identifier("ROLE-1")),
        practitioner_role("role-reyes", practitioner_id="reyes", organization_id="lakeside",
                          location_id="ecg", identifier=identifier("ROLE-2")),
        device("ecg-machine", identifier=identifier("DEV-1"),
               location={"reference": "Location/ecg"}),
    )
    return client


@pytest.mark.parametrize(("query", "expected"), [
    ("Patient?identifier=MRN-1", {"maria"}),  # code alone: any system
    (f"Patient?identifier={ID_SYSTEM}|MRN-1", {"maria"}),
    (f"Patient?identifier={OTHER_SYSTEM}|MRN-1", set()),
    ("Patient?identifier=|MRN-3", {"james"}),  # |code: only values without a system
    ("Patient?identifier=|MRN-1", set()),
    (f"Patient?identifier={ID_SYSTEM}|", {"maria"}),  # system|: any code of that system
    (f"Patient?identifier={OTHER_SYSTEM}|", {"mario"}),
    ("Patient?identifier=MRN-1,MRN-3", {"maria", "james"}),
    ("Patient?identifier:not=MRN-1", {"mario", "james"}),
    ("Patient?gender=male", {"james"}),
    ("Patient?gender:not=male", {"maria", "mario"}),
    ("Patient?identifier=mrn-1", set()),  # token codes are case-sensitive
])
async def test_token_forms(directory: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await found(directory, query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("Patient?name=garc", {"maria", "mario"}),  # starts-with, case-insensitive
    ("Patient?name=GARCÍA", {"maria", "mario"}),  # accent-insensitive both ways
    ("Patient?name=maría", {"maria"}),
    ("Patient?family=garcia-l", {"mario"}),
    ("Patient?given=jose", {"maria"}),  # second given name
    ("Patient?given=ose", set()),  # not a prefix
    ("Patient?given:contains=ose", {"maria"}),
    ("Patient?name:contains=LOPEZ", {"mario"}),
    ("Patient?family:exact=García", {"maria"}),
    ("Patient?family:exact=garcía", set()),  # exact is case-sensitive
    ("Patient?family:exact=Garcia", set()),  # and accent-sensitive
    ("Patient?family:exact=Garc", set()),  # and whole-value
    ("Patient?name=wil,oka", {"james"}),
    ("Practitioner?name=oka", {"okafor"}),
    ("Practitioner?family=REYES", {"reyes"}),
    ("Practitioner?given=amara", {"okafor"}),
    ("Practitioner?given:exact=Amara", {"okafor"}),
    ("Organization?name=river", {"riverside"}),
    ("Organization?name:contains=hospital", {"lakeside"}),
    ("Location?name=exam", {"exam-1"}),
    ("Location?name:exact=ECG Room", {"ecg"}),
    ("HealthcareService?name=cardio", {"cardio"}),
    ("HealthcareService?name:contains=ology", {"cardio", "derm"}),
])
async def test_string_forms(directory: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await found(directory, query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("PractitionerRole?practitioner=Practitioner/okafor", {"role-okafor"}),
    ("PractitionerRole?practitioner=reyes", {"role-reyes"}),
    ("PractitionerRole?practitioner:Practitioner=reyes", {"role-reyes"}),
    ("PractitionerRole?organization=Organization/lakeside", {"role-reyes"}),
    ("PractitionerRole?organization=riverside,lakeside", {"role-okafor", "role-reyes"}),
    ("PractitionerRole?location=Location/exam-1", {"role-okafor"}),
    ("PractitionerRole?location=ecg", {"role-reyes"}),
    ("PractitionerRole?practitioner=http://testserver/fhir/Practitioner/okafor", {"role-okafor"}),
    ("PractitionerRole?practitioner=Practitioner/nobody", set()),
    ("PractitionerRole?practitioner.family=okafor", {"role-okafor"}),
    ("PractitionerRole?organization.name=lake", {"role-reyes"}),
    ("Location?organization=Organization/riverside", {"exam-1"}),
    ("Device?location=Location/ecg", {"ecg-machine"}),
])
async def test_reference_forms(directory: httpx.AsyncClient, query: str,
                               expected: set[str]) -> None:
    assert await found(directory, query) == expected


@pytest.mark.parametrize(("resource_type", "value", "expected"), [
    ("Patient", "MRN-2", "mario"),
    ("Practitioner", "NPI-2", "reyes"),
    ("PractitionerRole", "ROLE-1", "role-okafor"),
    ("Organization", "ORG-2", "lakeside"),
    ("Location", "LOC-1", "exam-1"),
    ("HealthcareService", "HS-2", "derm"),
    ("Device", "DEV-1", "ecg-machine"),
])
async def test_every_type_is_found_by_identifier_and_id(
        directory: httpx.AsyncClient, resource_type: str, value: str, expected: str) -> None:
    assert await found(directory, f"{resource_type}?identifier={value}") == {expected}
    assert await found(directory, f"{resource_type}?_id={expected}") == {expected}
    assert await found(directory, f"{resource_type}?_id=nope,{expected}") == {expected}
    assert expected not in await found(directory, f"{resource_type}?_id:not={expected}")


async def test_comma_is_or_and_repetition_is_and(directory: httpx.AsyncClient) -> None:
    assert await found(directory, "Patient?name=james,maria") == {"james", "maria"}
    assert await found(directory, "Patient?name=garcia&given=mario") == {"mario"}
    assert await found(directory, "Patient?name=garcia&name=james") == set()
    assert await found(directory, "Patient?_id=maria,james&gender=male") == {"james"}
    # An escaped comma is part of the value, not a separator.
    assert await found(directory, "Organization?name=riverside\\,lakeside") == set()


@pytest.mark.parametrize("query", [
    "Patient?birthdate=not-a-date",
    "Slot?start=2026-13-01",
    "Slot?start=xx2026-01-01",
    "PractitionerRole?practitioner:Organization=okafor",
    "PractitionerRole?practitioner:Patient=Practitioner/okafor",
    "Patient?name:fuzzy=x",
    "Patient?gender:exact=male",
    "Patient?_count=-1",
    "Patient?_count=ten",
    "Patient?_summary=maybe",
    "Patient?_total=sometimes",
    "Patient?identifier=a|b|c",
])
async def test_malformed_values_and_modifiers_are_refused(directory: httpx.AsyncClient,
                                                          query: str) -> None:
    response = await directory.get(query)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
