"""Whether running a SELECT could change anything that a rollback does not undo.

EXPLAIN ANALYZE executes the statement. pglab runs it inside a read-only transaction that it rolls
back, but a rollback does not undo everything: `nextval` advances a sequence for good,
`pg_stat_statements_reset()` wipes the statistics, `pg_cancel_backend()` and
`pg_terminate_backend()` end other people's sessions, `pg_notify` and advisory locks reach other
sessions, `dblink` runs statements elsewhere. So a statement is executed only when every function it
can reach is known to be free of such effects; anything else gets plain EXPLAIN, which only plans.

What "every function it can reach" covers, read from the parsed statement and the catalog: the
functions it calls by name (every overload of each name, since the parse tree does not say which one
the planner picks), the functions behind the operators it uses, the functions the views and
row-security policies of the relations it reads call (their definitions, parsed like the statement,
view within view), and casts to types that are not built in (their input functions and domain
checks run). A function is unsafe when its name is on `DENIED` (whatever the catalog says: a wrapper
or an extension can mark an administrative function STABLE) or when it is VOLATILE (built-in
volatile functions known to be harmless, such as `random()`, excepted). A built-in function is
judged by that alone. Any other function is trusted only when what it runs is known too: a SQL or
PL/pgSQL function's body is read (see `functionbodies`) and judged like the statement, function
within function, so a STABLE wrapper around a VOLATILE function is caught; a user's aggregate is
judged by its support functions. What cannot be read is unsafe: SQL built at run time (EXECUTE),
functions in C, `internal` or any other language that are not built in, a body that does not
parse, a name the catalog does not know, and chains longer than `MAX_DEPTH` or wider than
`MAX_FUNCTIONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import ast as pg
from pglast import parse_sql
from pglast.parser import ParseError

from pglab.lab.core.sql import walk_nodes
from pglab.lab.runtime.functionbodies import read_body

# Names (or name prefixes, ending in "*") of functions with effects a rollback does not undo.
DENIED = (
    "nextval", "setval", "pg_sequence_*",
    "pg_stat_statements_reset", "pg_stat_reset*", "pg_stat_clear*", "pg_stat_force_next_flush",
    "pg_cancel_backend", "pg_terminate_backend", "pg_signal_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_promote", "pg_switch_wal", "pg_create_*", "pg_drop_*", "pg_replication_*", "pg_logical_*",
    "pg_wal_replay_*", "pg_backup_*", "pg_start_backup", "pg_stop_backup", "pg_log_backend_memory_contexts",
    "pg_file_*", "pg_import_system_collations", "pg_notify", "pg_advisory*", "pg_try_advisory*",
    "set_config", "setseed", "lo_*", "loread", "lowrite", "dblink*", "txid_current", "pg_current_xact_id",
    "hypopg_*",
    # STABLE, yet they read relations named only at run time, whose views' functions are not checked
    "table_to_xml*", "schema_to_xml*", "database_to_xml*",
)
# Built-in VOLATILE functions that only compute a value.
HARMLESS_VOLATILE = frozenset({
    "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7",
})
FIRST_USER_OID = 16384  # FirstNormalObjectId: below it, objects built into the server
MAX_DEPTH = 16  # functions calling functions: deeper than this is not followed, so unsafe
MAX_FUNCTIONS = 200

_CLIENT_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")


@dataclass(frozen=True)
class Verdict:
    """`safe` when the statement may be executed (EXPLAIN ANALYZE); otherwise `reason` says why not."""

    safe: bool
    reason: str = ""


def denied(name: str) -> bool:
    """Whether a function name is on the deny list (exactly, or by one of its prefixes)."""
    name = name.lower()
    return any(name.startswith(entry[:-1]) if entry.endswith("*") else name == entry for entry in DENIED)


@dataclass
class _Parts:
    functions: list[list[str]]  # name parts, schema first when qualified
    operators: list[str]
    relations: list[list[str]]  # name parts, schema first when qualified
    types: list[list[str]]


def _parts(statement: str) -> _Parts | None:
    try:
        parsed = parse_sql(statement)
    except ParseError:
        return None
    found = _Parts([], [], [], [])
    for node in walk_nodes(parsed):
        if isinstance(node, pg.FuncCall):
            found.functions.append([part.sval for part in node.funcname or ()])
        elif isinstance(node, pg.A_Expr) and node.name:
            found.operators.append(node.name[-1].sval)
        elif isinstance(node, pg.RangeVar):
            found.relations.append([part for part in (node.schemaname, node.relname) if part])
        elif isinstance(node, pg.TypeCast) and node.typeName is not None:
            found.types.append([part.sval for part in node.typeName.names or ()])
    return found


def judge(conn: psycopg.Connection[Any], statement: str) -> Verdict:
    """Whether executing `statement` (a SELECT) is free of side effects a rollback would not undo."""
    reason = _Reach(conn).text(_CLIENT_PLACEHOLDER.sub("NULL", statement).replace("%%", "%"), depth=0)
    return Verdict(not reason, f"it {reason}" if reason else "")


_FUNCTION_FACTS = """SELECT p.oid, p.proname, n.nspname, p.provolatile, p.oid < %(first_user_oid)s AS builtin,
       l.lanname, p.prokind
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang"""
_BODY = """SELECT p.prosrc, pg_get_functiondef(p.oid), pg_get_expr(p.proargdefaults, 0)
FROM pg_proc p WHERE p.oid = %s"""
_AGGREGATE_STEPS = """SELECT step FROM pg_aggregate a CROSS JOIN LATERAL unnest(ARRAY[a.aggtransfn, a.aggfinalfn,
    a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn]::oid[]) AS step
