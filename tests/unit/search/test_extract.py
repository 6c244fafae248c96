"""Index extraction on realistic scheduling resources: exact entries, nothing more."""

from typing import Any

from fhir_server.fhir.search.dates import parse_date_range
from fhir_server.fhir.search.extract import extract_index, normalize_string, split_reference
from fhir_server.fhir.search.model import (
    DATE_MAX,
    DateEntry,
    IndexEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
)
from fhir_server.fhir.search.parameters import SearchParameterRegistry

BASE = "https://scheduler.example/fhir"


def of(entries: tuple[IndexEntry, ...], param: str) -> set[IndexEntry]:
    """The entries of one parameter, as a set for exact comparison."""
    return {entry for entry in entries if entry.param == param}


def make_appointment(**overrides: Any) -> dict[str, Any]:
    """A booked appointment with a patient, a practitioner (absolute URL) and a room."""
    appointment: dict[str, Any] = {
        "resourceType": "Appointment", "id": "a1",
        "meta": {"versionId": "2", "lastUpdated": "2024-05-01T08:00:00.123Z",
                 "tag": [{"system": "http://example.org/tags", "code": "vip"}]},
        "identifier": [{"system": "urn:oid:1.2.3", "value": "APT-1"}],
        "status": "booked",
        "serviceType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type",
                                     "code": "57", "display": "Immunization"},
                                    {"system": "http://snomed.info/sct", "code": "33879002"}],
                         "text": "Flu shot"}],
        "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                                        "code": "ROUTINE"}]},
        "start": "2024-06-01T09:00:00+02:00", "end": "2024-06-01T09:30:00+02:00",
        "slot": [{"reference": "Slot/s1"}],
        "participant": [
            {"actor": {"reference": "Patient/p1", "display": "Ana"}, "status": "accepted"},
            {"actor": {"reference": f"{BASE}/Practitioner/d1"}, "status": "accepted"},
            {"actor": {"reference": "Location/room-3"}, "status": "tentative"},
            {"actor": {"reference": "#contained-device"}, "status": "accepted"},
            {"actor": {"identifier": {"system": "urn:npi", "value": "123"}}, "status": "needs-action"},
        ],
    }
    appointment.update(overrides)
    return appointment


def test_appointment_participants_by_type(registry: SearchParameterRegistry) -> None:
    entries = extract_index(make_appointment(), registry, base_url=BASE)
    assert of(entries, "patient") == {ReferenceEntry("patient", "Patient", "p1")}
    assert of(entries, "practitioner") == {ReferenceEntry("practitioner", "Practitioner", "d1")}
    assert of(entries, "location") == {ReferenceEntry("location", "Location", "room-3")}
    assert of(entries, "actor") == {
        ReferenceEntry("actor", "Patient", "p1"), ReferenceEntry("actor", "Practitioner", "d1"),
        ReferenceEntry("actor", "Location", "room-3")}
    assert of(entries, "slot") == {ReferenceEntry("slot", "Slot", "s1")}
    assert of(entries, "part-status") == {
        TokenEntry("part-status", None, "accepted"), TokenEntry("part-status", None, "tentative"),
        TokenEntry("part-status", None, "needs-action")}


def test_appointment_tokens_dates_and_meta(registry: SearchParameterRegistry) -> None:
    entries = extract_index(make_appointment(), registry, base_url=BASE)
    assert of(entries, "status") == {TokenEntry("status", None, "booked")}
    assert of(entries, "identifier") == {TokenEntry("identifier", "urn:oid:1.2.3", "APT-1")}
    assert of(entries, "service-type") == {
        TokenEntry("service-type", "http://terminology.hl7.org/CodeSystem/service-type", "57"),
        TokenEntry("service-type", "http://snomed.info/sct", "33879002")}
    assert of(entries, "appointment-type") == {
        TokenEntry("appointment-type", "http://terminology.hl7.org/CodeSystem/v2-0276", "ROUTINE")}
    start = parse_date_range("2024-06-01T07:00:00Z")[0]
    assert of(entries, "date") == {DateEntry("date", start, start + 1000)}
    updated = parse_date_range("2024-05-01T08:00:00.123Z")[0]
    assert of(entries, "_lastUpdated") == {DateEntry("_lastUpdated", updated, updated + 1)}
    assert of(entries, "_tag") == {TokenEntry("_tag", "http://example.org/tags", "vip")}
    assert of(entries, "_id") == set()


