"""The MongoDB audit log: collection `audit_log`, one document per event, appended with
`insert_many`.

A document holds the searchable fields (`recorded_us`, `subtype`, `action`, `outcome`,
`client_id`, `client_key`), the references as `refs: [{p, t, i}]` (multikey index), the
record as a JSON string (BSON binary in documents written before), and `recorded` as a BSON
date for people reading the collection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

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
from fhir_server.store.audit_fields import TOKEN_FIELDS, recorded_bounds
from fhir_server.store.protocol import AuditEntry, AuditPage, LoggedAudit
from fhir_server.store.timestamps import from_micros

Document = dict[str, Any]
NEVER: Final[Document] = {"_id": {"$in": []}}
DUPLICATE_KEY: Final = 11000
_SORT_FIELDS: Final = {"date": "recorded_us", "lastUpdated": "recorded_us", "id": "_id"}
AUDIT_INDEXES: Final = [
    IndexModel([("recorded_us", DESCENDING), ("_id", DESCENDING)], name="recorded"),
    IndexModel([("refs.p", ASCENDING), ("refs.i", ASCENDING), ("recorded_us", DESCENDING)],
               name="references"),
]


class MongoAuditLog:
    """`AuditLog` on the collection `collection()` returns (the store's open client);
    `unavailable(action)` turns connection failures into `StoreUnavailable`, as the store does."""

    def __init__(self, collection: Callable[[], AsyncCollection[Document]],
                 unavailable: Callable[[str], AbstractContextManager[None]]) -> None:
        self._collection = collection
        self._unavailable = unavailable

    async def open(self) -> None:
        """Create the indexes idempotently."""
        await self._collection().create_indexes(AUDIT_INDEXES)

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        """One unordered `insert_many`; documents already stored (a retried batch) are skipped."""
        if not entries:
            return
        documents = [_document(e) for e in entries]
        with self._unavailable("audit append"):
            try:
                await self._collection().insert_many(documents, ordered=False)
            except BulkWriteError as error:
                if any(e.get("code") != DUPLICATE_KEY
                       for e in error.details.get("writeErrors", [])):
                    raise
            except DuplicateKeyError:  # a server that fails the whole batch (jongodb)
                for document in documents:
                    with suppress(DuplicateKeyError):
                        await self._collection().insert_one(document)

    async def read(self, id: str) -> LoggedAudit | None:
        """One document by id."""
        with self._unavailable("audit read"):
            document = await self._collection().find_one({"_id": id}, {"record": 1})
        return _logged(document) if document else None

    async def search(self, query: StoreQuery) -> AuditPage:
        """One page and, when asked, how many match in all."""
        filter_ = _filter(query.where)
        entries: list[LoggedAudit] = []
        with self._unavailable("audit search"):
            if query.limit > 0:
                cursor = self._collection().find(filter_, {"record": 1},
                                                 sort=_sort(query.sort),
                                                 skip=max(query.offset, 0), limit=query.limit)
                entries = [_logged(document) async for document in cursor]
            total = (await self._collection().count_documents(filter_)
                     if query.with_total else None)
        return AuditPage(entries, total)


def _document(entry: AuditEntry) -> Document:
    return {"_id": entry.id, "recorded_us": entry.recorded_us,
            "recorded": from_micros(entry.recorded_us), "subtype": entry.subtype,
            "action": entry.action, "outcome": entry.outcome, "client_id": entry.client_id,
            "client_key": entry.client_key,
            "refs": [{"p": p, "t": t, "i": i} for p, t, i in entry.references],
            "record": entry.record}


def _logged(document: Document) -> LoggedAudit:
    record = document["record"]
    return LoggedAudit(document["_id"], record if isinstance(record, str) else bytes(record))


def _filter(clauses: Sequence[Clause]) -> Document:
    """Every clause AND-ed; a negated clause is a `$nor`."""
    compiled = []
    for clause in clauses:
        predicates = [_predicate(p) for p in clause.any_of] or [NEVER]
        either = predicates[0] if len(predicates) == 1 else {"$or": predicates}
        compiled.append({"$nor": [either]} if clause.negate else either)
    return {"$and": compiled} if compiled else {}


def _predicate(predicate: Predicate) -> Document:
    if isinstance(predicate, IdMatch):
        return {"_id": {"$in": list(predicate.ids)}}
    if isinstance(predicate, TokenMatch) and predicate.param in TOKEN_FIELDS:
        return {} if predicate.code is None else {predicate.param: predicate.code}
    if isinstance(predicate, ReferenceMatch) and predicate.target_id is not None:
        element: Document = {"p": predicate.param, "i": predicate.target_id}
        if predicate.target_type is not None:
            element["t"] = predicate.target_type
        return {"refs": {"$elemMatch": element}}
    if isinstance(predicate, DateMatch):
        lower, upper = recorded_bounds(predicate)
        bounds = {op: b for op, b in (("$gte", lower), ("$lt", upper)) if b is not None}
        return {"recorded_us": bounds} if bounds else {}
    if isinstance(predicate, StringMatch):
        if predicate.mode == "exact":
            return {"client_id": predicate.value}
        anchor = "^" if predicate.mode == "startswith" else ""
        return {"client_key": {"$regex": anchor + re.escape(predicate.value)}}
    raise ValueError(f"the audit log cannot search by {predicate!r}")


def _sort(keys: Sequence[SortKey]) -> list[tuple[str, int]]:
    """The sort keys, then `_id` in the first key's direction; newest first by default."""
    keys = keys or (SortKey("date", "date", descending=True),)
    spec: list[tuple[str, int]] = []
    for key in keys:
        field = _SORT_FIELDS[key.kind]
        if all(field != seen for seen, _ in spec):
            spec.append((field, DESCENDING if key.descending else ASCENDING))
    if all(field != "_id" for field, _ in spec):
        spec.append(("_id", spec[0][1]))
    return spec
