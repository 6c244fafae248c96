"""SMART-on-FHIR over HTTP: who may call what, and what each caller gets to see.

The `client` fixture sends an administrator token; each test here overrides the
Authorization header per request with the token of the caller it is about.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_server.app import create_app
from fhir_server.auth.keys import load_or_create_keys
from tests.e2e.checks import outcome_issues
from tests.e2e.conftest import make_settings
from tests.e2e.test_booking_race import appointment, schedule_with_slot
from tests.e2e.test_cli import free_port
from tests.e2e.tokens import BASE, bearer, mint

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
OVERBOOKING = "http://fhir-scheduler.org/fhir/StructureDefinition/overbooking"

ADMIN = bearer(mint("user/*.cruds", role="administrator"))
DOCTOR = bearer(mint("user/*.cruds", role="doctor", fhir_user="Practitioner/dr-a"))
STAFF = bearer(mint("user/*.cruds", role="staff", fhir_user="Practitioner/desk"))
MARIA = bearer(mint("patient/*.cruds", role="patient", fhir_user="Patient/maria",
                    patient="maria"))
ROLES = {"administrator": ADMIN, "doctor": DOCTOR, "staff": STAFF, "patient": MARIA}


async def put(client: httpx.AsyncClient, *resources: dict[str, Any]) -> None:
    for resource in resources:
        response = await client.put(f"{resource['resourceType']}/{resource['id']}",
                                    json=resource, headers=ADMIN)
        assert response.status_code in (200, 201), response.text


async def clinic(client: httpx.AsyncClient) -> None:
    """Two patients, two doctors with a schedule and a slot each, one appointment each."""
    await put(client, *({"resourceType": "Patient", "id": p} for p in ("maria", "james")),
              *({"resourceType": "Practitioner", "id": d} for d in ("dr-a", "dr-b")))
    await schedule_with_slot(client, "Practitioner/dr-a", "slot-a", "10:00", "10:30")
    await schedule_with_slot(client, "Practitioner/dr-b", "slot-b", "11:00", "11:30")
    await put(client, {**appointment([], ["Patient/maria", "Practitioner/dr-a"],
                                     start="09:00", end="09:30"), "id": "appt-maria"},
              {**appointment([], ["Patient/james", "Practitioner/dr-b"],
                             start="09:00", end="09:30"), "id": "appt-james"})


def forged(payload: dict[str, Any], header: dict[str, Any]) -> str:
    """An unsigned JWT (`alg: none`) with the given parts."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(payload)}."


def bad_tokens(tmp_path: Path) -> dict[str, str]:
    good = mint()
    head, body, signature = good.split(".")
    tampered_body = json.loads(base64.urlsafe_b64decode(body + "=="))
    tampered_body["fhir_scheduler_role"] = "administrator"
    tampered_body["scope"] = "system/*.cruds"
    retyped = base64.urlsafe_b64encode(json.dumps(tampered_body).encode()).rstrip(b"=")
    now = int(datetime.now(UTC).timestamp())
    return {
        "expired": mint(now=datetime.now(UTC) - timedelta(hours=2)),
        "wrong audience": mint(audience="https://elsewhere.example/fhir"),
        "wrong issuer": mint(issuer="https://idp.example/realms/other"),
        "tampered": f"{head}.{retyped.decode()}.{signature}",
        "alg none": forged({"iss": "http://testserver/auth", "aud": BASE, "exp": now + 600,
                            "scope": "user/*.cruds", "fhir_scheduler_role": "administrator"},
                           {"alg": "none", "typ": "JWT"}),
        "another key": mint(keys=load_or_create_keys(tmp_path / "other")),
        "not a jwt": "hello",
    }


async def test_no_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("Appointment", headers={"Authorization": ""})

    issues = outcome_issues(response, 401)
    assert issues[0]["code"] == "login"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "invalid_token" not in response.headers["www-authenticate"]


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["expired", "wrong audience", "wrong issuer", "tampered",
                                  "alg none", "another key", "not a jwt"])
async def test_an_untrustworthy_token_is_401_invalid_token(
        client: httpx.AsyncClient, tmp_path: Path, kind: str) -> None:
    token = bad_tokens(tmp_path)[kind]

    response = await client.get("Slot", headers=bearer(token))

    assert outcome_issues(response, 401)[0]["code"] == "login"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_metadata_conformance_and_probes_need_no_token(client: httpx.AsyncClient,
                                                            ) -> None:
    anonymous = {"Authorization": ""}
    assert (await client.get("metadata", headers=anonymous)).status_code == 200
    assert (await client.get("OperationDefinition", headers=anonymous)).status_code == 200
    assert (await client.get("http://testserver/healthz", headers=anonymous)).status_code == 200
    assert (await client.get("http://testserver/readyz", headers=anonymous)).status_code == 200


