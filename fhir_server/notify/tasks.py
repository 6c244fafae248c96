"""Celery tasks: thin wrappers running the dispatch services on the process's runtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir_server.notify.celery_app import DELIVER_TASK, RECONCILE_TASK, SCAN_TASK, app
from fhir_server.notify.worker_runtime import runtime
from fhir_server.services import outbox, outbox_leases
from fhir_server.services.outbox_leases import Claim

SCAN_LIMIT = 1000
DELIVER_BATCH = 50
RECONCILE_WINDOW = timedelta(hours=1)


@app.task(name=SCAN_TASK)
def scan() -> int:
    """Lease the due requests and queue them for delivery in batches; how many.

    A full scan means more are due: another scan is queued after the first half of the
    batches, so the next claims are ready before the workers run out (instead of waiting for
    beat); it expires after a quarter lease, when the queue is deep enough anyway."""
    current = runtime()
    lease_for = timedelta(seconds=current.settings.dispatch_lease_s)
    claims = current.run(outbox_leases.claim_due(current.dispatcher.ctx, now=datetime.now(UTC),
                                                 lease_for=lease_for, limit=SCAN_LIMIT))
    batches = [claims[start:start + DELIVER_BATCH]
               for start in range(0, len(claims), DELIVER_BATCH)]
    for number, batch in enumerate(batches):
        if number == len(batches) // 2 and len(claims) >= SCAN_LIMIT:
            scan.apply_async(expires=lease_for.total_seconds() / 4)
        deliver.delay([[c.id, c.version] for c in batch])
    return len(claims)


@app.task(name=DELIVER_TASK)
def deliver(claims: list[list[str | int]]) -> None:
    """Deliver leased requests given as `[id, version]` pairs."""
    current = runtime()
    current.run(current.dispatcher.deliver_all([Claim(str(id), int(version))
                                                for id, version in claims]))


@app.task(name=RECONCILE_TASK)
def reconcile() -> int:
    """Plan messages for recently booked appointments whose planning failed; how many."""
    current = runtime()
    return current.run(outbox.reconcile(current.dispatcher.ctx, now=datetime.now(UTC),
                                        window=RECONCILE_WINDOW,
                                        offsets_h=current.settings.reminder_offsets_h))
