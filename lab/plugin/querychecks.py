"""The per-test checks of the pytest plugin, over the statements `pglab.lab.plugin.capture` recorded.

Each check turns statements into `Finding`s with the catalogue's id, code and fix hint, and the
call site that sent the statement, so a failing test says what ran, from where, how often, and
what to do about it. Statements are grouped by pglast fingerprint (psycopg's `%s` placeholders
turned into `$n` first), which ignores constants and parameter values: two lookups that differ
only by id are one query shape.
"""

from __future__ import annotations

import hashlib
import types
import typing
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cache, lru_cache
from typing import Any

import psycopg
from pglast import parse_sql
from pglast.parser import ParseError, fingerprint
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from pglab.lab.core.catalogue import find_entry
from pglab.lab.core.errors import UnknownEntry, UserError
from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import (
    INDEX_COLUMNS_SQL,
    command_of,
    leading_columns,
    placeholder_names,
    short,
    to_dollar_placeholders,
)
from pglab.lab.plugin.capture import Statement, Transaction

# --- statement shapes ---------------------------------------------------------------------------

_WRITES = {"insert", "update", "delete", "merge", "cte_write", "copy_from"}
_CONTROL = {"transaction", "set"}
# The catalogue entry whose lesson fixes a statement repeated per row, by statement command.
_REPEAT_ENTRY = {"select": "n_plus_one", "insert": "fanout_loop", "update": "per_row_update",
                 "delete": "per_row_update", "merge": "per_row_update", "cte_write": "per_row_update"}


@dataclass(frozen=True)
class Shape:
    """What the checks need to know about one statement text."""

    fingerprint: str
    command: str  # select, insert, update, delete, merge, cte_write, copy_from, copy_to, transaction, set, other
    explainable: bool  # a single DML statement whose plan is worth reading

    @property
    def statement_class(self) -> str:
        """The budget class: select, write, control (never counted) or other."""
        if self.command in _CONTROL:
            return "control"
        if self.command in _WRITES:
            return "write"
        return "select" if self.command == "select" else "other"


def _explainable(stmt: Any, command: str) -> bool:
    if command == "select":
        return stmt.intoClause is None
    if command == "insert":
        source = stmt.selectStmt
        return type(source).__name__ == "SelectStmt" and bool(source.fromClause)
    return command in ("update", "delete", "merge")


@lru_cache(maxsize=8192)
def shape_of(sql: str, has_params: bool) -> Shape:
    """The fingerprint and class of a statement text (cached: tests repeat the same texts)."""
    text = to_dollar_placeholders(sql) if has_params else sql
    try:
        parsed = parse_sql(text)
        print_ = fingerprint(text)
    except ParseError:
        flat = " ".join(text.lower().split())
        first = flat.split(" ", 1)[0] if flat else ""
        command = first if first in ("select", "insert", "update", "delete") else "other"
        return Shape("text:" + hashlib.sha1(flat.encode()).hexdigest()[:16], command, False)
    if not parsed:
        return Shape(print_, "other", False)
    commands = [command_of(raw.stmt) for raw in parsed]
    command = next((c for c in commands if c in _WRITES), commands[0])
    explainable = len(parsed) == 1 and _explainable(parsed[0].stmt, command)
    return Shape(print_, command, explainable)


def counted(statement: Statement) -> bool:
    """Statements a budget counts: not psycopg's own BEGIN/COMMIT/SAVEPOINT, not SET."""
    return not statement.control and shape_of(statement.sql, statement.has_params).statement_class != "control"


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every check's knobs; the session's from ini/command line, overridden per test by
    `@pytest.mark.pglab(...)`. A limit of 0 or None turns its check off."""

    n_plus_one: int = 5
    max_queries: int | None = None
    max_selects: int | None = None
    max_writes: int | None = None
    plans: bool = True
    plan_scale: float = 1.0
    txn_max_seconds: float | None = 5.0  # generous: a busy CI machine stretches every transaction
    txn_idle_seconds: float | None = 0.5
    allow: tuple[str, ...] = ()

    def override(self, values: Mapping[str, Any]) -> Settings:
        """These settings with a marker's keyword arguments applied; `allow` adds to the
        session's allow-list. Raises ValueError naming an unknown keyword."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown pglab marker option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        changes = dict(values)
        if "allow" in changes:
            extra = changes["allow"]
            changes["allow"] = self.allow + ((extra,) if isinstance(extra, str) else tuple(extra))
        for name, value in changes.items():
            expected = _setting_types()[name]
            if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
                wanted = " or ".join("None" if kind is type(None) else kind.__name__ for kind in expected)
                raise ValueError(f"pglab option {name} must be {wanted}, not {value!r}")
        return replace(self, **changes)