@SQLITE_ONLY
async def test_a_scope_the_token_lacks_is_403_and_writes_nothing(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    slots_only = bearer(mint("user/Slot.rs user/Schedule.rs", role="administrator"))

    refused = await client.post("Appointment", headers=slots_only, json=appointment(
        ["slot-a"], ["Patient/maria", "Practitioner/dr-a"]))

    assert outcome_issues(refused, 403)[0]["code"] == "forbidden"
    assert (await client.get("Slot/slot-a", headers=slots_only)).json()["status"] == "free"


MATRIX = [
    # (method, path, expected status per role: administrator, doctor, staff, patient)
    ("GET", "Appointment", (200, 200, 200, 200)),
    ("GET", "Slot", (200, 200, 200, 200)),
    ("GET", "Schedule/sch-dr-a", (200, 200, 200, 200)),
    ("PUT", "Schedule/sch-dr-a", (200, 200, 403, 403)),
    ("PUT", "Schedule/sch-dr-b", (200, 403, 403, 403)),
    ("GET", "Patient/maria", (200, 200, 200, 200)),
    ("GET", "Patient/james", (200, 404, 200, 404)),  # dr-a sees maria only
    ("POST", "Patient", (201, 403, 201, 403)),
    ("GET", "Appointment/appt-maria", (200, 200, 200, 200)),
    ("GET", "Appointment/appt-james", (200, 404, 200, 404)),  # dr-a is not in it
    ("DELETE", "Appointment/appt-james", (204, 403, 403, 403)),
    ("GET", "Appointment/_history", (200, 403, 200, 403)),
    ("GET", "AuditEvent", (200, 403, 403, 403)),
]


@SQLITE_ONLY
@pytest.mark.parametrize("method,path,expected", MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
@pytest.mark.parametrize("role", list(ROLES))
async def test_role_by_interaction(client: httpx.AsyncClient, role: str, method: str, path: str,
                                   expected: tuple[int, ...]) -> None:
    await clinic(client)
    body: dict[str, Any] | None = None
    if path.startswith("Schedule/"):
        body = (await client.get(path, headers=ADMIN)).json()
    elif method == "POST":
        body = {"resourceType": "Patient", "name": [{"family": "Walk-in"}]}

    response = await client.request(method, path, headers=ROLES[role], json=body)

    assert response.status_code == expected[list(ROLES).index(role)], response.text


async def test_a_patient_searches_only_their_own_appointments_and_includes(
        client: httpx.AsyncClient) -> None:
    await clinic(client)

    found = (await client.get("Appointment", headers=MARIA, params={
        "_include": "Appointment:patient", "_revinclude": "AppointmentResponse:appointment",
        "date": "ge2000-01-01"})).json()
    everyone = (await client.get("Appointment", params={"_include": "Appointment:patient"}))

    ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in found["entry"]}
    assert ids == {("Appointment", "appt-maria"), ("Patient", "maria")}
    assert found["total"] == 1
    assert everyone.json()["total"] == 2


async def test_a_patient_cannot_read_another_patients_appointment(
        client: httpx.AsyncClient) -> None:
    await clinic(client)

    own = await client.get("Appointment/appt-maria", headers=MARIA)
    other = await client.get("Appointment/appt-james", headers=MARIA)
    other_version = await client.get("Appointment/appt-james/_history/1", headers=MARIA)
    other_history = await client.get("Appointment/appt-james/_history", headers=MARIA)

    assert own.status_code == 200
    for response in (other, other_version, other_history):
        assert outcome_issues(response, 404)[0]["code"] == "not-found"


async def test_a_patient_cannot_book_for_someone_else_and_nothing_is_written(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    for_james = appointment(["slot-a"], ["Patient/james", "Practitioner/dr-a"])
    book_for_james = {"resourceType": "Parameters", "parameter": [
        {"name": "appointment-resource", "resource": for_james}]}
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "maria"},
         "request": {"method": "PUT", "url": "Patient/maria"}},
        {"resource": for_james, "request": {"method": "POST", "url": "Appointment"}}]}

    created = await client.post("Appointment", headers=MARIA, json=for_james)
    booked = await client.post("Appointment/$book", headers=MARIA, json=book_for_james)
    taken_over = await client.put("Appointment/appt-james", headers=MARIA, json={
        **for_james, "id": "appt-james",
        "participant": [{"actor": {"reference": "Patient/maria"}, "status": "accepted"}]})
    bundled = await client.post("", headers=MARIA, json=transaction)

    for response in (created, booked, taken_over, bundled):
        assert outcome_issues(response, 403)[0]["code"] == "forbidden"
    assert (await client.get("Appointment", params={"_summary": "count"})).json()["total"] == 2
    assert (await client.get("Slot/slot-a")).json()["status"] == "free"
    assert (await client.get("Appointment/appt-james")).json()["meta"]["versionId"] == "1"


