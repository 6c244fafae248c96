"""Real reminder processes for tests and the benchmark: a private Redis, `fhir-scheduler
worker`/`beat` subprocesses, an SMTP sink counting Message-IDs, and due reminders in a store."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from fhir_server.fhir.instants import format_instant
from fhir_server.notify.messages import MessageKind
from fhir_server.scheduling.message_plan import NewRequest, reminder_key
from fhir_server.services.outbox import request_resource
from fhir_server.services.versions import next_version
from fhir_server.services.wiring import make_context
from fhir_server.settings import REPO_ROOT
from fhir_server.store.factory import open_store_for_url
from tests.support.smtp_sink import free_port

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.I | re.M)
SEED_BATCH = 500


@dataclass
class CountingSink:
    """An SMTP handler keeping (Message-ID, arrival time) per accepted message; `delay_s`
    slows each DATA so a burst takes a while."""

    delay_s: float = 0.0
    received: list[tuple[str, float]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        match = _MESSAGE_ID.search(envelope.original_content or b"")
        self.received.append((match.group(1).decode() if match else "", time.time()))
        return "250 Message accepted for delivery"

    def distinct(self) -> set[str]:
        return {message_id for message_id, _ in self.received}


@contextmanager
def counting_smtp_sink(delay_s: float = 0.0) -> Iterator[tuple[CountingSink, int]]:
    """A running sink and its port."""
    sink, port = CountingSink(delay_s), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence), so parallel runs never share
    queues; the machine's Redis on 6379 with a spare database if the binary is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield f"redis://127.0.0.1:6379/{os.getpid() % 14 + 1}"
        return
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), timeout_s=10, what="redis-server to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def process_env(data_dir: Path, *, broker_url: str, smtp_port: int,
                **settings: str) -> dict[str, str]:
    """The environment of a worker or beat on `data_dir`'s SQLite store."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("FHIR_SCHEDULER_")}
    env.update({"FHIR_SCHEDULER_STORE_URL": f"sqlite:///{data_dir / 'fhir.db'}",
                "FHIR_SCHEDULER_DATA_DIR": str(data_dir),
                "FHIR_SCHEDULER_BROKER_URL": broker_url,
                "FHIR_SCHEDULER_SMTP_HOST": "127.0.0.1",
                "FHIR_SCHEDULER_SMTP_PORT": str(smtp_port),
                "FHIR_SCHEDULER_SMTP_FROM": "Clinic <no-reply@clinic.example>",
                "FHIR_SCHEDULER_LOG_LEVEL": "WARNING"})
    env.update({f"FHIR_SCHEDULER_{key.upper()}": value for key, value in settings.items()})
    return env


def start(command: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`fhir-scheduler <command>` as a subprocess, its output in `log`."""
    with log.open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", "fhir_server", command, *args], env=env,
                                stdout=output, stderr=subprocess.STDOUT, cwd=REPO_ROOT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str,
               interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


async def seed_due_reminders(store_url: str, count: int, *, now: datetime,
                             email: str = "maria@example.org") -> list[str]:
    """A patient and `count` booked appointments tomorrow, each with a reminder due `now`;
    the reminders' ids. The appointments are dated two hours back, so the outbox's repair scan
    (which plans for recent bookings without a confirmation) leaves them alone."""
    store = open_store_for_url(store_url)
    await store.open()
    try:
        ctx = make_context(store, capability_dir=REPO_ROOT / "capability",
                           base_url="http://127.0.0.1:8080/fhir")
        patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Garcia",
                                                                    "given": ["Maria"]}],
                   "telecom": [{"system": "email", "value": email}]}
        await store.commit([next_version(ctx, patient, resource_type="Patient", id="p1",
                                         current=None, now=now, method="POST")])
        ids: list[str] = []
        booked_at = datetime.now(UTC) - timedelta(hours=2)
        for first in range(0, count, SEED_BATCH):
            writes = []
            for n in range(first, min(first + SEED_BATCH, count)):
                appointment, request = _reminder_pair(f"bench-{n}", now)
                ids.append(request["id"])
                writes += [next_version(ctx, appointment, resource_type="Appointment",
                                        id=appointment["id"], current=None,
                                        now=booked_at, method="POST"),
                           next_version(ctx, request, resource_type="CommunicationRequest",
                                        id=request["id"], current=None, now=now,
                                        method="POST")]
            await store.commit(writes)
        return ids
    finally:
        await store.close()


def _reminder_pair(id: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    start = now + timedelta(days=1)
    appointment = {"resourceType": "Appointment", "id": id, "status": "booked",
                   "start": format_instant(start),
                   "end": format_instant(start + timedelta(minutes=30)),
                   "participant": [{"actor": {"reference": "Patient/p1"},
                                    "status": "accepted"}]}
    new = NewRequest(reminder_key(id, 24), MessageKind.REMINDER, now, id, "Patient/p1",
                     "Reminder: appointment tomorrow")
    return appointment, request_resource(new, now=now)
