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
checks run). A function is
unsafe when its name is on `DENIED` (whatever the catalog says: a wrapper or an extension can mark
an administrative function STABLE), when it is VOLATILE (built-in volatile functions known to be
harmless, such as `random()`, excepted), or when it is a user function whose body names a denied
function. Functions a user function calls by other routes (dynamic SQL, a STABLE function calling
a VOLATILE one) cannot be seen from the catalog, which is why user functions are only trusted when
their own volatility and body say so.
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
)
# Built-in VOLATILE functions that only compute a value.
HARMLESS_VOLATILE = frozenset({
    "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7",
})
FIRST_USER_OID = 16384  # FirstNormalObjectId: below it, objects built into the server

_CLIENT_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")
_DENIED_PATTERN = re.compile(
    r"\b(" + "|".join(re.escape(name).replace(r"\*", r"\w*") for name in DENIED) + r")\s*\(", re.IGNORECASE)


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
        parsed = parse_sql(_CLIENT_PLACEHOLDER.sub("NULL", statement).replace("%%", "%"))
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
    parts = _parts(statement)
    if parts is None:
        return Verdict(False, "the statement could not be parsed, so the functions it calls are unknown")
    reason = _unsafe_parts(conn, parts)
    if reason:
        return Verdict(False, reason)
    for text in _relation_texts(conn, parts.relations):
        inner = _parts(text)
        reason = "it could not be parsed" if inner is None else _unsafe_parts(conn, inner)
        if reason:
            return Verdict(False, f"a view or row-security policy it reads: {reason}")
    return Verdict(True)


def _unsafe_parts(conn: psycopg.Connection[Any], parts: _Parts) -> str:
    """Why the functions, operators and casts of one parsed text are unsafe, or "" when they are not."""
    for name in parts.functions:
        if denied(name[-1]):
            return f"it calls {name[-1]}(), which has effects a rollback does not undo"
    return (_named_functions(conn, parts.functions) or _operator_functions(conn, parts.operators)
            or _user_types(conn, parts.types))


_FUNCTION_FACTS = """SELECT p.proname, n.nspname, p.provolatile, p.oid < %(first_user_oid)s AS builtin,
       CASE WHEN l.lanname IN ('sql', 'plpgsql') THEN p.prosrc ELSE '' END AS body
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang"""


def _unsafe_function(row: tuple[Any, ...]) -> str:
    name, schema, volatility, builtin, body = row
    if denied(name):
        return f"it calls {name}(), which has effects a rollback does not undo"
    if volatility == "v" and not (builtin and name in HARMLESS_VOLATILE):
        return f"it calls {schema}.{name}(), which is VOLATILE (it may change data)"
    match = _DENIED_PATTERN.search(body or "")
    if match:
        return f"it calls {schema}.{name}(), whose body calls {match.group(1)}()"
    return ""


def _named_functions(conn: psycopg.Connection[Any], functions: list[list[str]]) -> str:
    names = sorted({name[-1] for name in functions})
    if not names:
        return ""
    rows = conn.execute(f"{_FUNCTION_FACTS} WHERE p.proname = ANY(%(names)s)",
                        {"first_user_oid": FIRST_USER_OID, "names": names}).fetchall()
    for name in functions:
        schema = name[0] if len(name) > 1 else None
        overloads = [row for row in rows if row[0] == name[-1] and schema in (None, row[1])]
        if not overloads:
            return f"it calls {'.'.join(name)}(), which this database does not know"
        for row in overloads:
            reason = _unsafe_function(row)
            if reason:
                return reason
    return ""


def _operator_functions(conn: psycopg.Connection[Any], operators: list[str]) -> str:
    if not operators:
        return ""
    rows = conn.execute(f"""{_FUNCTION_FACTS} JOIN pg_operator o ON o.oprcode = p.oid
        WHERE o.oprname = ANY(%(names)s)""", {"first_user_oid": FIRST_USER_OID, "names": sorted(set(operators))})
    return next((f"an operator: {reason}" for row in rows if (reason := _unsafe_function(row))), "")


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
    return next((f"it casts to {name}, a type that is not built in (its input function and checks would run)"
                 for (name,) in rows), "")