WHERE a.aggfnoid = %s AND step <> 0"""


class _Reach:
    """Walks what one statement can reach, judging each function once (`seen`), and answers with
    the first reason it is unsafe, phrased to follow "it" ("calls f(), which ..."), or "". """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.seen: set[int] = set()

    def text(self, text: str, depth: int, relations: bool = True) -> str:
        """Why one SQL text is unsafe. `relations`: also read the views and policies of the relations
        it names (not needed for those texts themselves: `_relation_texts` already follows them)."""
        parts = _parts(text)
        if parts is None:
            return "contains SQL that could not be parsed, so the functions it calls are unknown"
        for name in parts.functions:
            if denied(name[-1]):
                return f"calls {name[-1]}(), which has effects a rollback does not undo"
        reason = (self.named(parts.functions, depth) or self.operators(parts.operators, depth)
                  or _user_types(self.conn, parts.types))
        if reason or not relations:
            return reason
        for inner in _relation_texts(self.conn, parts.relations):
            reason = self.text(inner, depth, relations=False)
            if reason:
                return f"reads a view or row-security policy that {reason}"
        return ""

    def named(self, functions: list[list[str]], depth: int, known_only: bool = False) -> str:
        """Why one of the functions called by these names is unsafe: every overload of each name
        (in its schema when qualified) must be safe. A name the catalog does not know is unsafe,
        unless `known_only` (names a token scan found, which need not be functions)."""
        names = sorted({name[-1] for name in functions})
        if not names:
            return ""
        rows = self.conn.execute(f"{_FUNCTION_FACTS} WHERE p.proname = ANY(%(names)s)",
                                 {"first_user_oid": FIRST_USER_OID, "names": names}).fetchall()
        for name in functions:
            schema = name[0] if len(name) > 1 else None
            overloads = [row for row in rows if row[1] == name[-1] and schema in (None, row[2])]
            if not overloads and not known_only:
                return f"calls {'.'.join(name)}(), which this database does not know"
            for row in overloads:
                reason = self.function(row, depth)
                if reason:
                    return f"calls {row[2]}.{row[1]}(), which {reason}"
        return ""

    def operators(self, operators: list[str], depth: int) -> str:
        if not operators:
            return ""
        rows = self.conn.execute(f"""{_FUNCTION_FACTS.replace("SELECT", "SELECT o.oprname,", 1)}
            JOIN pg_operator o ON o.oprcode = p.oid WHERE o.oprname = ANY(%(names)s)""",
                                 {"first_user_oid": FIRST_USER_OID, "names": sorted(set(operators))}).fetchall()
        for operator, *row in rows:
            reason = self.function(tuple(row), depth)
            if reason:
                return f"uses the operator {operator}, which runs {row[2]}.{row[1]}(), which {reason}"
        return ""

    def function(self, row: tuple[Any, ...], depth: int) -> str:
        """Why one function is unsafe, phrased to follow "which": a built-in one is judged by its
        name and volatility; a user's SQL or PL/pgSQL function also by everything its body reaches;
        any other is unknown, so unsafe."""
        oid, name, _, volatility, builtin, language, kind = row
        if denied(name):
            return "has effects a rollback does not undo"
        if volatility == "v" and not (builtin and name in HARMLESS_VOLATILE):
            return "is VOLATILE (it may change data)"
        if builtin or oid in self.seen:  # seen: judged already, or being judged further up (recursion)
            return ""
        self.seen.add(oid)
        if depth >= MAX_DEPTH or len(self.seen) > MAX_FUNCTIONS:
            return f"reaches more functions than pglab follows ({MAX_DEPTH} deep, {MAX_FUNCTIONS} in all)"
        if kind == "a":
            return self.aggregate(oid, depth + 1)
        if language not in ("sql", "plpgsql"):
            return f"is written in {language} and not built in, so what it does cannot be checked"
        found = self.conn.execute(_BODY, (oid,)).fetchone()
        if found is None:
            return "was dropped while pglab read it"
        body = read_body(language, *found)
        if body.problem:
            return body.problem
        for text in body.texts:
            reason = self.text(text, depth + 1)
            if reason:
                return reason
        return self.named([[name] for name in body.names], depth + 1, known_only=True)

    def aggregate(self, oid: int, depth: int) -> str:
        """A user's aggregate runs its transition, final and combine functions."""
        steps = [step for (step,) in self.conn.execute(_AGGREGATE_STEPS, (oid,))]
        rows = self.conn.execute(f"{_FUNCTION_FACTS} WHERE p.oid = ANY(%(steps)s)",
                                 {"first_user_oid": FIRST_USER_OID, "steps": steps}).fetchall()
        for row in rows:
            reason = self.function(row, depth)
            if reason:
                return f"runs {row[2]}.{row[1]}(), which {reason}"
        return ""


