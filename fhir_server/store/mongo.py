"""The production `Store` adapter: MongoDB through PyMongo's async API (`AsyncMongoClient`).

Two collections. `resources` holds the current version of each resource (`_id` =
`"{type}/{id}"`): its JSON bytes as BSON binary (served as is), the parsed JSON as `res` (so a
write's `match` is a filter on `res.<path>`), and its search entries as indexed arrays (see
`mongo_query.py`). `versions` holds every version (`_id` = `"{type}/{id}/{version}"`).

Correctness uses only single-document atomic operations, which hold on MongoDB and on the
jongodb test server alike: creation is `insert_one` (a duplicate `_id` is a conflict), every
later version is `replace_one` filtered on the expected version and `match` fields (a miss is a
conflict). No transactions: a multi-write commit applies in order and, if one write fails,
restores what it already changed before raising, so readers see all or nothing once it returns.
The current document is written before its history entry, so a crash in between loses at most
a history entry, never blocks the resource; `read_version` falls back to the current document.

The audit trail is the append-only collection `audit_log` (`mongo_audit.py`).

`updated_us` (epoch microseconds) orders and filters by time exactly; `last_updated` is the
same instant as a BSON date (millisecond precision) for people and tools reading the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

import orjson
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from fhir_server.fhir.errors import StoreUnavailable
from fhir_server.fhir.search.model import StoreQuery
from fhir_server.store.mongo_audit import MongoAuditLog
from fhir_server.store.mongo_query import Document, compile_filter, compile_sort, index_fields
from fhir_server.store.protocol import (
    AuditLog,
    HistoryPage,
    SearchPage,
    StoredResource,
    VersionWrite,
    WriteConflict,
)
from fhir_server.store.timestamps import from_micros, to_micros

DEFAULT_DATABASE = "fhir_scheduler"
# Reads fetch only what a StoredResource needs, never the parsed copy or the index arrays.
_PROJECTION = {f: 1 for f in ("type", "id", "version_id", "updated_us", "deleted", "method",
                              "body", "patients")}
_HISTORY_ORDER = [("updated_us", DESCENDING), ("version_id", DESCENDING), ("type", ASCENDING),
                  ("id", ASCENDING)]

RESOURCE_INDEXES = [
    IndexModel([("type", ASCENDING), ("id", ASCENDING)], unique=True, name="type_id"),
    IndexModel([("type", ASCENDING), ("updated_us", ASCENDING)], name="type_updated"),
    IndexModel([("type", ASCENDING), ("tok.p", ASCENDING), ("tok.c", ASCENDING)],
               name="type_token"),
    IndexModel([("type", ASCENDING), ("ref.p", ASCENDING), ("ref.i", ASCENDING)],
               name="type_reference"),
    IndexModel([("type", ASCENDING), ("dt.p", ASCENDING), ("dt.lo", ASCENDING),
                ("dt.hi", ASCENDING)], name="type_date"),
    IndexModel([("type", ASCENDING), ("str.p", ASCENDING), ("str.n", ASCENDING)],
               name="type_string"),
]
VERSION_INDEXES = [
    IndexModel([("type", ASCENDING), ("id", ASCENDING), ("version_id", ASCENDING)],
               unique=True, name="type_id_version"),
    IndexModel([("type", ASCENDING), ("updated_us", DESCENDING)], name="type_updated"),
    IndexModel([("updated_us", DESCENDING)], name="updated"),
]


def database_from_url(url: str) -> str | None:
    """The database named in a MongoDB URL's path (`mongodb://hosts/db?opts`), without any I/O."""
    after_scheme = url.partition("://")[2].partition("?")[0]
    _, slash, path = after_scheme.partition("/")
    return (unquote(path) or None) if slash else None


def resource_key(resource_type: str, id: str) -> str:
    """`_id` of a current document."""
    return f"{resource_type}/{id}"


def version_key(resource_type: str, id: str, version_id: int) -> str:
    """`_id` of a history document."""
    return f"{resource_type}/{id}/{version_id}"


def _version_document(write: VersionWrite) -> Document:
    """A history entry: what `read_version` and `history` serve."""
    micros = to_micros(write.last_updated)
    return {"_id": version_key(write.resource_type, write.id, write.version_id),
            "type": write.resource_type, "id": write.id, "version_id": write.version_id,
            "updated_us": micros, "last_updated": from_micros(micros),
            "deleted": write.deleted, "method": write.method, "body": write.body,
            "patients": None if write.patients is None else list(write.patients)}


def _current_document(write: VersionWrite) -> Document:
    """The current document: the history fields plus the parsed JSON and search fields."""
    document = _version_document(write)
    document["_id"] = resource_key(write.resource_type, write.id)
    document["res"] = _parsed(write.body)
    document.update(index_fields(() if write.deleted else write.index))
    return document


