"""Version stamps, If-Match, conditional create with If-None-Exist, and `Prefer: return`."""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime

import httpx
import orjson
import pytest

from fhir_server.fhir.instants import parse_instant
from tests.e2e.checks import created, outcome_issues, versions_written
from tests.e2e.factories import make_patient

PATCH_HEADERS = {"Content-Type": "application/json-patch+json"}
ADD_LANGUAGE = orjson.dumps([{"op": "add", "path": "/language", "value": "es"}])


def assert_stamped(response: httpx.Response, version: int) -> None:
    """Body meta, ETag and Last-Modified all describe version `version`."""
    meta = response.json()["meta"]
    assert meta["versionId"] == str(version)
    assert response.headers["etag"] == f'W/"{version}"'
    last_updated = parse_instant(meta["lastUpdated"])
    assert last_updated.tzinfo is not None
    header = parsedate_to_datetime(response.headers["last-modified"])
    assert header == last_updated.replace(microsecond=0)


async def test_every_write_stamps_a_new_version_and_a_later_last_updated(
        client: httpx.AsyncClient) -> None:
    create = await client.post("Patient", json=make_patient(
        meta={"versionId": "99", "lastUpdated": "2001-01-01T00:00:00Z"}))
    assert create.status_code == 201
    assert_stamped(create, 1)
    patient = create.json()
    url = f"Patient/{patient['id']}"
    await asyncio.sleep(0.005)

    update = await client.put(url, json={**patient, "active": False})
    assert_stamped(update, 2)
    await asyncio.sleep(0.005)
    patch = await client.patch(url, content=ADD_LANGUAGE, headers=PATCH_HEADERS)
    assert_stamped(patch, 3)

    stamps = [parse_instant(r.json()["meta"]["lastUpdated"]) for r in (create, update, patch)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert (await client.get(url)).json() == patch.json()


async def test_update_with_the_current_version_in_if_match_succeeds(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    response = await client.put(f"Patient/{patient['id']}", json={**patient, "active": False},
                                headers={"If-Match": 'W/"1"'})

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_stale_if_match_is_412_and_writes_nothing(client: httpx.AsyncClient,
                                                          method: str) -> None:
    patient = await created(client, make_patient())
    url = f"Patient/{patient['id']}"
    await client.put(url, json={**patient, "gender": "other"})  # now at version 2

    if method == "PUT":
        response = await client.put(url, json={**patient, "active": False},
                                    headers={"If-Match": 'W/"1"'})
    else:
        response = await client.patch(url, content=ADD_LANGUAGE,
                                      headers={**PATCH_HEADERS, "If-Match": 'W/"1"'})

    outcome_issues(response, 412)
    current = await client.get(url)
    assert current.headers["etag"] == 'W/"2"'
    assert current.json()["active"] is True
    assert "language" not in current.json()
    assert (await client.get(f"{url}/_history")).json()["total"] == 2


async def test_a_delete_with_a_stale_if_match_is_412_and_deletes_nothing(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())
    url = f"Patient/{patient['id']}"
    await client.put(url, json={**patient, "active": False})

    stale = await client.delete(url, headers={"If-Match": 'W/"1"'})

    outcome_issues(stale, 412)
    assert (await client.get(url)).headers["etag"] == 'W/"2"'
    assert (await client.delete(url, headers={"If-Match": 'W/"2"'})).status_code == 204
    outcome_issues(await client.get(url), 410)


async def test_if_match_on_a_resource_that_does_not_exist_is_412(
        client: httpx.AsyncClient) -> None:
    response = await client.put("Patient/nobody", json=make_patient(id="nobody"),
                                headers={"If-Match": 'W/"1"'})

    outcome_issues(response, 412)
    outcome_issues(await client.get("Patient/nobody"), 404)


async def test_an_if_match_that_is_not_a_version_etag_is_400(client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    response = await client.put(f"Patient/{patient['id']}", json=patient,
                                headers={"If-Match": "yesterday"})

    outcome_issues(response, 400)
    assert (await client.get(f"Patient/{patient['id']}")).headers["etag"] == 'W/"1"'


async def test_conditional_create_with_no_match_creates(client: httpx.AsyncClient) -> None:
    await created(client, make_patient(family="Reyes"))

    response = await client.post("Patient", json=make_patient(family="Okafor"),
                                 headers={"If-None-Exist": "family=Okafor"})

    assert response.status_code == 201, response.text
    assert response.headers["etag"] == 'W/"1"'
    found = (await client.get("Patient", params={"family": "Okafor"})).json()
    assert found["total"] == 1


async def test_conditional_create_with_one_match_returns_it_and_creates_nothing(
        client: httpx.AsyncClient) -> None:
    existing = await created(client, make_patient(family="Okafor"))
    before = await versions_written(client)

    response = await client.post("Patient", json=make_patient(family="Okafor", gender="male"),
                                 headers={"If-None-Exist": "family=Okafor"})

    assert response.status_code == 200, response.text
    assert response.json() == existing
    assert response.headers["etag"] == 'W/"1"'
    assert await versions_written(client) == before


async def test_conditional_create_with_several_matches_is_412_and_creates_nothing(
        client: httpx.AsyncClient) -> None:
    await created(client, make_patient(family="Okafor"))
    await created(client, make_patient(family="Okafor"))
    before = await versions_written(client)

    response = await client.post("Patient", json=make_patient(family="Okafor"),
                                 headers={"If-None-Exist": "family=Okafor"})

    outcome_issues(response, 412)
    assert await versions_written(client) == before
    assert (await client.get("Patient", params={"family": "Okafor"})).json()["total"] == 2


async def test_prefer_return_minimal_sends_headers_and_no_body(
        client: httpx.AsyncClient) -> None:
    response = await client.post("Patient", json=make_patient(),
                                 headers={"Prefer": "return=minimal"})

    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers
    location = response.headers["location"]
    assert location.endswith("/_history/1")
    assert (await client.get(location)).json()["name"][0]["family"] == "Okafor"


async def test_prefer_return_representation_sends_the_stored_resource(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    response = await client.put(f"Patient/{patient['id']}", json={**patient, "active": False},
                                headers={"Prefer": "return=representation"})

    assert response.status_code == 200
    assert response.json() == (await client.get(f"Patient/{patient['id']}")).json()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_prefer_return_operation_outcome_reports_the_write(client: httpx.AsyncClient,
                                                                 method: str) -> None:
    patient = await created(client, make_patient())
    url = f"Patient/{patient['id']}"
    prefer = {"Prefer": "return=OperationOutcome"}

    if method == "POST":
        response = await client.post("Patient", json=make_patient(), headers=prefer)
    elif method == "PUT":
        response = await client.put(url, json={**patient, "active": False}, headers=prefer)
    else:
        response = await client.patch(url, content=ADD_LANGUAGE, headers={**PATCH_HEADERS,
                                                                           **prefer})

    assert response.status_code == (201 if method == "POST" else 200), response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "information"
    assert response.headers["etag"] == ('W/"1"' if method == "POST" else 'W/"2"')
    assert "location" in response.headers
