"""The `fhir-scheduler` command as an operator runs it: seed, serve, and a clear start-up error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-m", "fhir_server"]


def cli_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a fresh deployment whose data lives under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_SCHEDULER_")}
    env["FHIR_SCHEDULER_DATA_DIR"] = str(tmp_path)
    env["FHIR_SCHEDULER_STORE_URL"] = f"sqlite:///{tmp_path / 'fhir.db'}"
    env.update({f"FHIR_SCHEDULER_{k.upper()}": v for k, v in settings.items()})
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`fhir-scheduler serve --seed-if-empty` on a free port; yields the FHIR base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    process = subprocess.Popen(CLI + ["serve", "--port", str(port), "--seed-if-empty"],
                               env=cli_env(tmp_path, base_url=base),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not become ready")
        yield base
    finally:
        process.terminate()
        process.wait(10)


def test_seed_loads_the_demo_clinic_once(tmp_path: Path) -> None:
    first = subprocess.run(CLI + ["seed"], env=cli_env(tmp_path), capture_output=True,
                           text=True, check=True)
    again = subprocess.run(CLI + ["seed"], env=cli_env(tmp_path), capture_output=True,
                           text=True, check=True)

    assert "Loaded" in first.stdout and not first.stdout.startswith("Loaded 0 ")
    assert again.stdout.startswith("Loaded 0 demo resources")


def test_generate_slots_after_seeding_has_nothing_to_do_until_the_window_grows(
        tmp_path: Path) -> None:
    subprocess.run(CLI + ["seed"], env=cli_env(tmp_path), check=True, capture_output=True)

    every = subprocess.run(CLI + ["generate-slots"], env=cli_env(tmp_path), capture_output=True,
                           text=True, check=True)
    longer = subprocess.run(CLI + ["generate-slots", "--schedule", "schedule-ecg-machine-1",
                                   "--days", "42"],
                            env=cli_env(tmp_path), capture_output=True, text=True, check=True)
    unknown = subprocess.run(CLI + ["generate-slots", "--schedule", "nope"],
                             env=cli_env(tmp_path), capture_output=True, text=True)

    lines = every.stdout.strip().splitlines()
    assert len(lines) == 6 and all(" 0 created, 0 updated, 0 removed" in line for line in lines)
    assert longer.stdout.startswith("Schedule/schedule-ecg-machine-1: ")
    assert int(longer.stdout.split(": ")[1].split(" created")[0]) >= 7 * 7  # two more weeks
    assert unknown.returncode == 2 and "Schedule/nope is not known" in unknown.stderr


def test_serve_answers_metadata_and_has_demo_data(served: str) -> None:
    metadata = httpx.get(f"{served}/metadata")
    practitioner = httpx.get(f"{served}/Practitioner/dr-amara-okafor")
    free_slots = httpx.get(f"{served}/Slot", params={"status": "free", "_summary": "count"})

    assert metadata.status_code == 200
    assert metadata.json()["fhirVersion"] == "4.0.1"
    assert practitioner.status_code == 200
    assert free_slots.json()["total"] > 0


def test_unreachable_mongodb_stops_serve_with_one_line(tmp_path: Path) -> None:
    closed_port = free_port()
    result = subprocess.run(
        CLI + ["serve", "--port", str(free_port())],
        env=cli_env(tmp_path, store_url=f"mongodb://127.0.0.1:{closed_port}/x",
                    mongo_timeout_ms="300"),
        capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot use the store" in lines[0]
