"""Records kept by key in a private JSON file under the data dir (clients, users): written
atomically with mode 0600, re-read when another process (the CLI, another worker) changed it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

R = TypeVar("R")


def write_private_json(path: Path, document: Any, *, indent: int | None = None) -> None:
    """Replace `path` with `document` in one step, readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=indent)
    os.replace(temporary, path)


class JsonRecords(Generic[R]):
    """`{section: [entry, ...]}` in `path`, as records by their key."""

    def __init__(self, path: Path, *, section: str, key: Callable[[R], str],
                 load: Callable[[Mapping[str, Any]], R],
                 dump: Callable[[R], dict[str, Any]]) -> None:
        self._path = path
        self._section = section
        self._key = key
        self._load = load
        self._dump = dump
        self._records: dict[str, R] = {}
        self._mtime: float | None = None

    def get(self, key: str) -> R | None:
        return self.current().get(key)

    def all(self) -> list[R]:
        """Every record, ordered by key."""
        return sorted(self.current().values(), key=self._key)

    def current(self) -> dict[str, R]:
        """The records as the file holds them now (re-read only when its mtime changed)."""
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            return self._records
        if mtime != self._mtime:
            document = json.loads(self._path.read_text("utf-8"))
            self._records = {self._key(r): r for r in map(self._load, document[self._section])}
            self._mtime = mtime
        return self._records

    def add(self, record: R, *, exists: Callable[[str], Exception]) -> None:
        """Store a new record; an existing key raises `exists(key)` rather than overwriting."""
        key = self._key(record)
        if key in self.current():
            raise exists(key)
        self._records[key] = record
        write_private_json(self._path, {self._section: [self._dump(r) for r in
                                                        self._records.values()]}, indent=2)
        self._mtime = self._path.stat().st_mtime
