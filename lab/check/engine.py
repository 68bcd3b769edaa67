"""`pglab check` end to end: files -> statements -> schema -> rules -> suppressions -> findings.

Two passes, because rules about one file need the schema learnt from all of them: the first reads
every file (or its cache entry) and collects the DDL in file order; the second runs the rules on
each file against the finished schema model. A rule that raises on some odd input costs a
diagnostic, never the run. The per-file work lives in `filecheck`; with enough text to parse it
is spread over every core (`shards`); a `.sql` file over LARGE_FILE is streamed statement by
statement instead of read whole, and is not cached.

Input that was not analysed (an unreadable file, an unparsable statement, a file too large or too
deep) is a diagnostic, and `Result.unanalysed` counts them so that the command line never calls
such a run clean.
"""

from __future__ import annotations

import fnmatch
import functools
import gc
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pglab.lab.check.cache import Cache, Entry, RawFinding, digest
from pglab.lab.check.config import DEFAULT_EXCLUDE, Config
from pglab.lab.check.ddlorder import ordered
from pglab.lab.check.extract import decode
from pglab.lab.check.filecheck import Context, Ddl, Worker, decoded, stream_check, stream_ddl
from pglab.lab.check.schema import Origin, Schema
from pglab.lab.check.settle import settle
from pglab.lab.check.shards import Shards, cores
from pglab.lab.check.sqltext import FileLocator
from pglab.lab.check.walk import Dispatch, Rule, load_rules
from pglab.lab.core.errors import UserError
from pglab.lab.core.findings import Finding
from pglab.lab.core.report import Diagnostic

EXTENSIONS = (".sql", ".py")
LARGE_FILE = 8 * 1024 * 1024  # bytes: a larger .sql file is streamed
LARGEST_PYTHON = 64 * 1024 * 1024  # bytes: `ast` needs the whole file, and its tree is ~20x the text
LONGEST_COMMENT = 4096  # characters of a very long line held back while a large file is scanned for comments
# Characters to parse before forking workers pays for itself. Measured cold, end to end, on 2 cores
# (2026-12-02): 100 KB of rule-heavy generated SQL took as long either way (0.43 s against 0.45);
# 255 KB 0.73 s in one process against 0.56 s shared out, 1.04 MB 1.80 against 1.29 (1 MB
# was the threshold before: the benchmark's generated corpus, 1.04 million characters, sat under it).
PARALLEL_MIN = 256 * 1024
NOT_ANALYSED = frozenset({"unreadable", "unparsable", "unanalysed", "internal-error"})
_SUPPRESSION = re.compile(r"(?:#|--)\s*pglab:\s*ignore\[([^\]]*)\]")


@dataclass
class Result:
    findings: list[Finding]
    diagnostics: list[Diagnostic]
    files: int
    statements: int
    cached_files: int
    schema: Schema
    notes: list[str] = field(default_factory=list)  # for the user, not about the code (an ignored cache)

    @property
    def unanalysed(self) -> int:
        """Diagnostics that mean some input was not analysed: such a run is not clean."""
        return sum(1 for diagnostic in self.diagnostics if diagnostic.kind in NOT_ANALYSED)


@dataclass
class Source:
    """One file to check: its text (None when streamed) and its cache entry once known."""

    path: str
    content: str  # digest of the bytes
    text: str | None
    entry: Entry | None = None


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


@functools.lru_cache(maxsize=4096)
def _order(path: str) -> tuple[str, ...]:
    """Sort key of a path: directory by directory (`a/b.sql` before `a-b.sql`)."""
    return tuple(Path(path).parts)


def _excluded(path: str, config: Config) -> bool:
    normal = path.replace(os.sep, "/").removeprefix("./")
    return any(fnmatch.fnmatch(normal, pattern) or fnmatch.fnmatch(os.path.basename(normal), pattern)
               for pattern in config.exclude)


# -- the run ------------------------------------------------------------------------------------


def engine_key(ids: list[str], config: Config) -> str:
    """Cache key: pglab's rule and engine code (and the findings it stores, in `core`), the
    selection and the settings rules read, so any change starts afresh."""
    from pglab import antipatterns
    from pglab.lab import check, core

    hasher = hashlib.sha1(f"{','.join(sorted(ids))};{config.max_connections}".encode())
    for package in (check, antipatterns, core):
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
    cache = Cache(cache_dir, engine_key(ids, config) if cache_dir is not None else "")  # no cache: no key to read
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the parse trees are many small dicts; collection passes over them cost more than they free
    try:
        result = _run(files, rules, config, schema, cache)
    finally:
        if gc_was_enabled:
            gc.enable()
    result.notes = cache.notes
    return result


