"""A cache keyed by file content, so a second `pglab check` on an unchanged tree parses nothing.

Per file it keeps the DDL (to rebuild the schema model without parsing) and the findings,
keyed by the schema they were computed against: a migration that adds an index invalidates the
findings of every file, an edit to one file only that file's. The whole cache is one pickle
under a key that covers pglab's own rule code and the selected rules, so upgrading pglab or
changing `--select` starts afresh.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pglab.lab.core.findings import Finding
from pglab.lab.core.report import Diagnostic

CACHE_FILE = "check.pickle"


@dataclass
class RawFinding:
    """A finding before suppression, with the lines an inline `ignore` comment may sit on."""

    finding: Finding
    first_line: int
    last_line: int


@dataclass
class Entry:
    digest: str
    statements: int
    ddl: list[tuple[str, dict[str, Any], int, int]]  # kind, body, line, column
    diagnostics: list[Diagnostic]
    findings: dict[str, list[RawFinding]] = field(default_factory=dict)  # schema fingerprint -> findings


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Cache:
    def __init__(self, directory: Path | None, key: str) -> None:
        self.directory = directory
        self.key = key
        self.entries: dict[str, Entry] = {}
        self.dirty = False
        if directory is not None:
            self._load()

    def _load(self) -> None:
        assert self.directory is not None
        try:
            with open(self.directory / CACHE_FILE, "rb") as handle:
                stored = pickle.load(handle)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
            return
        if isinstance(stored, dict) and stored.get("key") == self.key:
            self.entries = stored.get("entries", {})

    def get(self, path: str, content_digest: str) -> Entry | None:
        entry = self.entries.get(path)
        return entry if entry is not None and entry.digest == content_digest else None

    def put(self, path: str, entry: Entry) -> None:
        self.entries[path] = entry
        self.dirty = True

    def save(self, keep: set[str]) -> None:
        """Write the cache atomically, dropping files no longer checked. Failure to write is not an
        error: the cache only saves time."""
        if self.directory is None or not (self.dirty or set(self.entries) - keep):
            return
        entries = {path: entry for path, entry in self.entries.items() if path in keep}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("*\n")
            descriptor, partial = tempfile.mkstemp(dir=self.directory, prefix=".check-")
            with os.fdopen(descriptor, "wb") as handle:
                pickle.dump({"key": self.key, "entries": entries}, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(partial, self.directory / CACHE_FILE)
        except OSError:
            return