async def test_a_patient_books_for_self_and_reads_the_directory(
        client: httpx.AsyncClient) -> None:
    await clinic(client)

    slots = await client.get("Slot", headers=MARIA, params={"status": "free"})
    schedule = await client.get("Schedule/sch-dr-a", headers=MARIA)
    found = await client.get("Slot/$find-slots", headers=MARIA, params={
        "practitioner": "Practitioner/dr-a", "start": "2030-03-11", "end": "2030-03-12"})
    booked = await client.post("Appointment", headers=MARIA, json=appointment(
        ["slot-a"], ["Patient/maria", "Practitioner/dr-a"]))

    assert slots.status_code == 200 and slots.json()["total"] == 2
    assert schedule.status_code == 200
    assert found.status_code == 200, found.text
    assert booked.status_code == 201, booked.text
    assert (await client.get("Slot/slot-a")).json()["status"] == "busy"


async def test_a_doctor_manages_only_their_own_schedule_and_slots(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    own_slot = {"resourceType": "Slot", "status": "free", "schedule": {
        "reference": "Schedule/sch-dr-a"}, "start": "2030-03-12T10:00:00Z",
        "end": "2030-03-12T10:30:00Z"}
    other_slot = {**own_slot, "schedule": {"reference": "Schedule/sch-dr-b"}}
    moved_away = {**(await client.get("Slot/slot-a")).json(),
                  "schedule": {"reference": "Schedule/sch-dr-b"}}

    mine = await client.post("Slot", headers=DOCTOR, json=own_slot)
    theirs = await client.post("Slot", headers=DOCTOR, json=other_slot)
    stolen = await client.put("Slot/slot-a", headers=DOCTOR, json=moved_away)
    deleted = await client.delete("Slot/slot-b", headers=DOCTOR)
    generated = await client.get("Schedule/sch-dr-b/$generate-slots", headers=DOCTOR, params={
        "start": "2030-03-11T00:00:00Z", "end": "2030-03-12T00:00:00Z"})

    assert mine.status_code == 201, mine.text
    for response in (theirs, stolen, deleted, generated):
        assert outcome_issues(response, 403)[0]["code"] == "forbidden"
    assert (await client.get("Slot/slot-b")).status_code == 200
    assert (await client.get("Slot", params={"schedule": "Schedule/sch-dr-b"})).json()[
        "total"] == 1


async def test_staff_may_overbook_with_a_reason_and_a_patient_may_not(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    await client.post("Appointment", json=appointment(["slot-a"],
                                                      ["Patient/james", "Practitioner/dr-a"]))
    reason = [{"url": OVERBOOKING, "valueString": "Urgent: chest pain"}]

    by_patient = await client.post("Appointment", headers=MARIA, json=appointment(
        ["slot-a"], ["Patient/maria", "Practitioner/dr-a"], extension=reason))
    by_staff = await client.post("Appointment", headers=STAFF, json=appointment(
        ["slot-a"], ["Patient/maria", "Practitioner/dr-a"], extension=reason))

    assert outcome_issues(by_patient, 403)[0]["code"] == "forbidden"
    assert by_staff.status_code == 201, by_staff.text
    assert (await client.get("Slot/slot-a")).json()["overbooked"] is True


@SQLITE_ONLY
async def test_scope_constraints_narrow_search_and_read(client: httpx.AsyncClient) -> None:
    await clinic(client)
    await put(client, {**appointment([], ["Patient/maria", "Practitioner/dr-a"],
                                     status="proposed"), "id": "appt-proposed"})
    booked_only = bearer(mint("user/Appointment.rs?status=booked", role="staff"))

    found = (await client.get("Appointment", headers=booked_only)).json()
    hidden = await client.get("Appointment/appt-proposed", headers=booked_only)
    shown = await client.get("Appointment/appt-maria", headers=booked_only)

    assert {e["resource"]["id"] for e in found["entry"]} == {"appt-maria", "appt-james"}
    assert hidden.status_code == 404 and shown.status_code == 200


async def test_a_batch_refuses_only_the_forbidden_entries(client: httpx.AsyncClient) -> None:
    await clinic(client)
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Slot/slot-a"}},
        {"request": {"method": "DELETE", "url": "Appointment/appt-james"}}]}

    response = await client.post("", headers=STAFF, json=batch)

    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["200 OK", "403 Forbidden"]
    assert (await client.get("Appointment/appt-james")).status_code == 200


async def test_an_external_issuer_whose_keys_cannot_be_fetched_is_503(tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}/realms/clinic"
    app = create_app(make_settings(tmp_path, auth_mode="external", auth_issuer=issuer,
                                   auth_jwks_timeout_s=0.5))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE + "/") as http:
            response = await http.get("Slot", headers=bearer(mint(issuer=issuer)))
            metadata = await http.get("metadata")

    assert outcome_issues(response, 503)[0]["code"] == "transient"
    assert metadata.status_code == 200
