"""Write AuditEvents off the request path: a bounded queue drained in batches by one task.

A request only appends an `AuditRecord` to the queue (no I/O, no JSON, no index work), so
auditing costs a read a few microseconds. The task builds each AuditEvent, extracts its
search index and commits a batch of plain versions in one store call. When the queue is
full (the store is down or far behind) a record is dropped, counted and logged rather than
making clients wait; `stop` flushes what is queued before the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import orjson

from fhir_server.audit.events import AuditRecord, build_audit_event
from fhir_server.audit.metrics import audit_dropped
from fhir_server.services.context import FhirContext
from fhir_server.services.versions import new_id, next_version
from fhir_server.store.protocol import VersionWrite

log = logging.getLogger("fhir_server.audit")

QUEUE_SIZE: Final = 10_000
BATCH_SIZE: Final = 200
MAX_BODY_SCAN: Final = 256 * 1024  # larger bodies are not searched for patient references


class AuditWriter:
    """Accepts records from requests (`submit`) and commits them as AuditEvents."""

    def __init__(self, ctx: FhirContext, *, queue_size: int = QUEUE_SIZE,
                 batch_size: int = BATCH_SIZE) -> None:
        self._ctx = ctx
        self._queue: asyncio.Queue[AuditRecord] = asyncio.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def submit(self, record: AuditRecord) -> None:
        """Queue a record without waiting; drop (counted, logged) when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._drop(1, "the audit queue is full")

    def start(self) -> None:
        """Start the background task (in the app's lifespan)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def drain(self) -> None:
        """Wait until everything queued so far is written (or dropped)."""
        await self._queue.join()

    async def stop(self) -> None:
        """Flush what is queued, then stop the task."""
        if self._task is None:
            return
        await self.drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:
                log.exception("writing %d AuditEvents failed", len(batch))
                self._drop(len(batch), "the store refused them")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[AuditRecord]) -> None:
        writes = [self._version(record) for record in batch]
        await self._ctx.store.commit(writes)

    def _version(self, record: AuditRecord) -> VersionWrite:
        event = build_audit_event(record, server=self._ctx.base_url,
                                  resource=_resource_of(record.body))
        return next_version(self._ctx, event, resource_type="AuditEvent", id=new_id(),
                            current=None, now=record.recorded, method="POST")

    def _drop(self, count: int, why: str) -> None:
        first_of_a_thousand = self.dropped // 1000 != (self.dropped + count) // 1000
        self.dropped += count
        audit_dropped(count)
        if self.dropped == count or first_of_a_thousand:  # no log flood while the store is down
            log.warning("event=audit.dropped count=%d total=%d reason=%r", count, self.dropped, why)


def _resource_of(body: bytes | None) -> dict[str, Any] | None:
    """The JSON object served or written, if small enough to scan for patients."""
    if not body or len(body) > MAX_BODY_SCAN:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
