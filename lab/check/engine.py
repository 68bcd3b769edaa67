"""`pglab check` end to end: files -> statements -> schema -> rules -> suppressions -> findings.

Two passes, because rules about one file need the schema learnt from all of them: the first reads
every file (or its cache entry) and collects the DDL in file order; the second runs the rules on
each file against the finished schema model. A rule that raises on some odd input costs a
diagnostic, never the run.
"""

from __future__ import annotations

import ast
import fnmatch
import gc
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pglab.lab.check import sqlnodes
from pglab.lab.check.cache import Cache, Entry, RawFinding, digest
from pglab.lab.check.config import DEFAULT_EXCLUDE, Config
from pglab.lab.check.extract import FileResult, PyModule, Query, decode, extract_file
from pglab.lab.check.schema import POSITION_KEY, SCHEMA_KINDS, Origin, Schema
from pglab.lab.check.sqltext import FileLocator
from pglab.lab.check.walk import Dispatch, Rule, load_rules, walk_sql
from pglab.lab.core.errors import UserError
from pglab.lab.core.findings import Finding
from pglab.lab.core.report import Diagnostic

EXTENSIONS = (".sql", ".py")
_SUPPRESSION = re.compile(r"(?:#|--)\s*pglab:\s*ignore\[([^\]]*)\]")


@dataclass
class Result:
    findings: list[Finding]
    diagnostics: list[Diagnostic]
    files: int
    statements: int
    cached_files: int
    schema: Schema


class Context:
    """What a rule hook sees: the schema, the file and statement at hand, and `report()`."""

    def __init__(self, schema: Schema, config: Config) -> None:
        self.schema = schema
        self.config = config
        self.rule: Rule | None = None
        self.file: FileResult | None = None
        self.query: Query | None = None
        self.found: list[RawFinding] = []
        self.texts: dict[str, str] = {}
        self.lines: dict[str, list[str]] = {}

    @property
    def module(self) -> PyModule | None:
        return self.file.module if self.file else None

    @property
    def max_connections(self) -> int:
        return self.schema.max_connections or self.config.max_connections

    def report(self, at: Any, message: str, *, rewrite: str | None = None, severity: str = "warning",
               evidence: dict[str, Any] | None = None) -> None:
        """Record a finding of the current rule at `at`: a SQL node (or its location) of the
        current statement, a Python node of the current file, or a schema `Origin`."""
        assert self.rule is not None
        entry = self.rule.entry
        path, line, column, first, last = self._place(at)
        source = self._line(path, line) if path and line else None
        finding = Finding(entry.id, entry.code, message, severity, path, line, column, entry.fix_hint, rewrite,
                          source, evidence or {})
        self.found.append(RawFinding(finding, first or line or 0, last or line or 0))

    def _line(self, path: str, line: int) -> str | None:
        lines = self.lines.get(path)
        if lines is None:
            lines = self.lines[path] = self.texts.get(path, "").splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else None

    def _place(self, at: Any) -> tuple[str | None, int | None, int | None, int | None, int | None]:
        if isinstance(at, Origin):
            return at.path, at.line, at.column, at.line, at.line
        if at is None and self.query is None:
            return None, None, None, None, None
        if isinstance(at, ast.AST):
            assert self.module is not None
            line, column = self.module.source.start(at)
            statement = _statement_of(self.module, at)
            first, last = getattr(statement, "lineno", line), getattr(statement, "end_lineno", line)
            return self.module.path, line, column, first, last
        query = self.query
        assert query is not None
        location = at if isinstance(at, int) else sqlnodes.location(at) if isinstance(at, dict) else None
        line, column = query.position(location)
        if query.call is not None:
            node = _statement_of(query.call.module, query.call.node)
            return query.path, line, column, getattr(node, "lineno", line), getattr(node, "end_lineno", line)
        first = query.position(0)[0]
        last = query.locator.position(max(len(query.sql) - 1, 0))[0]
        return query.path, line, column, first, last


def _statement_of(module: PyModule, node: ast.AST) -> ast.AST:
    """The statement a node belongs to: its lines are where an inline `# pglab: ignore` may sit."""
    current = node
    for ancestor in module.ancestors(node):
        if isinstance(current, ast.stmt):
            return current
        current = ancestor
    return current


# -- discovery ----------------------------------------------------------------------------------