@cache
def _setting_types() -> dict[str, tuple[type, ...]]:
    """What each setting accepts, read from the annotations of `Settings` (an int where a float
    is wanted, too)."""
    accepted = {}
    for name, hint in typing.get_type_hints(Settings).items():
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds = tuple(typing.get_origin(member) or member for member in members)
        accepted[name] = kinds + ((int,) if float in kinds else ())
    return accepted


def allowed(finding: Finding, allow: Iterable[str]) -> bool:
    """An allow-list item names a catalogue id or code, a check, or one statement's fingerprint."""
    names = {finding.id, finding.code, finding.evidence.get("check"), finding.evidence.get("fingerprint")}
    return any(item in names for item in allow)


# --- checks -------------------------------------------------------------------------------------


def _entry(entry_id: str) -> tuple[str, str]:
    try:
        entry = find_entry(entry_id)
    except UnknownEntry:
        return "", ""
    return entry.code, entry.fix_hint


def _finding(entry_id: str, check: str, message: str, path: str | None, line: int | None, source: str | None,
             **evidence: Any) -> Finding:
    code, hint = _entry(entry_id)
    return Finding(id=entry_id, code=code, message=message, severity="error", path=path, line=line,
                   fix_hint=hint, source=source, evidence={"check": check, **evidence})


@dataclass
class Group:
    """Statements of one fingerprint sent from one call site."""

    first: Statement
    shape: Shape
    calls: int = 0


def groups(statements: Sequence[Statement]) -> list[Group]:
    """Counted statements grouped by (fingerprint, call site), most frequent first."""
    found: dict[tuple[str, str | None, int | None], Group] = {}
    for statement in statements:
        if not counted(statement):
            continue
        shape = shape_of(statement.sql, statement.has_params)
        key = (shape.fingerprint, statement.path, statement.line)
        group = found.get(key)
        if group is None:
            group = found[key] = Group(first=statement, shape=shape)
        group.calls += statement.batch if statement.source == "server" else 1
    return sorted(found.values(), key=lambda g: -g.calls)


def n_plus_one(statements: Sequence[Statement], settings: Settings) -> list[Finding]:
    """The same statement shape from the same line, at least `n_plus_one` times: a loop that
    sends one statement per row (Prosopite's rule)."""
    if not settings.n_plus_one:
        return []
    findings = []
    for group in groups(statements):
        if group.calls < settings.n_plus_one or group.shape.command not in _REPEAT_ENTRY:
            continue
        where = group.first.call_site
        findings.append(_finding(
            _REPEAT_ENTRY[group.shape.command], "n_plus_one",
            f"the same {group.shape.command.upper()} ran {group.calls} times from {where} "
            f"(threshold {settings.n_plus_one}): one statement per row",
            group.first.path, group.first.line, group.first.sql,
            fingerprint=group.shape.fingerprint, count=group.calls, call_site=where,
        ))
    return findings


_BUDGETS = (("max_queries", None, "statements"), ("max_selects", "select", "SELECTs"),
            ("max_writes", "write", "writes"))


def budget(statements: Sequence[Statement], settings: Settings) -> list[Finding]:
    """Statement counts over the test's budget, by class. The finding is filed under the entry
    that fixes the most repeated statement of that class, since repetition is what blows budgets."""
    findings = []
    grouped = groups(statements)
    for name, wanted, label in _BUDGETS:
        limit = getattr(settings, name)
        if limit is None:
            continue
        chosen = [g for g in grouped if wanted is None or g.shape.statement_class == wanted]
        total = sum(g.calls for g in chosen)
        if total <= limit:
            continue
        top = chosen[0]
        breakdown = [{"count": g.calls, "call_site": g.first.call_site, "sql": short(g.first.sql, 120)}
                     for g in chosen[:5]]
        findings.append(_finding(
            _REPEAT_ENTRY.get(top.shape.command, "n_plus_one"), name,
            f"{total} {label} sent, budget {limit}; most repeated: {top.calls}x from {top.first.call_site}",
            top.first.path, top.first.line, top.first.sql,
            fingerprint=top.shape.fingerprint, count=total, limit=limit, breakdown=breakdown,
        ))
    return findings


