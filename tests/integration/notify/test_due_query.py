"""The scan's due query is served by the indexes, not by walking every CommunicationRequest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fhir_server.services.outbox_leases import due_query
from fhir_server.services.wiring import make_context
from fhir_server.settings import REPO_ROOT
from fhir_server.store.sqlite import SqliteStore
from tests.integration.store_contract.test_sqlite_specific import (
    driven_by_matches,
    index_searches,
)


async def test_the_due_query_uses_the_status_and_occurrence_indexes(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "store.db"))
    await store.open()
    ctx = make_context(store, capability_dir=REPO_ROOT / "capability",
                       base_url="http://testserver/fhir")

    plan = store.query_plan(due_query(ctx, now=datetime.now(UTC), limit=500))

    await store.close()
    assert index_searches(plan, "idx_token_value") or index_searches(plan, "idx_date_low"), plan
    assert driven_by_matches(plan), plan