def discover(paths: list[str], config: Config) -> list[str]:
    """The .sql and .py files under `paths`, sorted (so migrations apply in their numbered order)."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(os.path.normpath(path))
            continue
        if not path.is_dir():
            raise UserError(f"no such file or directory: {raw}")
        for directory, subdirectories, files in os.walk(path):
            subdirectories[:] = sorted(name for name in subdirectories
                                       if name not in DEFAULT_EXCLUDE and not name.startswith(".")
                                       and not _excluded(os.path.join(directory, name), config))
            for name in sorted(files):
                candidate = os.path.join(directory, name)
                if name.endswith(EXTENSIONS) and not _excluded(candidate, config):
                    found.append(os.path.normpath(candidate))
    return sorted(dict.fromkeys(found), key=_order)


def _order(path: str) -> tuple[str, ...]:
    return tuple(Path(path).parts)


def _excluded(path: str, config: Config) -> bool:
    normal = path.replace(os.sep, "/").removeprefix("./")
    return any(fnmatch.fnmatch(normal, pattern) or fnmatch.fnmatch(os.path.basename(normal), pattern)
               for pattern in config.exclude)


# -- the run ------------------------------------------------------------------------------------


def engine_key(ids: list[str], config: Config) -> str:
    """Cache key: pglab's rule and engine code, the selection and the settings rules read, so any
    change starts afresh."""
    from pglab import antipatterns
    from pglab.lab import check

    hasher = hashlib.sha1(f"{','.join(sorted(ids))};{config.max_connections}".encode())
    for package in (check, antipatterns):
        for directory in package.__path__:
            for name in sorted(os.listdir(directory)):
                if name.endswith(".py"):
                    hasher.update(name.encode())
                    hasher.update(Path(directory, name).read_bytes())
    return hasher.hexdigest()


def run(paths: list[str], config: Config, *, schema: Schema | None = None, use_cache: bool = True) -> Result:
    """Check `paths`. `schema` (read from a live catalog) replaces the one learnt from DDL."""
    ids = config.selected_ids()
    rules = [rule for rule in load_rules(ids) if rule.has_hooks]
    files = discover(paths, config)
    cache_dir = (config.cache_dir or config.root / ".pglab_cache") if use_cache else None
    cache = Cache(cache_dir, engine_key(ids, config))
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the parse trees are many small dicts; collection passes over them cost more than they free
    try:
        return _run(files, rules, config, schema, cache)
    finally:
        if gc_was_enabled:
            gc.enable()


def _run(files: list[str], rules: list[Rule], config: Config, live_schema: Schema | None, cache: Cache) -> Result:
    texts: dict[str, str] = {}
    entries: dict[str, Entry] = {}
    parsed: dict[str, FileResult] = {}
    diagnostics: list[Diagnostic] = []
    for path in files:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            diagnostics.append(Diagnostic("unreadable", str(error.strerror or error), path))
            continue
        text, problem = decode(path, data)
        if problem is not None or text is None:
            diagnostics += [problem] if problem else []
            continue
        texts[path] = text
        content = digest(data)
        entry = cache.get(path, content)
        if entry is None:
            result = _extract(path, text)
            parsed[path] = result
            entry = Entry(content, result.statements, _ddl_of(result), result.diagnostics)
            cache.put(path, entry)
        entries[path] = entry

    schema = live_schema or _schema_from(entries)
    fingerprint = schema.fingerprint()
    context = Context(schema, config)
    context.texts = texts
    dispatch = Dispatch.of(rules)
    raw: list[RawFinding] = []
    cached_files = 0
    for path, entry in entries.items():
        findings = entry.findings.get(fingerprint)
        if findings is None:
            result = parsed.get(path) or _extract(path, texts[path])
            findings = _check_file(result, dispatch, context)
            entry.findings = {fingerprint: findings}
            entry.diagnostics = result.diagnostics
            cache.dirty = True
        elif path not in parsed:
            cached_files += 1
        raw += findings
        diagnostics += entry.diagnostics
    raw += _check_schema(rules, context)
    findings, unused = _suppress(raw, texts, [rule.entry.id for rule in rules])
    cache.save(set(entries))
    statements = sum(entry.statements for entry in entries.values())
    findings.sort(key=lambda item: (_order(item.path or ""), item.line or 0, item.column or 0, item.code))
    diagnostics.sort(key=lambda item: (_order(item.path or ""), item.line or 0))
    return Result(findings, diagnostics + unused, len(files), statements, cached_files, schema)


def _extract(path: str, text: str) -> FileResult:
    try:
        return extract_file(path, text)
    except (RecursionError, MemoryError) as error:
        problem = Diagnostic("unparsable", f"too deeply nested ({type(error).__name__})", path, 1, 1)
        return FileResult(path, text, diagnostics=[problem])


def _ddl_of(result: FileResult) -> list[tuple[str, dict[str, Any], int, int]]:
    """The file's DDL, each constraint tagged with its own file position (the cache keeps no
    locators, and a foreign key is best reported on its own line, not on its CREATE TABLE's)."""
    ddl = []
    for query in result.queries:
        if query.kind in SCHEMA_KINDS:
            for kind, body in sqlnodes.walk({query.kind: query.body}):
                if kind == "Constraint" and isinstance(body.get("location"), int):
                    body[POSITION_KEY] = query.position(body["location"])
            ddl.append((query.kind, query.body, *query.position(0)))
    return ddl


