"""`_history` at instance, type and system level, with `_since`, `_count` and paging links."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.checks import created, outcome_issues
from tests.e2e.factories import make_patient, make_practitioner


async def write_patient_versions(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """One patient written `count` times, a few milliseconds apart; every version returned."""
    versions = [await created(client, make_patient(family="V1"))]
    for n in range(2, count + 1):
        await asyncio.sleep(0.005)  # distinct lastUpdated milliseconds for `_since`
        current = {**versions[-1], "name": [{"family": f"V{n}"}]}
        response = await client.put(f"Patient/{current['id']}", json=current)
        assert response.status_code == 200, response.text
        versions.append(response.json())
    return versions


async def all_pages(client: httpx.AsyncClient, url: str,
                    params: dict[str, str]) -> list[dict[str, Any]]:
    """Every Bundle of a paged interaction, following `next` links to the end."""
    pages = [(await client.get(url, params=params)).json()]
    while next_url := link(pages[-1], "next"):
        assert len(pages) < 20, "next links do not end"
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def link(bundle: dict[str, Any], relation: str) -> str | None:
    urls = [ln["url"] for ln in bundle.get("link", []) if ln["relation"] == relation]
    return urls[0] if urls else None


def version_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["response"]["etag"] for e in bundle.get("entry", [])]


async def test_instance_history_lists_every_version_newest_first(
        client: httpx.AsyncClient) -> None:
    versions = await write_patient_versions(client, 3)
    patient_id = versions[0]["id"]

    response = await client.get(f"Patient/{patient_id}/_history")

    assert response.status_code == 200
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    assert bundle["total"] == 3
    assert version_ids(bundle) == ['W/"3"', 'W/"2"', 'W/"1"']
    assert [e["resource"] for e in bundle["entry"]] == versions[::-1]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT", "POST"]


async def test_instance_history_since_leaves_out_older_versions(
        client: httpx.AsyncClient) -> None:
    versions = await write_patient_versions(client, 3)
    since = versions[1]["meta"]["lastUpdated"]

    response = await client.get(f"Patient/{versions[0]['id']}/_history",
                                params={"_since": since})

    assert response.status_code == 200, response.text
    assert response.json()["total"] == 2
    assert version_ids(response.json()) == ['W/"3"', 'W/"2"']


async def test_history_since_after_the_last_write_is_empty(client: httpx.AsyncClient) -> None:
    versions = await write_patient_versions(client, 2)

    response = await client.get(f"Patient/{versions[0]['id']}/_history",
                                params={"_since": "2999-01-01T00:00:00Z"})

    assert response.status_code == 200
    assert response.json()["total"] == 0
    assert "entry" not in response.json()


async def test_instance_history_pages_with_count_and_next_links(
        client: httpx.AsyncClient) -> None:
    versions = await write_patient_versions(client, 5)

    pages = await all_pages(client, f"Patient/{versions[0]['id']}/_history", {"_count": "2"})

    assert [len(p.get("entry", [])) for p in pages] == [2, 2, 1]
    assert all(p["total"] == 5 for p in pages)
    assert [v for p in pages for v in version_ids(p)] == \
        [f'W/"{n}"' for n in (5, 4, 3, 2, 1)]
    assert link(pages[0], "previous") is None
    assert link(pages[1], "previous") is not None


async def test_type_history_covers_only_that_type(client: httpx.AsyncClient) -> None:
    first = await created(client, make_patient(family="One"))
    second = await created(client, make_patient(family="Two"))
    await created(client, make_practitioner())
    await client.delete(f"Patient/{first['id']}")

    response = await client.get("Patient/_history")

    assert response.status_code == 200
    bundle = response.json()
    assert bundle["total"] == 3
    assert {e["fullUrl"].rsplit("/", 2)[-2] for e in bundle["entry"]} == {"Patient"}
    assert [e["request"]["method"] for e in bundle["entry"]] == ["DELETE", "POST", "POST"]
    assert bundle["entry"][1]["resource"] == second


async def test_type_history_pages_with_since_kept_in_the_next_link(
        client: httpx.AsyncClient) -> None:
    early = await created(client, make_patient(family="Early"))
    await asyncio.sleep(0.005)
    later = [await created(client, make_patient(family=f"Later{n}")) for n in range(3)]
    since = later[0]["meta"]["lastUpdated"]

    pages = await all_pages(client, "Patient/_history", {"_since": since, "_count": "2"})

    ids = [e["resource"]["id"] for p in pages for e in p["entry"]]
    assert sorted(ids) == sorted(p["id"] for p in later)
    assert early["id"] not in ids
    assert all("_since=" in link(p, "self") for p in pages)


async def test_system_history_spans_types_and_pages(client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())
    practitioner = await created(client, make_practitioner())
    await client.put(f"Patient/{patient['id']}", json={**patient, "active": False})

    pages = await all_pages(client, "_history", {"_count": "1"})

    assert len(pages) == 3
    entries = [e for p in pages for e in p["entry"]]
    assert [e["fullUrl"].split("/fhir/")[1] for e in entries] == [
        f"Patient/{patient['id']}", f"Practitioner/{practitioner['id']}",
        f"Patient/{patient['id']}"]
    assert entries[0]["response"]["etag"] == 'W/"2"'


async def test_system_history_since(client: httpx.AsyncClient) -> None:
    await created(client, make_patient())
    await asyncio.sleep(0.005)
    practitioner = await created(client, make_practitioner())

    response = await client.get("_history",
                                params={"_since": practitioner["meta"]["lastUpdated"]})

    assert response.json()["total"] == 1
    assert response.json()["entry"][0]["resource"] == practitioner


async def test_history_of_a_resource_that_never_existed_is_404(
        client: httpx.AsyncClient) -> None:
    outcome_issues(await client.get("Patient/never-was/_history"), 404)


async def test_history_refuses_unknown_parameters_and_bad_instants(
        client: httpx.AsyncClient) -> None:
    outcome_issues(await client.get("_history", params={"family": "Okafor"}), 400)
    outcome_issues(await client.get("_history", params={"_since": "yesterday"}), 400)
    outcome_issues(await client.get("_history", params={"_count": "many"}), 400)
