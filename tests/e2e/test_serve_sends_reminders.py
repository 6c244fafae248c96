"""`make run` alone sends reminders: plain `fhir-scheduler serve` starts a worker and beat on
the filesystem broker, a booking made over the API is confirmed by email, and stopping
`serve` stops its children."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_cli import cli_token, serving
from tests.support.smtp_sink import SmtpSink, running_smtp_sink

MARIA_EMAIL = "maria.garcia@example.com"  # the demo patient's address (seed/directory.py)


def children_of(pid: int) -> set[int]:
    """The live processes whose parent is `pid`, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(check: Callable[[], Any], *, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)
    return result


def book_first_free_slot(base: str, auth: dict[str, str]) -> str:
    """Book Maria into Dr. Okafor's first free slot; the Appointment id."""
    slots = httpx.get(f"{base}/Slot", headers=auth, params={
        "schedule": "Schedule/schedule-dr-amara-okafor", "status": "free", "_sort": "start",
        "_count": "1"}).json()
    slot = slots["entry"][0]["resource"]
    created = httpx.post(f"{base}/Appointment", headers=auth, json={
        "resourceType": "Appointment", "status": "booked", "start": slot["start"],
        "end": slot["end"], "slot": [{"reference": f"Slot/{slot['id']}"}],
        "participant": [
            {"actor": {"reference": "Patient/maria-garcia"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr-amara-okafor"}, "status": "accepted"}]})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def invites_for(sink: SmtpSink, appointment_id: str) -> list[Any]:
    """The emails to Maria whose calendar invite is for this appointment."""
    uid = f"UID:appointment-{appointment_id}@"
    return [m for m in sink.messages() if MARIA_EMAIL in str(m["To"]) and any(
        part.get_content_type() == "text/calendar" and uid in part.get_content()
        for part in m.walk())]


def communications_about(base: str, auth: dict[str, str], appointment_id: str) -> list[Any]:
    found = httpx.get(f"{base}/Communication", headers=auth, params={
        "subject": "Patient/maria-garcia", "status": "completed"}).json().get("entry", [])
    return [e["resource"] for e in found
            if e["resource"]["about"][0]["reference"] == f"Appointment/{appointment_id}"]


def test_plain_serve_confirms_a_booking_by_email_and_stops_its_workers(tmp_path: Path) -> None:
    with running_smtp_sink() as sink, serving(
            tmp_path, "--seed-if-empty", smtp_port=str(sink.port),
            dispatch_interval_s="0.5") as (base, process):
        auth = {"Authorization": "Bearer " + cli_token(
            tmp_path, base, "--scope", "user/*.cruds", "--role", "administrator")}
        dispatchers = wait_for(lambda: children_of(process.pid) or None, timeout_s=30)

        appointment_id = book_first_free_slot(base, auth)
        [invite] = wait_for(lambda: invites_for(sink, appointment_id))
        [sent] = wait_for(lambda: communications_about(base, auth, appointment_id))

        assert len(dispatchers) == 2  # a worker and beat
        assert invite["Message-ID"] and sent["basedOn"][0]["reference"].startswith(
            "CommunicationRequest/")
    wait_for(lambda: not any(alive(pid) for pid in dispatchers), timeout_s=20)
