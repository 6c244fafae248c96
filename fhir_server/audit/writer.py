"""Log audit records off the request path: a buffer flushed in batches by one background task.

A request only appends its `AuditRecord` to a list (no I/O, no JSON), so auditing costs a read
microseconds. Every `FLUSH_INTERVAL_S` (sooner once `BATCH_SIZE` records wait) the task turns
what is buffered into log rows and appends them, `BATCH_SIZE` at a time, with one store write
each (`AuditLog.append`: one SQLite transaction in a worker thread, or one MongoDB
`insert_many`). Records arriving meanwhile wait for the next tick: under load, batches stay
large rather than the task writing a few rows at a time as fast as they come.

Nothing is dropped while the process lives: a failed append keeps its rows and retries them
(same ids, so a half-done batch is not doubled), and once `HIGH_WATER` records wait, new
requests wait for the flush (backpressure, `wait_for_room`) instead of growing memory or
losing events. `stop` (the app's shutdown) flushes everything. Durability window: records of
the last flush interval (≈`FLUSH_INTERVAL_S`, more while the store is down) exist only in
memory and are lost if the process is killed (SIGKILL, power loss); what cannot be written
at shutdown is counted in `fhir_audit_events_dropped_total` and logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final
from uuid import uuid4

from fhir_server.audit.events import AuditRecord
from fhir_server.audit.log_entries import log_entry
from fhir_server.audit.metrics import audit_dropped
from fhir_server.store.protocol import AuditEntry, AuditLog

log = logging.getLogger("fhir_server.audit")

FLUSH_INTERVAL_S: Final = 0.05
BATCH_SIZE: Final = 500
HIGH_WATER: Final = 20_000
FIRST_SERIAL: Final = 10**12


class AuditWriter:
    """Buffers records from requests (`submit`) and appends them to the audit log."""

    def __init__(self, audit_log: AuditLog, *, flush_interval_s: float = FLUSH_INTERVAL_S,
                 batch_size: int = BATCH_SIZE, high_water: int = HIGH_WATER) -> None:
        self._log = audit_log
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._high_water = high_water
        self._records: list[AuditRecord] = []
        self._unwritten: list[AuditEntry] = []  # converted, not yet stored (kept on failure)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Unique across processes and restarts, and cheaper than a uuid per record: a random
        # prefix and a serial of fixed width (13 digits for 9e12 records), so that ids sort
        # as they are written and append to the index.
        self._prefix = uuid4().hex[:16] + "-"
        self._serial = FIRST_SERIAL  # of the next record's id

    def submit(self, record: AuditRecord) -> None:
        """Buffer a record; never waits (see `wait_for_room`)."""
        self._records.append(record)
        if len(self._records) == self._batch_size:
            self._wake.set()

    @property
    def congested(self) -> bool:
        """True while at least `high_water` records wait to be written."""
        return len(self._records) + len(self._unwritten) >= self._high_water

    async def wait_for_room(self) -> None:
        """Wait until the backlog is below the high-water mark (callers check `congested`)."""
        while self.congested:
            self._room.clear()
            self._wake.set()
            await self._room.wait()

    def start(self) -> None:
        """Start the background task (in the app's lifespan)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def drain(self) -> None:
        """Write everything submitted so far, now."""
        await self._flush()

    async def stop(self) -> None:
        """Stop the task after its flush, then write what is left; count what cannot be."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        try:
            while self._records or self._unwritten:
                await self._flush()
        except Exception:
            lost = len(self._records) + len(self._unwritten)
            self._records.clear()
            self._unwritten.clear()
            audit_dropped(lost)
            log.exception("event=audit.dropped count=%d reason='the store refused them at "
                          "shutdown'", lost)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                # What was buffered at the tick; what arrives meanwhile waits for the next one,
                # so batches stay large instead of the task chasing every new record.
                await self._flush(len(self._records))
            except Exception:  # kept and retried next time; backpressure bounds the backlog
                log.exception("writing %d audit records failed; retrying",
                              len(self._records) + len(self._unwritten))

    async def _flush(self, count: int | None = None) -> None:
        """Append the first `count` buffered records (all when None) and any batch a failed
        append left, a batch at a time; one flush at a time."""
        async with self._lock:
            left = len(self._records) if count is None else count
            while self._unwritten or (left > 0 and self._records):
                if not self._unwritten:
                    batch = self._records[:min(left, self._batch_size)]
                    del self._records[:len(batch)]
                    left -= len(batch)
                    self._unwritten = self._entries(batch)
                await self._log.append(self._unwritten)
                self._unwritten = []
                if not self.congested:
                    self._room.set()

    def _entries(self, batch: list[AuditRecord]) -> list[AuditEntry]:
        """The batch's log rows under new ids, in order (so they append to the indexes)."""
        first, prefix = self._serial, self._prefix
        self._serial += len(batch)
        return [log_entry(record, prefix + str(serial))
                for serial, record in enumerate(batch, first)]
