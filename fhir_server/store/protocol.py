"""The `Store` port: what services need from persistence, and nothing FHIR-REST specific.

Every resource is a chain of versions. A write appends version `n+1` only if the current
version is still `n` (`expected_version`, 0 = must not exist yet) and, optionally, the current
resource still has given field values (`match`). That single primitive is the version-checked
replace behind `If-Match` and the conditional update behind slot claims: on MongoDB it is one
`update_one` filtered on the expected state, on SQLite one guarded `UPDATE`.

Adapters: `sqlite.py` (embedded default) and `mongo.py` (production). Both pass
`tests/integration/store_contract/`.

Beside the versioned resources each adapter keeps the audit trail as an append-only log
(`AuditLog`): no versions, no FHIR index, a few indexed columns and the compact record the
AuditEvent is rendered from when it is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from fhir_server.fhir.search.model import IndexEntry, StoreQuery

JsonScalar = str | int | float | bool | None
HistoryMethod = Literal["POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One stored version. `body` is the resource's JSON (with `meta`) exactly as served."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    method: HistoryMethod
    body: bytes | None
    # The distinct `Patient/<id>` references in `body` (contained resources excluded), kept
    # at write time; None for a version written before they were kept.
    patients: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class VersionWrite:
    """A new version to append; `body is None` records a deletion (a tombstone)."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    method: HistoryMethod
    body: bytes | None
    index: tuple[IndexEntry, ...] = ()
    patients: tuple[str, ...] | None = None  # see StoredResource.patients; None: not known
    expected_version: int = 0
    match: Mapping[str, JsonScalar] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class SearchPage:
    """The current resources on one page of a search, and the total when it was asked for."""

    resources: list[StoredResource]
    total: int | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Versions newest first, and how many versions match in all."""

    versions: list[StoredResource]
    total: int


class AuditEntry(NamedTuple):
    """One audit log row: what its AuditEvent is searched by, and the record it renders from
    (a tuple, one per request, whose first 13 fields are the SQLite log's columns in order).

    Most events name at most one entity, patient and agent: those are fields of their own;
    `more_references` holds any further `(param, type, id)` (a search naming several
    patients). `record` (JSON text) is opaque to the store.
    """

    id: str
    recorded_us: int
    subtype: str
    action: str
    outcome: str
    client_id: str | None
    client_key: str | None  # the client id normalized for string search (`agent-name`)
    record: str
    entity_type: str | None = None
    entity_id: str | None = None
    patient_id: str | None = None  # a Patient's id
    agent_type: str | None = None
    agent_id: str | None = None
    more_references: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def with_references(cls, id: str, recorded_us: int, subtype: str, action: str,
                        outcome: str, client_id: str | None, client_key: str | None,
                        record: str, references: Iterable[tuple[str, str, str]]
                        ) -> AuditEntry:
        """An entry from any `(param, type, id)` references: the first entity, Patient and
        agent in their fields, the rest in `more_references`."""
        entity = patient = agent = None
        more = []
        for reference in references:
            param, kind, target = reference
            if param == "entity" and entity is None:
                entity = (kind, target)
            elif param == "patient" and patient is None and kind == "Patient":
                patient = target
            elif param == "agent" and agent is None:
                agent = (kind, target)
            else:
                more.append(reference)
        return cls(id, recorded_us, subtype, action, outcome, client_id, client_key, record,
                   *(entity or (None, None)), patient, *(agent or (None, None)), tuple(more))

    @property
    def references(self) -> tuple[tuple[str, str, str], ...]:
        """Every `(param, type, id)`: the entity, the patient, the agent, then the others."""
        found: list[tuple[str, str, str]] = []
        if self.entity_type is not None and self.entity_id is not None:
            found.append(("entity", self.entity_type, self.entity_id))
        if self.patient_id is not None:
            found.append(("patient", "Patient", self.patient_id))
        if self.agent_type is not None and self.agent_id is not None:
            found.append(("agent", self.agent_type, self.agent_id))
        return (*found, *self.more_references)


@dataclass(frozen=True, slots=True)
class LoggedAudit:
    """An audit log row as read back: its id and record (bytes in rows written before the
    record was kept as text)."""

    id: str
    record: str | bytes


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of audit log rows, and the total when it was asked for."""

    entries: list[LoggedAudit]
    total: int | None


class AuditLog(Protocol):
    """The append-only audit trail: written in batches, never updated or deleted.

    `search` takes a `StoreQuery` whose predicates use only the log's fields: `IdMatch`,
    `TokenMatch` on `subtype`/`action`/`outcome` (code only), `ReferenceMatch` by id on
    `entity`/`patient`/`agent`, `DateMatch` on `date` (the recorded instant as the epoch
    millisecond range `[ms, ms + 1)`), `StringMatch` on `agent-name` (the client id), and
    `SortKey`s on `date` or `_id`; with no sort, newest first.
    """

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        """Store every entry in one write; entries already stored (same id) are skipped."""

    async def read(self, id: str) -> LoggedAudit | None:
        """One row by id, or None."""

    async def search(self, query: StoreQuery) -> AuditPage:
        """Matching rows, sorted and paged."""


class WriteConflict(Exception):
    """A write's expectation failed: the version moved on or `match` no longer holds."""

    def __init__(self, resource_type: str, id: str, expected_version: int,
                 actual_version: int | None) -> None:
        self.resource_type = resource_type
        self.id = id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"{resource_type}/{id}: expected version {expected_version}, found {actual_version}")


@runtime_checkable
class Store(Protocol):
    """Persistence of versioned FHIR resources with extracted search indexes."""

    async def open(self) -> None:
        """Connect and create tables/collections and indexes, idempotently."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise `fhir_server.fhir.errors.StoreUnavailable` unless the store answers."""

    async def read(self, resource_type: str, id: str) -> StoredResource | None:
        """The current version (possibly a deletion tombstone), or None if never written."""

    async def read_version(self, resource_type: str, id: str,
                           version_id: int) -> StoredResource | None:
        """One historical version, or None."""

    async def commit(self, writes: Sequence[VersionWrite]) -> list[StoredResource]:
        """Append every write or none: raise `WriteConflict` if any expectation fails.

        A single write is one atomic conditional update. Several writes (a transaction
        Bundle) are all-or-nothing as seen by readers once this returns or raises.
        """

    async def search(self, query: StoreQuery) -> SearchPage:
        """Current, non-deleted resources matching the query, sorted and paged."""

    async def history(self, resource_type: str | None, id: str | None, *,
                      since: datetime | None = None, offset: int = 0,
                      limit: int = 50, exclude_types: Sequence[str] = ()) -> HistoryPage:
        """Versions of one resource, one type (id None) or the whole system (both None);
        `exclude_types` leaves types out of the system level."""

    async def read_many(self, resource_type: str, ids: Sequence[str]) -> list[StoredResource]:
        """Current non-deleted versions of the given ids (for `_include`); missing ids are skipped."""

    @property
    def audit_log(self) -> AuditLog:
        """The audit trail kept beside the resources (opened and closed with the store)."""
