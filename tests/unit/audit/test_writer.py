"""The audit writer never blocks a request: a full queue drops (and counts); stop flushes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from fhir_server.audit.events import AuditRecord
from fhir_server.audit.metrics import AUDIT_EVENTS_DROPPED
from fhir_server.audit.writer import AuditWriter
from fhir_server.fhir.search.parameters import load_registry
from fhir_server.services.context import FhirContext
from fhir_server.store.protocol import VersionWrite

CAPABILITY = Path(__file__).resolve().parents[3] / "capability"


class RecordingStore:
    """Only `commit`, which is all the writer uses."""

    def __init__(self) -> None:
        self.batches: list[list[VersionWrite]] = []

    async def commit(self, writes: Sequence[VersionWrite]) -> list[object]:
        self.batches.append(list(writes))
        return []


def writer_with(store: RecordingStore, queue_size: int = 100) -> AuditWriter:
    ctx = FhirContext(store=store, registry=load_registry(CAPABILITY),  # type: ignore[arg-type]
                      base_url="http://x/fhir")
    return AuditWriter(ctx, queue_size=queue_size)


def a_read(id_: str) -> AuditRecord:
    return AuditRecord("read", 200, datetime.now(UTC), resource_type="Slot", resource_id=id_)


async def test_stop_flushes_queued_records_in_one_batch_with_server_ids() -> None:
    store = RecordingStore()
    writer = writer_with(store)
    for i in range(3):
        writer.submit(a_read(f"s{i}"))
    writer.start()
    await writer.stop()

    [batch] = store.batches
    assert [w.resource_type for w in batch] == ["AuditEvent"] * 3
    assert len({w.id for w in batch}) == 3 and all(w.version_id == 1 for w in batch)
    assert any(entry for entry in batch[0].index)  # indexed for AuditEvent searches


async def test_a_full_queue_drops_and_counts_instead_of_waiting() -> None:
    before = AUDIT_EVENTS_DROPPED._value.get()
    writer = writer_with(RecordingStore(), queue_size=2)
    for i in range(5):
        writer.submit(a_read(f"s{i}"))

    assert writer.dropped == 3
    assert AUDIT_EVENTS_DROPPED._value.get() - before == 3
