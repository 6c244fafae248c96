"""Create, read, vread, update, patch and delete of every resource type clients write."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from fhir_server.fhir.resource_types import CLIENT_WRITTEN_TYPES
from tests.e2e.checks import created, outcome_issues
from tests.e2e.factories import make_minimal, make_patient

BASE = "http://testserver/fhir"
NOTE_URL = "http://example.org/fhir/StructureDefinition/note"

every_type = pytest.mark.parametrize("resource_type", CLIENT_WRITTEN_TYPES)


def with_note(resource: dict[str, Any], note: str) -> dict[str, Any]:
    """The resource with one more (generic, always allowed) extension carrying `note`."""
    extensions = [*resource.get("extension", []), {"url": NOTE_URL, "valueString": note}]
    return {**resource, "extension": extensions}


def note_of(resource: dict[str, Any]) -> str | None:
    notes = [e["valueString"] for e in resource.get("extension", []) if e["url"] == NOTE_URL]
    return notes[-1] if notes else None


@every_type
async def test_create_assigns_an_id_and_answers_201_with_location_and_etag(
        client: httpx.AsyncClient, resource_type: str) -> None:
    response = await client.post(resource_type, json=make_minimal(resource_type))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["resourceType"] == resource_type
    assert body["id"]
    assert body["meta"]["versionId"] == "1"
    assert response.headers["location"] == f"{BASE}/{resource_type}/{body['id']}/_history/1"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"].endswith("GMT")


async def test_create_ignores_a_client_supplied_id(client: httpx.AsyncClient) -> None:
    body = await created(client, make_patient(id="my-own-id"))

    assert body["id"] != "my-own-id"
    assert (await client.get("Patient/my-own-id")).status_code == 404


@every_type
async def test_read_returns_what_create_stored(client: httpx.AsyncClient,
                                               resource_type: str) -> None:
    stored = await created(client, make_minimal(resource_type))

    response = await client.get(f"{resource_type}/{stored['id']}")

    assert response.status_code == 200
    assert response.json() == stored
    assert response.headers["etag"] == 'W/"1"'


@every_type
async def test_update_makes_version_2_and_vread_still_serves_version_1(
        client: httpx.AsyncClient, resource_type: str) -> None:
    first = await created(client, make_minimal(resource_type))
    url = f"{resource_type}/{first['id']}"

    response = await client.put(url, json=with_note(first, "second thoughts"))

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["location"] == f"{BASE}/{url}/_history/2"
    assert response.json()["meta"]["versionId"] == "2"
    assert note_of((await client.get(url)).json()) == "second thoughts"
    old = await client.get(f"{url}/_history/1")
    assert old.status_code == 200
    assert old.json() == first
    assert note_of(old.json()) is None
    assert (await client.get(f"{url}/_history/2")).json()["meta"]["versionId"] == "2"


@every_type
async def test_update_with_a_client_id_creates_the_resource(client: httpx.AsyncClient,
                                                            resource_type: str) -> None:
    resource = {**make_minimal(resource_type), "id": "client-chosen-1"}

    response = await client.put(f"{resource_type}/client-chosen-1", json=resource)

    assert response.status_code == 201, response.text
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == \
        f"{BASE}/{resource_type}/client-chosen-1/_history/1"
    read = await client.get(f"{resource_type}/client-chosen-1")
    assert read.status_code == 200
    assert read.json()["meta"]["versionId"] == "1"


@every_type
async def test_json_patch_changes_the_resource_and_bumps_the_version(
        client: httpx.AsyncClient, resource_type: str) -> None:
    stored = await created(client, make_minimal(resource_type))
    url = f"{resource_type}/{stored['id']}"
    operations = [{"op": "add", "path": "/language", "value": "es"}]

    response = await client.patch(url, content=orjson.dumps(operations),
                                  headers={"Content-Type": "application/json-patch+json"})

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    current = (await client.get(url)).json()
    assert current["language"] == "es"
    assert current["meta"]["versionId"] == "2"
    assert "language" not in (await client.get(f"{url}/_history/1")).json()


async def test_a_patch_that_breaks_the_resource_is_refused_and_not_stored(
        client: httpx.AsyncClient) -> None:
    stored = await created(client, make_minimal("Appointment"))
    url = f"Appointment/{stored['id']}"
    operations = [{"op": "replace", "path": "/status", "value": "bogus"}]

    response = await client.patch(url, content=orjson.dumps(operations),
                                  headers={"Content-Type": "application/json-patch+json"})

    outcome_issues(response, 422)
    assert (await client.get(url)).json() == stored


async def test_a_patch_sent_as_plain_json_is_refused(client: httpx.AsyncClient) -> None:
    stored = await created(client, make_patient())
    operations = [{"op": "add", "path": "/language", "value": "es"}]

    response = await client.patch(f"Patient/{stored['id']}", json=operations)

    outcome_issues(response, 415)
    assert "language" not in (await client.get(f"Patient/{stored['id']}")).json()


@every_type
async def test_delete_answers_204_then_read_is_gone_and_history_keeps_the_past(
        client: httpx.AsyncClient, resource_type: str) -> None:
    stored = await created(client, make_minimal(resource_type))
    url = f"{resource_type}/{stored['id']}"

    response = await client.delete(url)

    assert response.status_code == 204
    assert response.content == b""
    outcome_issues(await client.get(url), 410)
    old = await client.get(f"{url}/_history/1")
    assert old.status_code == 200
    assert old.json() == stored
    history = (await client.get(f"{url}/_history")).json()
    assert history["total"] == 2
    deletion, creation = history["entry"]
    assert deletion["request"] == {"method": "DELETE", "url": url}
    assert deletion["response"]["etag"] == 'W/"2"'
    assert "resource" not in deletion
    assert creation["request"]["method"] == "POST"
    outcome_issues(await client.get(f"{url}/_history/2"), 410)


async def test_a_deleted_resource_can_be_brought_back_by_update(
        client: httpx.AsyncClient) -> None:
    stored = await created(client, make_patient())
    url = f"Patient/{stored['id']}"
    await client.delete(url)

    response = await client.put(url, json=make_patient(id=stored["id"], family="Back"))

    assert response.status_code == 201, response.text
    assert response.headers["etag"] == 'W/"3"'
    assert (await client.get(url)).json()["name"][0]["family"] == "Back"


async def test_reading_an_unknown_id_is_404_and_deleting_it_is_harmless(
        client: httpx.AsyncClient) -> None:
    outcome_issues(await client.get("Patient/never-was"), 404)
    outcome_issues(await client.get("Patient/never-was/_history/1"), 404)

    assert (await client.delete("Patient/never-was")).status_code == 204
    outcome_issues(await client.get("Patient/never-was"), 404)


async def test_vread_of_a_version_that_does_not_exist_is_404(client: httpx.AsyncClient) -> None:
    stored = await created(client, make_patient())

    outcome_issues(await client.get(f"Patient/{stored['id']}/_history/7"), 404)
    outcome_issues(await client.get(f"Patient/{stored['id']}/_history/latest"), 404)


async def test_patching_a_missing_resource_is_404(client: httpx.AsyncClient) -> None:
    operations = [{"op": "add", "path": "/language", "value": "es"}]

    response = await client.patch("Patient/never-was", content=orjson.dumps(operations),
                                  headers={"Content-Type": "application/json-patch+json"})

    outcome_issues(response, 404)
    outcome_issues(await client.get("Patient/never-was"), 404)
