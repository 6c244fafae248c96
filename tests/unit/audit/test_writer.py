"""The audit writer never drops a record: it batches, retries a failed append with the same
ids, makes requests wait when the backlog is too long, and flushes everything on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from fhir_server.audit.events import AuditRecord
from fhir_server.audit.writer import AuditWriter
from fhir_server.store.protocol import AuditEntry, AuditPage, LoggedAudit, StoreQuery
from fhir_server.store.timestamps import to_micros


class RecordingLog:
    """An audit log that keeps appended batches; it refuses the next `failures` appends."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[AuditEntry]] = []
        self.failures = failures
        self.release = asyncio.Event()
        self.release.set()

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        await self.release.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        self.batches.append(list(entries))

    async def read(self, id: str) -> LoggedAudit | None:
        raise NotImplementedError

    async def search(self, query: StoreQuery) -> AuditPage:
        raise NotImplementedError

    @property
    def ids(self) -> list[str]:
        return [entry.id for batch in self.batches for entry in batch]


def a_read(id_: str) -> AuditRecord:
    return AuditRecord("read", 200, to_micros(datetime.now(UTC)), resource_type="Slot",
                       resource_id=id_)


async def test_stop_flushes_buffered_records_in_one_batch_with_unique_ids() -> None:
    log = RecordingLog()
    writer = AuditWriter(log)
    writer.start()
    for i in range(3):
        writer.submit(a_read(f"s{i}"))
    await writer.stop()

    [batch] = log.batches
    assert [e.subtype for e in batch] == ["read"] * 3
    assert len(set(log.ids)) == 3
    assert [e.references for e in batch] == [(("entity", "Slot", f"s{i}"),) for i in range(3)]


async def test_the_background_task_flushes_within_the_interval() -> None:
    log = RecordingLog()
    writer = AuditWriter(log, flush_interval_s=0.01)
    writer.start()
    writer.submit(a_read("s1"))
    await asyncio.sleep(0.1)

    assert len(log.ids) == 1
    await writer.stop()


async def test_a_failed_append_is_retried_with_the_same_ids() -> None:
    log = RecordingLog(failures=2)
    writer = AuditWriter(log, flush_interval_s=0.005)
    writer.start()
    for i in range(5):
        writer.submit(a_read(f"s{i}"))
    await asyncio.sleep(0.1)
    await writer.stop()

    assert len(log.ids) == 5 and len(set(log.ids)) == 5


async def test_requests_wait_while_the_backlog_is_over_the_high_water_mark() -> None:
    log = RecordingLog()
    log.release.clear()  # the store is slow: nothing is written yet
    writer = AuditWriter(log, flush_interval_s=0.005, batch_size=2, high_water=4)
    writer.start()
    for i in range(4):
        writer.submit(a_read(f"s{i}"))
    assert writer.congested
    waiting = asyncio.create_task(writer.wait_for_room())
    await asyncio.sleep(0.05)
    assert not waiting.done()

    log.release.set()
    await asyncio.wait_for(waiting, 1)
    await writer.stop()
    assert len(log.ids) == 4
