"""The `fhir-scheduler` command as an operator runs it: seed, serve, and a clear start-up error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def running_server(tmp_path: Path, *serve_args: str, **settings: str) -> Iterator[str]:
    """`fhir-scheduler serve` on a free port until the block ends; yields the FHIR base URL
    once `/readyz` answers."""
    with serving(tmp_path, *serve_args, **settings) as (base, _):
        yield base


@contextmanager
def serving(tmp_path: Path, *serve_args: str,
            **settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`running_server` that also yields the `serve` process, for tests of its children."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    process = subprocess.Popen(CLI + ["serve", "--port", str(port), *serve_args],
                               env=cli_env(tmp_path, base_url=base, **settings),
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
        yield base, process
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`fhir-scheduler serve --seed-if-empty` on a free port; yields the FHIR base URL."""
    with running_server(tmp_path, "--seed-if-empty") as base:
        yield base


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


def cli_token(tmp_path: Path, base: str, *args: str) -> str:
    """`fhir-scheduler token ...` for the deployment under `tmp_path`, as an operator runs it."""
    result = subprocess.run(CLI + ["token", *args], env=cli_env(tmp_path, base_url=base),
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_serve_answers_metadata_and_has_demo_data_for_a_cli_token(
        served: str, tmp_path: Path) -> None:
    token = cli_token(tmp_path, served, "--scope", "user/*.cruds", "--role", "administrator")
    auth = {"Authorization": f"Bearer {token}"}

    metadata = httpx.get(f"{served}/metadata")
    anonymous = httpx.get(f"{served}/Practitioner/dr-amara-okafor")
    practitioner = httpx.get(f"{served}/Practitioner/dr-amara-okafor", headers=auth)
    free_slots = httpx.get(f"{served}/Slot", params={"status": "free", "_summary": "count"},
                           headers=auth)

    assert metadata.status_code == 200
    assert metadata.json()["fhirVersion"] == "4.0.1"
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert practitioner.status_code == 200
    assert free_slots.json()["total"] > 0


def test_a_cli_patient_token_sees_only_that_patients_appointments(
        served: str, tmp_path: Path) -> None:
    token = cli_token(tmp_path, served, "--scope", "patient/*.rs", "--patient", "maria-garcia",
                      "--fhir-user", "Patient/maria-garcia", "--role", "patient")

    found = httpx.get(f"{served}/Appointment", headers={"Authorization": f"Bearer {token}"})

    assert found.status_code == 200
    patients = {participant["actor"]["reference"]
                for entry in found.json().get("entry", [])
                for participant in entry["resource"]["participant"]
                if participant["actor"].get("reference", "").startswith("Patient/")}
    assert patients <= {"Patient/maria-garcia"}


def test_token_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = subprocess.run(CLI + ["token", "--scope", "user/*.rs", "--role", "boss"],
                            env=cli_env(tmp_path), capture_output=True, text=True)

    assert result.returncode == 2 and "Unknown fhir_scheduler_role 'boss'" in result.stderr


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