def test_entries_are_unique_and_cover_only_present_params(registry: SearchParameterRegistry) -> None:
    appointment = make_appointment(participant=[
        {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        {"actor": {"reference": "Patient/p1"}, "status": "accepted"}])
    entries = extract_index(appointment, registry)
    assert len(entries) == len(set(entries))
    assert {e.param for e in entries} == {
        "_lastUpdated", "_tag", "identifier", "status", "service-type", "appointment-type",
        "date", "end", "slot", "actor", "patient", "part-status"}


def test_slot_start_end_and_schedule(registry: SearchParameterRegistry) -> None:
    slot = {"resourceType": "Slot", "id": "s1", "schedule": {"reference": "Schedule/sch1"},
            "status": "free", "start": "2024-06-01T09:00:00Z", "end": "2024-06-01T09:30:00Z"}
    entries = extract_index(slot, registry)
    start, end = parse_date_range("2024-06-01T09:00:00Z")[0], parse_date_range("2024-06-01T09:30:00Z")[0]
    assert set(entries) == {
        ReferenceEntry("schedule", "Schedule", "sch1"), TokenEntry("status", None, "free"),
        DateEntry("start", start, start + 1000), DateEntry("end", end, end + 1000)}


def test_schedule_period_boolean_and_actors(registry: SearchParameterRegistry) -> None:
    schedule = {"resourceType": "Schedule", "active": True,
                "actor": [{"reference": "Practitioner/d1"}, {"reference": "Location/room-3"}],
                "planningHorizon": {"start": "2024-06-01", "end": "2024-06-30"}}
    entries = extract_index(schedule, registry)
    assert of(entries, "active") == {TokenEntry("active", None, "true")}
    assert of(entries, "date") == {DateEntry("date", parse_date_range("2024-06-01")[0],
                                             parse_date_range("2024-06-30")[1])}
    assert of(entries, "actor") == {ReferenceEntry("actor", "Practitioner", "d1"),
                                    ReferenceEntry("actor", "Location", "room-3")}
    open_ended = extract_index({**schedule, "planningHorizon": {"start": "2024-06-01T08:00:00Z"}}, registry)
    assert of(open_ended, "date") == {DateEntry("date", parse_date_range("2024-06-01T08:00:00Z")[0], DATE_MAX)}


def test_patient_names_addresses_telecom_identifiers(registry: SearchParameterRegistry) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "active": False, "gender": "female",
               "identifier": [{"system": "urn:mrn", "value": "MRN-9"}, {"value": "no-system"}],
               "name": [{"use": "official", "family": "Dupré", "given": ["Ána", "Marie"],
                         "prefix": ["Dr."], "text": "Dr. Ána Dupré"}],
               "telecom": [{"system": "phone", "value": "+33 1 23"}, {"system": "email", "value": "ana@example.org"}],
               "address": [{"line": ["12 Rue de l'Église"], "city": "Paris", "postalCode": "75001",
                            "country": "FR"}],
               "birthDate": "1980-02", "deceasedBoolean": False}
    entries = extract_index(patient, registry)
    assert of(entries, "family") == {StringEntry("family", "dupre", "Dupré")}
    assert of(entries, "given") == {StringEntry("given", "ana", "Ána"), StringEntry("given", "marie", "Marie")}
    assert of(entries, "name") == {
        StringEntry("name", "dupre", "Dupré"), StringEntry("name", "ana", "Ána"),
        StringEntry("name", "marie", "Marie"), StringEntry("name", "dr.", "Dr."),
        StringEntry("name", "dr. ana dupre", "Dr. Ána Dupré")}
    assert of(entries, "address-city") == {StringEntry("address-city", "paris", "Paris")}
    assert StringEntry("address", "12 rue de l'eglise", "12 Rue de l'Église") in of(entries, "address")
    assert of(entries, "identifier") == {TokenEntry("identifier", "urn:mrn", "MRN-9"),
                                         TokenEntry("identifier", None, "no-system")}
    assert of(entries, "phone") == {TokenEntry("phone", None, "+33 1 23")}
    assert of(entries, "email") == {TokenEntry("email", None, "ana@example.org")}
    assert of(entries, "active") == {TokenEntry("active", None, "false")}
    assert of(entries, "deceased") == {TokenEntry("deceased", None, "false")}
    assert of(entries, "birthdate") == {DateEntry("birthdate", *parse_date_range("1980-02"))}
    assert of(entries, "death-date") == set()


def test_patient_death_date_from_choice_type(registry: SearchParameterRegistry) -> None:
    entries = extract_index({"resourceType": "Patient", "deceasedDateTime": "2020-05-01T10:00:00+01:00"}, registry)
    low = parse_date_range("2020-05-01T09:00:00Z")[0]
    assert of(entries, "death-date") == {DateEntry("death-date", low, low + 1000)}
    assert of(entries, "deceased") == {TokenEntry("deceased", None, "true")}


def test_practitioner_name_and_uri_profile(registry: SearchParameterRegistry) -> None:
    practitioner = {"resourceType": "Practitioner", "meta": {"profile": ["http://hl7.org/fhir/us/core/Practitioner"]},
                    "name": [{"family": "Núñez", "given": ["José"]}],
                    "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567890"}]}
    entries = extract_index(practitioner, registry)
    assert of(entries, "family") == {StringEntry("family", "nunez", "Núñez")}
    assert of(entries, "_profile") == {TokenEntry("_profile", None, "http://hl7.org/fhir/us/core/Practitioner")}
    assert of(entries, "identifier") == {TokenEntry("identifier", "http://hl7.org/fhir/sid/us-npi", "1234567890")}


def test_reference_forms() -> None:
    assert split_reference("Patient/p1") == ("Patient", "p1", None)
    assert split_reference("Patient/p1/_history/4") == ("Patient", "p1", None)
    assert split_reference(f"{BASE}/Patient/p1", base_url=BASE) == ("Patient", "p1", None)
    assert split_reference(f"{BASE}/Patient/p1", base_url=BASE + "/") == ("Patient", "p1", None)
    assert split_reference("https://other.example/fhir/Patient/9", base_url=BASE) == (
        "Patient", "9", "https://other.example/fhir/Patient/9")
    assert split_reference("urn:uuid:0d5b7d62-8a4e-4c1b-b0c2-123") == (None, None, "urn:uuid:0d5b7d62-8a4e-4c1b-b0c2-123")
    assert split_reference("https://other.example/lookup") == (None, None, "https://other.example/lookup")


def test_normalize_string_folds_case_and_accents() -> None:
    assert normalize_string("ÉLODIE Müller-Straße") == "elodie muller-strasse"
    assert normalize_string("Ｆｕｌｌ") == "full"