def transactions(found: Sequence[Transaction], settings: Settings) -> list[Finding]:
    """Transactions held open too long, or idle while the client did something else: both keep
    locks and a snapshot pinned and a pooled connection checked out. A transaction a fixture
    opened before the test (the roll-back-after-each-test pattern) is the harness's, not the code's."""
    findings = []
    for txn in found:
        if txn.inherited:
            continue
        site = f"{txn.path}:{txn.line}" if txn.path else "<library code>"
        evidence = {"duration_s": round(txn.duration, 3), "idle_gap_s": round(txn.idle_gap, 3),
                    "statements": txn.statements, "call_site": site, "left_open": txn.left_open}
        if settings.txn_idle_seconds and txn.idle_gap > settings.txn_idle_seconds:
            findings.append(_finding(
                "streaming_txn", "transactions",
                f"transaction opened at {site} sat idle for {txn.idle_gap:.2f} s between {txn.gap_from} and "
                f"{txn.gap_to} (limit {settings.txn_idle_seconds} s): non-database work inside a transaction",
                txn.path, txn.line, None, **evidence))
        elif settings.txn_max_seconds and txn.duration > settings.txn_max_seconds:
            state = "still open at the end of the test" if txn.left_open else f"{txn.statements} statements"
            findings.append(_finding(
                "streaming_txn", "transactions",
                f"transaction opened at {site} stayed open {txn.duration:.2f} s "
                f"(limit {settings.txn_max_seconds} s; {state})", txn.path, txn.line, None, **evidence))
    return findings


# --- plans --------------------------------------------------------------------------------------

_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.reltuples, c.relpages
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
"""


@dataclass
class Catalog:
    """What the plan rules need to know about the test database's tables."""

    table_rows: dict[str, float] = field(default_factory=dict)
    indexed_columns: dict[str, frozenset[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_catalog(conn: Any, scale: float) -> Catalog:
    """Table sizes and leading index columns, in the caller's transaction (always rolled back).

    Tables never analysed (created and filled by the test itself) are analysed first, so the
    planner and the size gate see their real row counts. With `scale` > 1 the planner statistics
    are scaled: the row count grows by `scale` while the page count stays, so the planner costs a
    scan of a small test table as it would the production table, and picks an index when one
    exists. Writing pg_class needs a superuser; without one the statistics stay as they are.
    """
    from psycopg import sql

    catalog = Catalog()
    if scale > 1 and conn.execute("SELECT current_setting('is_superuser') = 'on'").fetchone()[0] is not True:
        catalog.notes.append("planner statistics not scaled: scaling writes pg_class, which needs a superuser")
        scale = 1.0
    tables = conn.execute(_TABLES_SQL).fetchall()
    stale = [sql.Identifier(schema, name) for _, schema, name, reltuples, _ in tables if reltuples < 0 or scale > 1]
    if stale:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(stale)))
        tables = conn.execute(_TABLES_SQL).fetchall()
    for oid, _, name, reltuples, relpages in tables:
        rows = max(float(reltuples), 0.0)
        if scale > 1:
            rows *= scale
            conn.execute("UPDATE pg_class SET reltuples = $1, relpages = $2 WHERE oid = $3",
                         (rows, max(int(relpages), 1), oid))
        catalog.table_rows[name] = rows
    with conn.cursor(row_factory=dict_row) as cursor:
        catalog.indexed_columns = leading_columns(cursor.execute(INDEX_COLUMNS_SQL).fetchall())
    return catalog


PLAN_LOCK_TIMEOUT_MS = 1000


@dataclass
class PlanOutcome:
    findings: list[Finding] = field(default_factory=list)
    explained: int = 0
    skipped: list[str] = field(default_factory=list)  # why a statement could not be planned


def plan_checks(statements: Sequence[Statement], dsn_of: Mapping[int, str], settings: Settings) -> PlanOutcome:
    """EXPLAIN each distinct explainable statement shape once, on the database its connection
    used, and run the plan rules of `detectors/` over the plan."""
    import pglab.lab.runtime.plans as plans  # imported when plan checks run, not when the plugin loads

    outcome = PlanOutcome()
    firsts: dict[str, Statement] = {}
    for statement in statements:
        if statement.control or statement.failed:
            continue
        shape = shape_of(statement.sql, statement.has_params)
        if shape.explainable and statement.connection in dsn_of:
            firsts.setdefault(shape.fingerprint, statement)
    by_dsn: dict[str, list[Statement]] = defaultdict(list)
    for statement in firsts.values():
        by_dsn[dsn_of[statement.connection]].append(statement)
    for dsn, chosen in by_dsn.items():
        try:
            _plan_database(plans, dsn, chosen, settings, outcome)
        except psycopg.Error as error:  # the test dropped its database, say: nothing left to plan
            dbname = conninfo_to_dict(dsn).get("dbname")
            outcome.skipped.append(f"no plans from database {dbname}: {str(error).strip().splitlines()[0]}")
    return outcome