def _run(files: list[str], rules: list[Rule], config: Config, live_schema: Schema | None, cache: Cache) -> Result:
    sources: list[Source] = []
    diagnostics: list[Diagnostic] = []
    marks: dict[str, list[Suppression]] = {}
    for path in files:
        source, problem = _read(path, marks)
        if source is None:
            diagnostics += [problem] if problem else []
            continue
        source.entry = cache.get(path, source.content) if source.text is not None else None
        sources.append(source)
    dispatch = Dispatch.of(rules)
    worker = Worker(config, dispatch)
    todo = [(source.path, source.text) for source in sources if source.entry is None and source.text is not None]
    count = cores() if sum(len(text) for _, text in todo) >= PARALLEL_MIN else 1
    shards = Shards(worker, count) if count > 1 else None
    try:
        contents = {source.path: source.content for source in sources if source.entry is None}
        for path, (statements, ddl, problems) in (shards or worker).extract(todo).items():
            cache.put(path, Entry(contents[path], statements, ddl, problems))
        streamed = {source.path: stream_ddl(source.path) for source in sources if source.text is None}
        for source in sources:
            source.entry = source.entry or cache.entries.get(source.path)
        schema = live_schema or _schema_from(sources, streamed)
        # the key of the findings in the cache; with no cache to keep them in, every file was
        # checked in this run against this schema, and a constant key serves (hashing the whole
        # schema model's text costs tens of milliseconds on a large one)
        fingerprint = schema.fingerprint() if cache.directory is not None else "this run"
        stale = [(source.path, source.text) for source in sources if source.entry is not None
                 and source.text is not None and fingerprint not in source.entry.findings
                 and source.path not in contents]
        checked = (shards or worker).check(schema, stale)
    finally:
        if shards is not None:
            shards.close()
    context = Context(schema, config)
    context.texts = {source.path: source.text for source in sources if source.text is not None}
    raw: list[RawFinding] = []
    cached_files = statements = 0
    for source in sources:
        if source.entry is None:  # streamed: checked here, statement by statement
            count_here, found, problems = stream_check(source.path, dispatch, context)
            statements += count_here
            raw += found
            diagnostics += problems
            continue
        if source.path in checked:
            source.entry.findings = {fingerprint: checked[source.path][0]}
            source.entry.diagnostics = checked[source.path][1]
            cache.dirty = True
        else:
            cached_files += 1
        statements += source.entry.statements
        raw += source.entry.findings[fingerprint]
        diagnostics += source.entry.diagnostics
    raw += _check_schema(rules, context)
    findings, unused = _suppress(raw, marks, [rule.entry.id for rule in rules])
    findings = settle(findings, config)  # per-file ignores, one finding per rule per line
    cache.save({source.path for source in sources if source.entry is not None})
    findings.sort(key=lambda item: (_order(item.path or ""), item.line or 0, item.column or 0, item.code))
    diagnostics.sort(key=lambda item: (_order(item.path or ""), item.line or 0))
    return Result(findings, diagnostics + unused, len(files), statements, cached_files, schema)


def _read(path: str, marks: dict[str, list[Suppression]]) -> tuple[Source | None, Diagnostic | None]:
    """A file's digest and text (a large .sql file: its digest only, after checking it decodes),
    and its inline suppressions into `marks`; or why it cannot be checked."""
    try:
        size = os.path.getsize(path)
        if size > LARGE_FILE and path.endswith(".sql"):
            return _read_streamed(path, marks), None
        if size > LARGEST_PYTHON:
            return None, Diagnostic("unanalysed", f"file not analysed: {size // 2**20} MB is more than pglab "
                                    f"reads of a Python file ({LARGEST_PYTHON // 2**20} MB)", path, 1, 1)
        data = Path(path).read_bytes()
    except OSError as error:
        return None, Diagnostic("unreadable", str(error.strerror or error), path)
    except UnicodeDecodeError as error:
        return None, Diagnostic("unreadable", f"not UTF-8 text ({error.reason})", path, 1, 1)
    text, problem = decode(path, data)
    if problem is not None or text is None:
        return None, problem
    marks[path] = suppressions(path, text)
    return Source(path, digest(data), text), None


def _read_streamed(path: str, marks: dict[str, list[Suppression]]) -> Source:
    """A file too large to hold: checked to decode, and its suppressions found, a chunk at a time
    cut at line ends (a comment is never cut in two). Not cached, so no digest."""
    found: list[Suppression] = []
    line, carry = 1, ""
    for chunk in decoded(path):
        text = carry + chunk
        end = text.rfind("\n") + 1 if chunk else len(text)
        found += suppressions(path, text[:end], line)
        line += text.count("\n", 0, end)
        carry = text[end:]
        if len(carry) > 2 * LONGEST_COMMENT:  # one very long line: scan its start now, keep only its end
            found += suppressions(path, carry[:-LONGEST_COMMENT], line)
            carry = carry[-LONGEST_COMMENT:]
    marks[path] = found
    return Source(path, "", None)


def _schema_from(sources: list[Source], streamed: dict[str, Ddl]) -> Schema:
    schema = Schema()
    files = [(source.path, source.entry.ddl if source.entry is not None else streamed.get(source.path, []))
             for source in sources]
    for path, ddl in ordered(files):  # dependency order, teardown scripts left out
        schema.sources.append(path)
        for kind, body, line, column in ddl:
            schema.apply(kind, body, Origin(path, line, column))
    return schema


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


def suppressions(path: str, text: str, first_line: int = 1) -> list[Suppression]:
    if "pglab:" not in text:
        return []
    locator = FileLocator(text, first_line)
    found = []
    for match in _SUPPRESSION.finditer(text):
        line, column = locator.position(match.start())
        before = text[text.rfind("\n", 0, match.start()) + 1 : match.start()]
        keys = [key.strip().lower() for key in match.group(1).split(",") if key.strip()]
        found.append(Suppression(path, line, column, keys, not before.strip()))
    return found


def _suppress(raw: list[RawFinding], marks: dict[str, list[Suppression]], active: list[str]
              ) -> tuple[list[Finding], list[Diagnostic]]:
    from pglab.lab.core.catalogue import load_catalogue

    codes = {entry.code.lower(): entry.id for entry in load_catalogue()}
    by_path = {path: found for path, found in marks.items() if found}
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
