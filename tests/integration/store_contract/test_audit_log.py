"""The audit log contract, on both adapters: append-only batches, idempotent retries, and the
query semantics AuditEvent search relies on (fields, date bounds, negation, order, paging)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir_server.fhir.search.dates import epoch_ms
from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    IdMatch,
    Predicate,
    ReferenceMatch,
    SortKey,
    StoreQuery,
    StringMatch,
    TokenMatch,
)
from fhir_server.store.protocol import AuditEntry, Store
from fhir_server.store.timestamps import to_micros

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def entry(id_: str, seconds: float, *, subtype: str = "read", outcome: str = "0",
          client: str | None = "Front-Desk", refs: tuple[tuple[str, str, str], ...] = ()
          ) -> AuditEntry:
    return AuditEntry.with_references(
        id=id_, recorded_us=to_micros(T0 + timedelta(seconds=seconds)), subtype=subtype,
        action="R", outcome=outcome, client_id=client,
        client_key=client.lower() if client else None, record=f'{{"n":"{id_}"}}',
        references=refs)


async def found(store: Store, *predicates: Predicate, negate: bool = False,
                sort: tuple[SortKey, ...] = ()) -> list[str]:
    where = tuple(Clause((p,), negate=negate) for p in predicates)
    page = await store.audit_log.search(StoreQuery("AuditEvent", where=where, sort=sort,
                                                   limit=100))
    return [logged.id for logged in page.entries]


async def logged(store: Store) -> None:
    await store.audit_log.append([
        entry("e1", 0, refs=(("entity", "Appointment", "a1"), ("entity", "Patient", "p1"),
                             ("patient", "Patient", "p1"), ("agent", "Practitioner", "d1"))),
        entry("e2", 1, subtype="search-type", outcome="4", client="Portal",
              refs=(("patient", "Patient", "p2"), ("agent", "Patient", "p2"))),
        entry("e3", 2, subtype="create", client=None,
              refs=(("entity", "Patient", "p1"), ("patient", "Patient", "p1"))),
    ])


async def test_rows_read_back_by_id_and_newest_first_by_default(store: Store) -> None:
    await logged(store)

    assert await found(store) == ["e3", "e2", "e1"]
    row = await store.audit_log.read("e2")
    assert row is not None and (row.id, row.record) == ("e2", '{"n":"e2"}')
    assert await store.audit_log.read("nope") is None


async def test_a_retried_batch_is_not_stored_twice(store: Store) -> None:
    await logged(store)
    await store.audit_log.append([entry("e1", 0), entry("e4", 3)])

    page = await store.audit_log.search(StoreQuery("AuditEvent", limit=10))
    assert [e.id for e in page.entries] == ["e4", "e3", "e2", "e1"] and page.total == 4


async def test_tokens_references_and_client_names(store: Store) -> None:
    await logged(store)

    assert await found(store, TokenMatch("subtype", None, "read")) == ["e1"]
    assert await found(store, TokenMatch("outcome", None, "4")) == ["e2"]
    assert await found(store, TokenMatch("subtype", None, "read"), negate=True) == ["e3", "e2"]
    assert await found(store, ReferenceMatch("entity", "Patient", "p1")) == ["e3", "e1"]
    assert await found(store, ReferenceMatch("patient", None, "p2")) == ["e2"]
    assert await found(store, ReferenceMatch("agent", "Practitioner", "d1")) == ["e1"]
    assert await found(store, ReferenceMatch("agent", "Patient", "d1")) == []
    assert await found(store, StringMatch("agent-name", "front")) == ["e1"]
    assert await found(store, StringMatch("agent-name", "Portal", "exact")) == ["e2"]
    assert await found(store, StringMatch("agent-name", "orta", "contains")) == ["e2"]
    assert await found(store, IdMatch(("e1", "e3"))) == ["e3", "e1"]


async def test_dates_select_by_the_recorded_millisecond(store: Store) -> None:
    await logged(store)
    second = epoch_ms(T0 + timedelta(seconds=1))

    assert await found(store, DateMatch("date", high_gt=second)) == ["e3", "e2"]  # ge
    assert await found(store, DateMatch("date", low_lt=second)) == ["e1"]  # lt
    assert await found(store, DateMatch("date", low_ge=second, high_le=second + 1)) == ["e2"]
    assert await found(store, DateMatch("date", high_gt=second + 1)) == ["e3"]  # gt


async def test_sorting_and_paging_with_totals(store: Store) -> None:
    await logged(store)

    assert await found(store, sort=(SortKey("date", "date"),)) == ["e1", "e2", "e3"]
    assert await found(store, sort=(SortKey("_id", "id", descending=True),)) == [
        "e3", "e2", "e1"]
    page = await store.audit_log.search(StoreQuery("AuditEvent", offset=1, limit=1))
    assert ([e.id for e in page.entries], page.total) == (["e2"], 3)
    counted = await store.audit_log.search(StoreQuery("AuditEvent", limit=0))
    assert (counted.entries, counted.total) == ([], 3)


async def test_an_empty_clause_matches_nothing_and_its_negation_everything(store: Store) -> None:
    await logged(store)

    for negate, expected in ((False, 0), (True, 3)):
        query = StoreQuery("AuditEvent", where=(Clause((), negate=negate),))
        assert (await store.audit_log.search(query)).total == expected
