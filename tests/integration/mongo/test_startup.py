"""Start-up of the MongoDB adapter: idempotent index creation, database choice, clear outages."""

from __future__ import annotations

import socket
import time

import pytest

from fhir_server.fhir.errors import StoreUnavailable
from fhir_server.store.mongo import MongoStore

from .conftest import slot_version

pytestmark = pytest.mark.mongo

RESOURCE_INDEX_KEYS = {
    "type_id": [("type", 1), ("id", 1)],
    "type_updated": [("type", 1), ("updated_us", 1)],
    "type_token": [("type", 1), ("tok.p", 1), ("tok.c", 1)],
    "type_reference": [("type", 1), ("ref.p", 1), ("ref.i", 1)],
    "type_date": [("type", 1), ("dt.p", 1), ("dt.lo", 1), ("dt.hi", 1)],
    "type_string": [("type", 1), ("str.p", 1), ("str.n", 1)],
}


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def index_keys(store: MongoStore, collection: str) -> dict[str, list[tuple[str, int]]]:
    """Index name -> key pattern, as the server reports them."""
    client = store._client_or_raise()
    info = await client[store.database_name][collection].index_information()
    return {name: [(field, int(order)) for field, order in spec["key"]]
            for name, spec in info.items()}


async def test_opening_twice_and_from_a_second_instance_keeps_indexes_and_data(
        store: MongoStore, mongodb_uri: str) -> None:
    await store.commit([slot_version("s1", 1, status="free")])
    before = await index_keys(store, "resources")

    await store.open()
    again = MongoStore(mongodb_uri, database=store.database_name, timeout_ms=5000)
    await again.open()
    try:
        assert await index_keys(again, "resources") == before
        current = await again.read("Slot", "s1")
        assert current is not None and current.version_id == 1
    finally:
        await again.close()


async def test_open_creates_the_search_and_history_indexes(store: MongoStore) -> None:
    client = store._client_or_raise()
    resources = await client[store.database_name]["resources"].index_information()
    versions = await client[store.database_name]["versions"].index_information()

    for name, keys in RESOURCE_INDEX_KEYS.items():
        assert [(f, int(o)) for f, o in resources[name]["key"]] == keys
    assert resources["type_id"].get("unique") is True
    assert [(f, int(o)) for f, o in versions["type_id_version"]["key"]] == [
        ("type", 1), ("id", 1), ("version_id", 1)]
    assert versions["type_id_version"].get("unique") is True


def test_database_comes_from_the_argument_then_the_url_then_the_default() -> None:
    assert MongoStore("mongodb://h:1/urldb", database="argdb").database_name == "argdb"
    assert MongoStore("mongodb://u:p@h:1,h2:2/urldb?replicaSet=rs").database_name == "urldb"
    assert MongoStore("mongodb://h:1/?replicaSet=rs").database_name == "fhir_scheduler"
    assert MongoStore("mongodb://h:1").database_name == "fhir_scheduler"


async def test_an_unreachable_server_fails_fast_with_a_one_line_store_unavailable() -> None:
    port = closed_port()
    store = MongoStore(f"mongodb://user:secret@127.0.0.1:{port}/x", timeout_ms=300)
    started = time.monotonic()

    with pytest.raises(StoreUnavailable) as caught:
        await store.open()

    message = str(caught.value)
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in message and "\n" not in message
    assert "secret" not in message
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_ping_answers_while_open_and_reports_unavailable_once_closed(
        store: MongoStore) -> None:
    await store.ping()
    await store.close()

    with pytest.raises(StoreUnavailable, match="not open"):
        await store.ping()