def server_form(statement: Statement) -> tuple[str, Any]:
    """The statement with `$n` placeholders and positional parameters, as Postgres itself reads
    it: the form the plan rules and a raw cursor take."""
    if not statement.has_params:
        return statement.sql, None
    if isinstance(statement.params, Mapping):
        names: list[str] = []
        for name in placeholder_names(statement.sql):
            if name and name not in names:
                names.append(name)
        return to_dollar_placeholders(statement.sql), [statement.params[name] for name in names]
    return to_dollar_placeholders(statement.sql), list(statement.params)


def _plan_database(plans: Any, dsn: str, chosen: list[Statement], settings: Settings, outcome: PlanOutcome) -> None:
    scaled = settings.plan_scale > 1
    with (psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.RawCursor) as conn,
          conn.transaction(force_rollback=True)):
        # The test may still hold locks in a transaction it left open: wait for none of them.
        conn.execute(f"SET LOCAL lock_timeout = {PLAN_LOCK_TIMEOUT_MS}")
        catalog = read_catalog(conn, settings.plan_scale)
        outcome.skipped += catalog.notes
        for statement in chosen:
            shape = shape_of(statement.sql, statement.has_params)
            sql, params = server_form(statement)
            try:
                plan = plans.explain(conn, sql, params, analyze=not scaled)
            except (UserError, psycopg.Error) as error:  # a statement on a temp table the test made, say
                outcome.skipped.append(f"{statement.call_site}: {error}")
                continue
            outcome.explained += 1
            for finding in plans.analyze_plan(plan, table_rows=catalog.table_rows,
                                              indexed_columns=catalog.indexed_columns):
                outcome.findings.append(replace(
                    finding, path=statement.path, line=statement.line, source=statement.sql,
                    evidence={**finding.evidence, "check": "plans", "fingerprint": shape.fingerprint,
                              "call_site": statement.call_site, "scaled_statistics": settings.plan_scale},
                ))


# --- reporting ----------------------------------------------------------------------------------


def describe(findings: Sequence[Finding]) -> str:
    """The failure text: per finding the consequence, the statement, the evidence, the fix."""
    lines = [f"pglab found {len(findings)} problem{'s' if len(findings) != 1 else ''} in this test:"]
    for finding in findings:
        check = finding.evidence.get("check", "")
        where = f"{finding.path}:{finding.line}" if finding.path else finding.evidence.get("call_site", "")
        lines += ["", f"{finding.code} {finding.id} [{check}] at {where}", f"  {finding.message}"]
        if finding.source:
            lines.append(f"  SQL: {short(finding.source)}")
        for item in finding.evidence.get("breakdown", []):
            lines.append(f"    {item['count']:>5}x  {item['call_site']}  {item['sql']}")
        plan = finding.evidence.get("plan_excerpt")
        if plan:
            lines.append(f"  plan: {plan}")
        if finding.fix_hint:
            lines.append(f"  fix: {finding.fix_hint}")
        fingerprint = finding.evidence.get("fingerprint")
        also = f" (this statement only: allow=[{fingerprint!r}])" if fingerprint else ""
        lines.append(f"  allow: @pytest.mark.pglab(allow=[{finding.id!r}]){also}")
    return "\n".join(lines)


def top_fingerprints(counts: Mapping[str, Counter[str]], texts: Mapping[str, str], limit: int = 10
                     ) -> list[dict[str, Any]]:
    """Fingerprints by calls over the session: counts maps fingerprint -> Counter(test -> calls)."""
    ranked = sorted(counts.items(), key=lambda item: -sum(item[1].values()))[:limit]
    return [{"fingerprint": fp, "calls": sum(per_test.values()), "tests": len(per_test),
             "max_in_one_test": max(per_test.values()), "sql": short(texts.get(fp, ""), 200)}
            for fp, per_test in ranked]