# The texts that run when relations are read: the definitions of the views among them (following views
# that read other views, through the rewrite rules' dependencies) and their row-security policies.
# Texts, not pg_depend's function entries: dependencies on built-in functions (nextval,
# pg_cancel_backend) are never recorded there, so the definitions are parsed like the statement.
_RELATION_TEXTS = """WITH RECURSIVE reached(relid, depth) AS (
    SELECT to_regclass(name)::oid, 0 FROM unnest(%(names)s::text[]) AS name WHERE to_regclass(name) IS NOT NULL
  UNION
    SELECT d.refobjid, r.depth + 1 FROM reached r
    JOIN pg_rewrite w ON w.ev_class = r.relid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.relid
    WHERE r.depth < 20
)
SELECT pg_get_viewdef(c.oid) FROM pg_class c WHERE c.relkind = 'v' AND c.oid IN (SELECT relid FROM reached)
UNION ALL
SELECT 'SELECT 1 WHERE ' || pg_get_expr(expression, p.polrelid) FROM pg_policy p
CROSS JOIN LATERAL (VALUES (p.polqual), (p.polwithcheck)) AS e(expression)
WHERE expression IS NOT NULL AND p.polrelid IN (SELECT relid FROM reached)"""


def _quoted(parts: list[str]) -> str:
    """A name the way `to_regclass`/`to_regtype` read it back exactly (the parser already folded case)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def _relation_texts(conn: psycopg.Connection[Any], relations: list[list[str]]) -> list[str]:
    if not relations:
        return []
    names = sorted({_quoted(name) for name in relations})
    return [str(text) for (text,) in conn.execute(_RELATION_TEXTS, {"names": names}) if text]


def _user_types(conn: psycopg.Connection[Any], types: list[list[str]]) -> str:
    if not types:
        return ""
    names = sorted({_quoted(name) for name in types})
    rows = conn.execute("""SELECT name FROM unnest(%s::text[]) AS name
        WHERE to_regtype(name) IS NULL OR to_regtype(name)::oid >= %s""", (names, FIRST_USER_OID))
    return next((f"casts to {name}, a type that is not built in (its input function and checks would run)"
                 for (name,) in rows), "")