def _parsed(body: bytes | None) -> Document | None:
    """The resource JSON as a sub-document for `match` filters (None for a tombstone)."""
    if body is None:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _stored(document: Document) -> StoredResource:
    """A current or history document as the protocol's value."""
    body, patients = document.get("body"), document.get("patients")
    return StoredResource(resource_type=document["type"], id=document["id"],
                          version_id=document["version_id"],
                          last_updated=from_micros(document["updated_us"]),
                          deleted=document["deleted"], method=document["method"],
                          body=bytes(body) if body is not None else None,
                          patients=tuple(patients) if patients is not None else None)


def _stored_from_write(write: VersionWrite) -> StoredResource:
    """What was written, with the time normalized as a read would return it."""
    return StoredResource(resource_type=write.resource_type, id=write.id,
                          version_id=write.version_id,
                          last_updated=from_micros(to_micros(write.last_updated)),
                          deleted=write.deleted, method=write.method, body=write.body,
                          patients=write.patients)


def _one_line(exc: Exception) -> str:
    """PyMongo's first sentence of an error, without the topology dump that follows."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(", Timeout:")[0].split(" (configured timeouts")[0][:300]


@dataclass(frozen=True, slots=True)
class _Applied:
    """A write of a multi-write commit that took effect, and the document it replaced."""

    write: VersionWrite
    previous: Document | None


class MongoStore:
    """`Store` on one MongoDB database: `resources` (current) and `versions` (history)."""

    def __init__(self, url: str, *, database: str | None = None, timeout_ms: int = 5000) -> None:
        self.url = url
        self.timeout_ms = timeout_ms
        self.database_name = database or database_from_url(url) or DEFAULT_DATABASE
        self._client: AsyncMongoClient[Document] | None = None
        # Credentials never reach error messages.
        self._where = re.sub(r"//[^@/]*@", "//", url)
        self._audit_log = MongoAuditLog(
            lambda: self._client_or_raise()[self.database_name]["audit_log"], self._unavailable)

    @property
    def audit_log(self) -> AuditLog:
        """The audit trail: the collection `audit_log` of the same database."""
        return self._audit_log

    async def open(self) -> None:
        """Connect (once) and create every index idempotently; no listCollections needed."""
        if self._client is None:
            client: AsyncMongoClient[Document] = AsyncMongoClient(
                self.url, serverSelectionTimeoutMS=self.timeout_ms,
                connectTimeoutMS=self.timeout_ms, tz_aware=True, tzinfo=UTC)
            self._client = client
        try:
            with self._unavailable("creating indexes"):
                await self._resources.create_indexes(RESOURCE_INDEXES)
                await self._versions.create_indexes(VERSION_INDEXES)
                await self._audit_log.open()
        except StoreUnavailable:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the client and its connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the server answers a ping."""
        with self._unavailable("ping"):
            await self._client_or_raise().admin.command("ping")

    async def read(self, resource_type: str, id: str) -> StoredResource | None:
        """The current version, tombstones included."""
        with self._unavailable("read"):
            document = await self._resources.find_one(
                {"_id": resource_key(resource_type, id)}, _PROJECTION)
        return _stored(document) if document else None

    async def read_version(self, resource_type: str, id: str,
                           version_id: int) -> StoredResource | None:
        """One version from history, or from the current document if history lags behind it."""
        with self._unavailable("read_version"):
            document = await self._versions.find_one(
                {"_id": version_key(resource_type, id, version_id)}, _PROJECTION)
            if document is None:
                document = await self._resources.find_one(
                    {"_id": resource_key(resource_type, id), "version_id": version_id},
                    _PROJECTION)
        return _stored(document) if document else None

    async def read_many(self, resource_type: str, ids: Sequence[str]) -> list[StoredResource]:
        """Current non-deleted versions in the order asked; missing or deleted ids are skipped."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        keys = [resource_key(resource_type, id_) for id_ in wanted]
        with self._unavailable("read_many"):
            cursor = self._resources.find({"_id": {"$in": keys}, "deleted": False}, _PROJECTION)
            found = {doc["id"]: _stored(doc) async for doc in cursor}
        return [found[id_] for id_ in wanted if id_ in found]

    async def commit(self, writes: Sequence[VersionWrite]) -> list[StoredResource]:
        """Append every write or none; raise `WriteConflict` if any expectation fails."""
        with self._unavailable("commit"):
            if len(writes) == 1:
                await self._apply(writes[0])
            elif writes:
                await self._apply_all(writes)
        return [_stored_from_write(write) for write in writes]

    async def search(self, query: StoreQuery) -> SearchPage:
        """One page of current resources and, when asked, how many match in all."""
        filter_ = compile_filter(query)
        with self._unavailable("search"):
            resources: list[StoredResource] = []
            if query.limit > 0:
                cursor = self._resources.find(filter_, _PROJECTION,
                                              sort=compile_sort(query.sort),
                                              skip=max(query.offset, 0), limit=query.limit)
                resources = [_stored(doc) async for doc in cursor]
            total = await self._resources.count_documents(filter_) if query.with_total else None
        return SearchPage(resources=resources, total=total)

    async def history(self, resource_type: str | None, id: str | None, *,
                      since: datetime | None = None, offset: int = 0,
                      limit: int = 50, exclude_types: Sequence[str] = ()) -> HistoryPage:
        """Versions newest first at instance, type or system level, and their count."""
        filter_: Document = {}
        if resource_type is not None:
            filter_["type"] = resource_type
            if id is not None:
                filter_["id"] = id
        elif exclude_types:
            filter_["type"] = {"$nin": list(exclude_types)}
        if since is not None:
            filter_["updated_us"] = {"$gte": to_micros(since)}
        with self._unavailable("history"):
            versions: list[StoredResource] = []
            if limit > 0:
                cursor = self._versions.find(filter_, _PROJECTION, sort=_HISTORY_ORDER,
                                             skip=max(offset, 0), limit=limit)
                versions = [_stored(doc) async for doc in cursor]
            total = await self._versions.count_documents(filter_)
        return HistoryPage(versions=versions, total=total)

    async def query_plan(self, query: StoreQuery) -> Document:
        """The server's `explain` of a search page, so tests and operators see the index used."""
        with self._unavailable("explain"):
            cursor = self._resources.find(compile_filter(query), _PROJECTION,
                                          sort=compile_sort(query.sort),
                                          skip=max(query.offset, 0), limit=max(query.limit, 0))
            return await cursor.explain()

    @property
    def _resources(self) -> AsyncCollection[Document]:
        return self._client_or_raise()[self.database_name]["resources"]

    @property
    def _versions(self) -> AsyncCollection[Document]:
        return self._client_or_raise()[self.database_name]["versions"]

    def _client_or_raise(self) -> AsyncMongoClient[Document]:
        """The open client; using a closed store is an outage, not a crash."""
        if self._client is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._client

    @contextmanager
    def _unavailable(self, action: str) -> Iterator[None]:
        """Turn network and server-selection failures into a one-line `StoreUnavailable`."""
        try:
            yield
        except ConnectionFailure as exc:
            raise StoreUnavailable(
                f"MongoDB at {self._where} is unavailable ({action}): {_one_line(exc)}") from exc

    async def _apply(self, write: VersionWrite) -> None:
        """One atomic conditional write of the current document, then its history entry."""
        await self._write_current(write)
        await self._record_version(write)

    async def _write_current(self, write: VersionWrite) -> None:
        """Insert or replace the current document iff it is in the expected state."""
        document = _current_document(write)
        if write.expected_version == 0:
            if any(value is not None for value in write.match.values()):
                raise await self._conflict(write)  # nothing exists to match against
            try:
                await self._resources.insert_one(document)
            except DuplicateKeyError:
                raise await self._conflict(write) from None
        else:
            expected: Document = {"_id": document["_id"], "version_id": write.expected_version}
            expected.update((f"res.{path}", value) for path, value in write.match.items())
            result = await self._resources.replace_one(expected, document)
            if result.matched_count != 1:
                raise await self._conflict(write)

    async def _record_version(self, write: VersionWrite) -> None:
        """Insert the history entry; one left by an undone commit is overwritten, as we own it."""
        document = _version_document(write)
        try:
            await self._versions.insert_one(document)
        except DuplicateKeyError:
            await self._versions.replace_one({"_id": document["_id"]}, document)

    async def _apply_all(self, writes: Sequence[VersionWrite]) -> None:
        """Apply in order; on any failure undo the applied ones, newest first, and re-raise."""
        applied: list[_Applied] = []
        try:
            for write in writes:
                previous = None
                if write.expected_version != 0:
                    previous = await self._resources.find_one(
                        {"_id": resource_key(write.resource_type, write.id)})
                    if previous is None or previous["version_id"] != write.expected_version:
                        raise await self._conflict(write)
                await self._write_current(write)
                applied.append(_Applied(write, previous))
                await self._record_version(write)
        except BaseException:
            await self._undo(applied)
            raise

    async def _undo(self, applied: list[_Applied]) -> None:
        """Put back each replaced document (only if still ours) and drop our history entries."""
        for item in reversed(applied):
            write = item.write
            ours = {"_id": resource_key(write.resource_type, write.id),
                    "version_id": write.version_id}
            if item.previous is None:
                await self._resources.delete_one(ours)
            else:
                await self._resources.replace_one(ours, item.previous)
            await self._versions.delete_one(
                {"_id": version_key(write.resource_type, write.id, write.version_id)})

    async def _conflict(self, write: VersionWrite) -> WriteConflict:
        """The conflict to raise, naming the version actually stored now."""
        current = await self._resources.find_one(
            {"_id": resource_key(write.resource_type, write.id)}, {"version_id": 1})
        actual = current["version_id"] if current else None
        return WriteConflict(write.resource_type, write.id, write.expected_version, actual)
