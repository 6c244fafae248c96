"""Small builders of valid resources and HTTP helpers for the search end-to-end tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

SNOMED = "http://snomed.info/sct"
ID_SYSTEM = "http://clinic.example.org/fhir/sid/ids"
APPOINTMENT_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0276"
SERVICE_CATEGORY = "http://terminology.hl7.org/CodeSystem/service-category"

CONSULTATION = (SNOMED, "11429006")
ECG = (SNOMED, "29303009")
CARDIOLOGY = (SNOMED, "394579002")
DERMATOLOGY = (SNOMED, "394582007")
CHEST_PAIN = (SNOMED, "29857009")
HEADACHE = (SNOMED, "25064002")


def ref(target: str) -> dict[str, str]:
    """`{"reference": "Type/id"}`."""
    return {"reference": target}


def concept(*codings: tuple[str, str]) -> dict[str, Any]:
    """A CodeableConcept of (system, code) pairs."""
    return {"coding": [{"system": system, "code": code} for system, code in codings]}


def identifier(value: str, system: str = ID_SYSTEM) -> list[dict[str, str]]:
    """A one-element identifier list."""
    return [{"system": system, "value": value}]


def patient(id_: str, family: str, *given: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, "active": True,
            "name": [{"family": family, "given": list(given)}], **extra}


def practitioner(id_: str, family: str, *given: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": id_, "active": True,
            "name": [{"family": family, "given": list(given)}], **extra}


def organization(id_: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": id_, "active": True, "name": name, **extra}


def location(id_: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Location", "id": id_, "status": "active", "name": name, **extra}


def healthcare_service(id_: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "HealthcareService", "id": id_, "active": True, "name": name, **extra}


def practitioner_role(id_: str, *, practitioner_id: str, organization_id: str | None = None,
                      location_id: str | None = None, **extra: Any) -> dict[str, Any]:
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": id_, "active": True,
                            "practitioner": ref(f"Practitioner/{practitioner_id}")}
    if organization_id:
        role["organization"] = ref(f"Organization/{organization_id}")
    if location_id:
        role["location"] = [ref(f"Location/{location_id}")]
    return role | extra


def device(id_: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Device", "id": id_, "status": "active", **extra}


def schedule(id_: str, *actors: str, start: str | None = None, end: str | None = None,
             active: bool = True, **extra: Any) -> dict[str, Any]:
    """A Schedule for `actors` ("Type/id"), planning horizon `[start, end]` when given."""
    body: dict[str, Any] = {"resourceType": "Schedule", "id": id_, "active": active,
                            "actor": [ref(a) for a in actors]}
    if start or end:
        body["planningHorizon"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    return body | extra


def slot(id_: str, schedule_id: str, start: str, end: str, *, status: str = "free",
         **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Slot", "id": id_, "schedule": ref(f"Schedule/{schedule_id}"),
            "status": status, "start": start, "end": end, **extra}


def appointment(id_: str, *actors: str, status: str = "booked", start: str | None = None,
                end: str | None = None, part_status: str = "accepted",
                **extra: Any) -> dict[str, Any]:
    """An Appointment with one participant per actor ("Type/id"), all with `part_status`."""
    body: dict[str, Any] = {
        "resourceType": "Appointment", "id": id_, "status": status,
        "participant": [{"actor": ref(a), "status": part_status} for a in actors],
    }
    if start:
        body["start"], body["end"] = start, end
    return body | extra


def appointment_response(id_: str, appointment_id: str, actor: str, *,
                         part_status: str = "accepted") -> dict[str, Any]:
    return {"resourceType": "AppointmentResponse", "id": id_,
            "appointment": ref(f"Appointment/{appointment_id}"), "actor": ref(actor),
            "participantStatus": part_status}


def communication(id_: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Communication", "id": id_, "status": "completed", **extra}


def communication_request(id_: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "CommunicationRequest", "id": id_, "status": "active", **extra}


async def put(client: httpx.AsyncClient, *resources: dict[str, Any]) -> None:
    """Store resources with their own ids (PUT), failing loudly on a refused one."""
    for resource in resources:
        response = await client.put(f"{resource['resourceType']}/{resource['id']}",
                                    json=resource)
        assert response.status_code in (200, 201), response.text


async def post(client: httpx.AsyncClient, resource: dict[str, Any]) -> str:
    """Create a resource with a server id (POST) and return that id."""
    body = {k: v for k, v in resource.items() if k != "id"}
    response = await client.post(resource["resourceType"], json=body)
    assert response.status_code == 201, response.text
    created_id: str = response.json()["id"]
    return created_id


async def search(client: httpx.AsyncClient, query: str, *,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    """GET a search URL relative to the base and return the searchset Bundle (200 required)."""
    response = await client.get(query, headers=headers)
    assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle


def entries(bundle: dict[str, Any], mode: str | None = None) -> list[dict[str, Any]]:
    """The resources of a searchset, optionally only those with `search.mode == mode`."""
    return [e["resource"] for e in bundle.get("entry", [])
            if mode is None or e.get("search", {}).get("mode") == mode]


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    """Ids of the entries in `mode`, in Bundle order."""
    return [r["id"] for r in entries(bundle, mode)]


def typed_ids(bundle: dict[str, Any], mode: str = "match") -> set[str]:
    """`Type/id` of the entries in `mode`."""
    return {f"{r['resourceType']}/{r['id']}" for r in entries(bundle, mode)}


async def found(client: httpx.AsyncClient, query: str) -> set[str]:
    """The ids a search matches (one page; tests keep result sets small)."""
    return set(ids(await search(client, query)))


def link(bundle: dict[str, Any], relation: str) -> str | None:
    """The url of a Bundle link relation, or None."""
    for item in bundle.get("link", []):
        if item["relation"] == relation:
            url: str = item["url"]
            return url
    return None


def relative(url: str) -> str:
    """A link from the server (absolute, under the base) as a path the client can follow."""
    parts = urlsplit(url)
    path = parts.path.removeprefix("/fhir/")
    return f"{path}?{parts.query}" if parts.query else path
