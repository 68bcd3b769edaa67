"""A cache keyed by file content, so a second `pglab check` on an unchanged tree parses nothing.

Per file it keeps the DDL (to rebuild the schema model without parsing) and the findings,
keyed by the schema they were computed against: a migration that adds an index invalidates the
findings of every file, an edit to one file only that file's. The whole cache is one JSON
document under a key that covers pglab's own rule code and the selected rules, so upgrading
pglab or changing `--select` starts afresh.

Why JSON and a validator: the cache directory sits in the checked repository, and a repository
can commit anything there. A format that can run code when loaded (pickle) would run the
repository's code as whoever runs `pglab check`, often root in CI. JSON only ever yields data,
and every entry is checked field by field before use; a cache that does not validate is ignored
with a note (and rewritten), never trusted and never a crash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pglab.lab.core.findings import Finding
from pglab.lab.core.report import Diagnostic

CACHE_FILE = "check.json"
FORMAT = "pglab-check-cache"
VERSION = 1
OLD_FILES = ("check.pickle",)  # formats of earlier pglab versions: never loaded, only mentioned


class Invalid(ValueError):
    """The stored cache is not one this version wrote."""


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
        self.notes: list[str] = []  # why a stored cache was ignored, for the user
        if directory is not None:
            self._load()

    def _load(self) -> None:
        assert self.directory is not None
        for name in OLD_FILES:
            if (self.directory / name).exists():
                self.notes.append(f"{self.directory / name} is a cache format pglab no longer reads "
                                  "(it is never loaded); delete it")
        path = self.directory / CACHE_FILE
        try:
            data = path.read_bytes()
        except OSError:
            return
        try:
            stored = orjson.loads(data)
            self.entries = _entries(stored, self.key)
        except (orjson.JSONDecodeError, Invalid) as error:
            self.notes.append(f"ignored the cache {path}: {error}")
            self.dirty = True  # rewrite it with what this run learns

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
        document = {"format": FORMAT, "version": VERSION, "key": self.key,
                    "entries": {path: _entry_json(entry) for path, entry in self.entries.items() if path in keep}}
        try:
            data = orjson.dumps(document)
        except TypeError:  # a rule put something JSON cannot hold in its evidence: do without a cache
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("*\n")
            descriptor, partial = tempfile.mkstemp(dir=self.directory, prefix=".check-")
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(partial, self.directory / CACHE_FILE)
        except OSError:
            return


# -- writing ------------------------------------------------------------------------------------


def _entry_json(entry: Entry) -> dict[str, Any]:
    """orjson writes a dataclass as its fields: asdict's deep copy of every finding took 0.18-0.36 s
    of a first run on PostgreSQL's regression suite, 0.05-0.08 s without it."""
    return {"digest": entry.digest, "statements": entry.statements,
            "ddl": [list(item) for item in entry.ddl],
            "diagnostics": list(entry.diagnostics),
            "findings": {schema: [{"finding": raw.finding, "first_line": raw.first_line,
                                   "last_line": raw.last_line} for raw in found]
                         for schema, found in entry.findings.items()}}


# -- reading: every field checked, so nothing but what `save` wrote is ever used ------------------


def _entries(stored: Any, key: str) -> dict[str, Entry]:
    document = _dict(stored, "the document")
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise Invalid(f"not a version {VERSION} {FORMAT} document")
    entries = {_str(path, "a path"): _entry(value) for path, value in _dict(document.get("entries"), "entries").items()}
    # another pglab version or another selection wrote it: stale, not suspicious
    return entries if document.get("key") == key else {}


def _entry(value: Any) -> Entry:
    body = _dict(value, "an entry")
    ddl = []
    for item in _list(body.get("ddl"), "ddl"):
        parts = _list(item, "a DDL item")
        if len(parts) != 4:
            raise Invalid("a DDL item is not (kind, body, line, column)")
        ddl.append((_str(parts[0], "a DDL kind"), _dict(parts[1], "a DDL body"), _int(parts[2]), _int(parts[3])))
    findings = {_str(schema, "a schema fingerprint"): [_raw(raw) for raw in _list(found, "findings")]
                for schema, found in _dict(body.get("findings"), "findings").items()}
    return Entry(_str(body.get("digest"), "a digest"), _int(body.get("statements")), ddl,
                 [_diagnostic(item) for item in _list(body.get("diagnostics"), "diagnostics")], findings)


def _diagnostic(value: Any) -> Diagnostic:
    body = _dict(value, "a diagnostic")
    return Diagnostic(_str(body.get("kind"), "a kind"), _str(body.get("message"), "a message"),
                      _optional(body.get("path"), str), _optional(body.get("line"), int),
                      _optional(body.get("column"), int))


def _raw(value: Any) -> RawFinding:
    body = _dict(value, "a finding")
    item = _dict(body.get("finding"), "a finding")
    finding = Finding(
        _str(item.get("id"), "an id"), _str(item.get("code"), "a code"), _str(item.get("message"), "a message"),
        _str(item.get("severity"), "a severity"), _optional(item.get("path"), str), _optional(item.get("line"), int),
        _optional(item.get("column"), int), _str(item.get("fix_hint"), "a fix hint"),
        _optional(item.get("rewrite"), str), _optional(item.get("source"), str),
        _dict(item.get("evidence"), "evidence"))
    return RawFinding(finding, _int(body.get("first_line")), _int(body.get("last_line")))


def _dict(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise Invalid(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if type(value) is not list:
        raise Invalid(f"{what} is not an array")
    return value


def _str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise Invalid(f"{what} is not a string")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise Invalid("a number is not an integer")
    return value


def _optional(value: Any, kind: type) -> Any:
    if value is not None and type(value) is not kind:
        raise Invalid(f"a field is not {kind.__name__} or null")
    return value