def _schema_from(entries: dict[str, Entry]) -> Schema:
    schema = Schema()
    for path, entry in entries.items():
        for kind, body, line, column in entry.ddl:
            schema.apply(kind, body, Origin(path, line, column))
    return schema


def _check_file(result: FileResult, dispatch: Dispatch, context: Context) -> list[RawFinding]:
    context.file = result
    context.found = []
    for query in result.queries:
        context.query = query
        try:
            walk_sql({query.kind: query.body}, dispatch.sql, context)
            for rule, hook in dispatch.query:
                context.rule = rule
                hook(query, context)
        except Exception as error:  # a rule bug on odd input must not end the run
            _internal_error(result, context, error, query.position(0)[0])
    context.query = None
    if result.module is not None and dispatch.py:
        for node in result.module.nodes:
            for rule, hook in dispatch.py.get(type(node).__name__, ()):
                context.rule = rule
                try:
                    hook(node, context)
                except Exception as error:  # likewise
                    _internal_error(result, context, error, getattr(node, "lineno", 1))
    context.file = None
    return context.found


def _internal_error(result: FileResult, context: Context, error: Exception, line: int) -> None:
    rule = context.rule.entry.id if context.rule else "?"
    result.diagnostics.append(Diagnostic("internal-error", f"{rule}: {type(error).__name__}: {error}", result.path,
                                         line, 1))


def _check_schema(rules: list[Rule], context: Context) -> list[RawFinding]:
    context.found = []
    context.query = None
    for rule in rules:
        if rule.schema is not None:
            context.rule = rule
            rule.schema(context.schema, context)
    return context.found


# -- suppressions -------------------------------------------------------------------------------


@dataclass
class Suppression:
    path: str
    line: int
    column: int
    keys: list[str]
    alone: bool  # the comment is the only thing on its line: it also covers the next line
    used: set[str] = field(default_factory=set)


def suppressions(path: str, text: str) -> list[Suppression]:
    if "pglab:" not in text:
        return []
    locator = FileLocator(text)
    found = []
    for match in _SUPPRESSION.finditer(text):
        line, column = locator.position(match.start())
        before = text[text.rfind("\n", 0, match.start()) + 1 : match.start()]
        keys = [key.strip().lower() for key in match.group(1).split(",") if key.strip()]
        found.append(Suppression(path, line, column, keys, not before.strip()))
    return found


def _suppress(raw: list[RawFinding], texts: dict[str, str], active: list[str]
              ) -> tuple[list[Finding], list[Diagnostic]]:
    from pglab.lab.core.catalogue import load_catalogue

    codes = {entry.code.lower(): entry.id for entry in load_catalogue()}
    by_path: dict[str, list[Suppression]] = {}
    for path, text in texts.items():
        found = suppressions(path, text)
        if found:
            by_path[path] = found
    kept = []
    for item in raw:
        finding = item.finding
        matched = False
        for suppression in by_path.get(finding.path or "", ()):
            if not (item.first_line <= suppression.line <= item.last_line or suppression.line == finding.line
                    or (suppression.alone and suppression.line == item.first_line - 1)):
                continue
            for key in suppression.keys:
                if codes.get(key, key) == finding.id or key == "all":
                    suppression.used.add(key)
                    matched = True
        if not matched:
            kept.append(finding)
    unused = []
    known = set(codes.values())
    for found in by_path.values():
        for suppression in found:
            for key in suppression.keys:
                entry_id = codes.get(key, key)
                if key in suppression.used:
                    continue
                if entry_id not in known and key != "all":
                    unused.append(Diagnostic("unknown-suppression", f"pglab: ignore[{key}] names no anti-pattern",
                                             suppression.path, suppression.line, suppression.column))
                elif key == "all" or entry_id in active:
                    unused.append(Diagnostic("unused-suppression", f"pglab: ignore[{key}] suppresses nothing",
                                             suppression.path, suppression.line, suppression.column))
    return kept, unused
