"""The production shape: docker-compose.yml, the Dockerfile and the README tell one story."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("mongo", "redis", "api", "worker", "beat", "mailpit")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def production_shape_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Production shape\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert match, "README has no 'Production shape' section"
    return match.group(1)


def test_compose_runs_every_service_of_the_production_shape() -> None:
    assert set(SERVICES) <= set(compose()["services"])


def test_mongo_is_a_replica_set_that_initialises_itself() -> None:
    mongo = compose()["services"]["mongo"]
    assert mongo["image"].startswith("mongo:8")
    assert "--replSet" in mongo["command"]
    assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])


def test_the_api_uses_the_replica_set_and_redis() -> None:
    services = compose()["services"]
    environment = services["api"]["environment"]
    assert environment["FHIR_SCHEDULER_STORE_URL"].startswith("mongodb://mongo:27017/")
    assert "replicaSet=rs0" in environment["FHIR_SCHEDULER_STORE_URL"]
    assert environment["FHIR_SCHEDULER_BROKER_URL"].startswith("redis://redis:")
    assert services["worker"]["command"] == ["worker"]
    assert services["beat"]["command"] == ["beat"]


def test_readme_describes_each_compose_service_and_how_to_scale() -> None:
    section = production_shape_section()
    for service in SERVICES:
        assert f"**{service}**" in section, service
    for topic in ("replica set", "shard", "replicas", "workers"):
        assert topic in section, topic


def test_image_ships_what_the_server_reads_at_run_time() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("capability", "profiles"):
        assert f"COPY {folder} /app/{folder}" in dockerfile
        assert f"FHIR_SCHEDULER_{folder.upper()}_DIR=/app/{folder}" in dockerfile
