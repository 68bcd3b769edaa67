"""The work on one file: reading its statements and DDL, and running the rules on it.

`Worker` keeps the files it parsed between the two passes (DDL first, rules once the schema is
complete), so a file is parsed once; the engine runs one worker in-process, or one per core in
forked processes (`shards`). A `.sql` file too large to hold is streamed instead, statement by
statement, in each pass (`stream_ddl`, `stream_check`): memory stays bounded by the largest
statement, not the file.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pglab.lab.check import sqlnodes
from pglab.lab.check.cache import RawFinding
from pglab.lab.check.config import Config
from pglab.lab.check.extract import FileResult, PyModule, Query, _parse_into, extract_file
from pglab.lab.check.schema import POSITION_KEY, SCHEMA_KINDS, Origin, Schema
from pglab.lab.check.sqltext import FileLocator, Located, stream_statements
from pglab.lab.check.walk import Dispatch, walk_sql
from pglab.lab.core.findings import Finding
from pglab.lab.core.report import Diagnostic

CHUNK = 1 << 20  # bytes read at a time from a streamed file
DDL_START = re.compile(r"(?:CREATE|ALTER|DROP)\b", re.I)  # the statements SCHEMA_KINDS come from
Ddl = list[tuple[str, dict[str, Any], int, int]]


class Context:
    """What a rule hook sees: the schema, the file and statement at hand, and `report()`."""

    def __init__(self, schema: Schema, config: Config) -> None:
        self.schema = schema
        self.config = config
        self.rule: Any = None
        self.file: FileResult | None = None
        self.query: Query | None = None
        self.found: list[RawFinding] = []
        self.texts: dict[str, str] = {}
        self.lines: dict[str, list[str]] = {}
        self.first_line: dict[str, int] = {}  # the file line of lines[path][0], when not 1 (a streamed file)

    @property
    def module(self) -> PyModule | None:
        return self.file.module if self.file else None

    @property
    def max_connections(self) -> int:
        return self.schema.max_connections or self.config.max_connections

    def report(self, at: Any, message: str, *, rewrite: str | None = None, severity: str = "warning",
               evidence: dict[str, Any] | None = None, hint: str | None = None) -> None:
        """Record a finding of the current rule at `at`: a SQL node (or its location) of the
        current statement, a Python node of the current file, or a schema `Origin`."""
        assert self.rule is not None
        entry = self.rule.entry
        path, line, column, first, last = self._place(at)
        source = self.line_text(path, line) if path and line else None
        finding = Finding(entry.id, entry.code, message, severity, path, line, column, hint or entry.fix_hint,
                          rewrite, source, evidence or {})  # `hint`: the fix in the user's own names
        self.found.append(RawFinding(finding, first or line or 0, last or line or 0))

    def line_text(self, path: str, line: int) -> str | None:
        """Line `line` of a checked file (split once per file, not once per question; a streamed
        file has only the current statement's lines)."""
        lines = self.lines.get(path)
        if lines is None:
            lines = self.lines[path] = self.texts.get(path, "").splitlines()
        index = line - self.first_line.get(path, 1)
        return lines[index] if 0 <= index < len(lines) else None

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


class Worker:
    """Extracts files, keeps them, and later checks them against the finished schema."""

    def __init__(self, config: Config, dispatch: Dispatch) -> None:
        self.config = config
        self.dispatch = dispatch
        self.parsed: dict[str, FileResult] = {}
        self.texts: dict[str, str] = {}
        self.prepared: set[str] = set()  # files whose trees `prepare` has decoded

    def extract(self, items: Iterable[tuple[str, str]]) -> dict[str, tuple[int, Ddl, list[Diagnostic]]]:
        """Pass 1: path -> (statements, DDL, diagnostics) of each file (`items` may be handed
        out as the work goes: `shards`)."""
        out = {}
        for path, text in items:
            result = extract(path, text)
            self.parsed[path], self.texts[path] = result, text
            out[path] = (result.statements, ddl_of(result), result.diagnostics)
        return out

    def check(self, schema: Schema, items: list[tuple[str, str]],
              between: Callable[[deque[tuple[str, str]]], None] | None = None
              ) -> dict[str, tuple[list[RawFinding], list[Diagnostic]]]:
        """Pass 2: the files this worker extracted, and `items` (files whose cached findings were
        computed against another schema, or that another process extracted), each to (findings,
        diagnostics). `between`, called after each file with the files left, may take some of
        them away (`shards` hands them to a process that ran out of work)."""
        context = Context(schema, self.config)
        todo = deque([*self.texts.items(), *items])
        context.texts = dict(todo)
        self.texts = {}
        out = {}
        while todo:
            path, text = todo.popleft()
            result = self.parsed.pop(path, None) or extract(path, text)
            out[path] = (check_file(result, self.dispatch, context), result.diagnostics)
            if between is not None:
                between(todo)
        return out

    def prepare(self, interrupted: Callable[[], bool]) -> None:
        """While idle between the passes (the engine is building the schema), decode the trees
        pass 2 will walk (what `check_file` decodes: it depends on the text, not the schema), a
        file at a time until `interrupted()`. A statement whose decoding fails is left for pass
        2, which reports it as it would have."""
        for path in [path for path in self.parsed if path not in self.prepared]:
            self.prepared.add(path)
            for query in self.parsed[path].queries:
                text = query.json
                with contextlib.suppress(Exception):  # a gate or a decoding that fails is pass 2's to report
                    if text and query.tree is None and sum(map(text.count, self.dispatch.plan(query.kind, text)[1])):
                        query.body  # noqa: B018 -- decoded and kept on the query
            if interrupted():
                return


def extract(path: str, text: str) -> FileResult:
    try:
        return extract_file(path, text)
    except (RecursionError, MemoryError) as error:
        problem = Diagnostic("unanalysed", f"file not analysed: too deeply nested or too large "
                             f"({type(error).__name__})", path, 1, 1)
        return FileResult(path, text, diagnostics=[problem])


def ddl_of(result: FileResult) -> Ddl:
    """The file's DDL, each constraint tagged with its own file position (the cache keeps no
    locators, and a foreign key is best reported on its own line, not on its CREATE TABLE's)."""
    ddl = []
    for query in result.queries:
        if query.kind in SCHEMA_KINDS:
            for kind, body in sqlnodes.walk({query.kind: query.body}) if query.has("Constraint") else ():
                if kind == "Constraint" and isinstance(body.get("location"), int):
                    body[POSITION_KEY] = query.position(body["location"])
            ddl.append((query.kind, query.body, *query.position(0)))
    return ddl


def check_file(result: FileResult, dispatch: Dispatch, context: Context) -> list[RawFinding]:
    context.file = result
    context.found = []
    for query in result.queries:
        context.query = query
        try:
            # the printed tree says which hooks can find anything in it (`Dispatch.plan`) and
            # how many of their nodes it holds: none (DROP, SET, most DDL: two in five statements
            # of a migration-heavy corpus) means no walk, and the walk stops once it has met them
            text = query.json
            if not text:
                walk_sql({query.kind: query.body}, dispatch.sql, context)
                queries = dispatch.query_for(query.kind)
            else:
                hooks, wanted, queries = dispatch.plan(query.kind, text)
                if budget := sum(map(text.count, wanted)):
                    walk_sql({query.kind: query.body}, hooks, context, budget)
            for rule, hook in queries:
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


# -- streamed files -------------------------------------------------------------------------------


def read_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def decoded(path: str) -> Iterator[str]:
    """The file's text in chunks; UnicodeDecodeError when it is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for chunk in read_chunks(path):
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _statements(path: str, only_ddl: bool) -> Iterator[tuple[Located, FileResult]]:
    for located in stream_statements(decoded(path)):
        if only_ddl and not DDL_START.match(located.text):
            continue
        result = FileResult(path, "")
        try:
            _parse_into(result, located.text, FileLocator(located.text, located.line, located.column), {}, None)
        except (RecursionError, MemoryError) as error:
            result.diagnostics.append(Diagnostic("unanalysed", f"statement not analysed ({type(error).__name__})",
                                                 path, located.line, located.column))
        yield located, result


def stream_ddl(path: str) -> Ddl:
    """Pass 1 of a streamed file: only the statements that can change the schema are parsed."""
    return [item for _, result in _statements(path, only_ddl=True) for item in ddl_of(result)]


def stream_check(path: str, dispatch: Dispatch, context: Context
                 ) -> tuple[int, list[RawFinding], list[Diagnostic]]:
    """Pass 2 of a streamed file: every statement parsed, checked and dropped in turn."""
    statements, found, diagnostics = 0, [], []
    for located, result in _statements(path, only_ddl=False):
        context.lines[path] = (located.lead + located.text + located.trail).splitlines()
        context.first_line[path] = located.line
        statements += result.statements
        found += check_file(result, dispatch, context)
        diagnostics += result.diagnostics
    context.lines.pop(path, None)
    context.first_line.pop(path, None)
    return statements, found, diagnostics
