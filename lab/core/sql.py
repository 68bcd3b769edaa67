"""Small SQL helpers that static checks, runtime detectors and the pytest plugin all need.

They live once, here, so that "what a statement does" or "how a statement is shown in a message"
cannot mean one thing in `pglab check` and another in `pglab diagnose` or the plugin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pglast import ast as pg
from pglast import parse_sql
from pglast.parser import ParseError

_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)[sbt]|%[sbt]")

# Node types by class name: pglast's C parser builds instances of the `pglast.ast` classes it saw
# first, so name checks stay right when a test harness (pytester) re-imports `pglast.ast`.
_COMMANDS = {"SelectStmt": "select", "InsertStmt": "insert", "UpdateStmt": "update", "DeleteStmt": "delete",
             "MergeStmt": "merge", "TransactionStmt": "transaction", "VariableSetStmt": "set"}

# The columns of index `i` (a pg_index row) in key order, one slot per key: NULL where the key is an
# expression, so that a column after an expression is never taken for the leading one. Every
# catalog query that reads index columns uses this fragment.
INDEX_COLUMNS = """array(
       SELECT a.attname FROM unnest(string_to_array(i.indkey::text, ' ')::int2[]) WITH ORDINALITY AS k(num, ord)
       LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num ORDER BY k.ord)"""

# The columns of every valid index, per table: what "is this column led by an index" asks.
INDEX_COLUMNS_SQL = f"""
SELECT c.relname AS table_name, ic.relname AS index_name, i.indisunique AS is_unique,
       i.indpred IS NOT NULL AS is_partial, {INDEX_COLUMNS} AS columns
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""

# Relations of this database that another session holds in ACCESS EXCLUSIVE mode (a migration, a
# VACUUM FULL): reading their indexes' definitions or sizes would wait for that lock, so pglab leaves
# them out and says so, instead of hanging or giving up on everything else. Reading pg_locks takes
# no lock on the tables themselves.
LOCKED_RELATIONS_SQL = """
SELECT DISTINCT c.oid, c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.mode = 'AccessExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def short(text: str, limit: int = 120) -> str:
    """A statement on one line, cut to `limit` characters: how every message quotes SQL."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def to_dollar_placeholders(sql: str) -> str:
    """psycopg's `%s` / `%(name)s` placeholders as the `$n` parameters Postgres and pglast read."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        key = match.group(1) or f"#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return _PLACEHOLDER.sub(number, sql)


def placeholder_names(sql: str) -> list[str | None]:
    """The names of `%(name)s` placeholders in order (None for a positional `%s`), `%%` skipped."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(sql) if match.group(0) != "%%"]


def command_of(stmt: Any) -> str:
    """What a parsed statement does at its top level: select, insert, update, delete, merge,
    transaction, set, copy_from, copy_to, cte_write (a SELECT whose WITH writes) or other."""
    kind = type(stmt).__name__
    if kind == "SelectStmt":
        return "cte_write" if _modifies_in_cte(stmt) else "select"
    if kind == "CopyStmt":
        return "copy_from" if stmt.is_from else "copy_to"
    return _COMMANDS.get(kind, "other")


def _modifies_in_cte(stmt: Any) -> bool:
    ctes = getattr(getattr(stmt, "withClause", None), "ctes", None) or ()
    return any(type(cte.ctequery).__name__ != "SelectStmt" or _modifies_in_cte(cte.ctequery) for cte in ctes)


@lru_cache(maxsize=4096)
def statement_kind(query: str) -> str:
    """'select', 'insert', 'update', 'delete' or 'other': what one statement text does.
    A WITH query counts as what its main statement does."""
    try:
        parsed = parse_sql(query)
    except ParseError:
        return "other"
    if len(parsed) != 1:
        return "other"
    command = command_of(parsed[0].stmt)
    command = "select" if command == "cte_write" else command
    return command if command in ("select", "insert", "update", "delete") else "other"


def walk_nodes(node: Any) -> Iterator[Any]:
    """Every pglast AST node under `node`, itself included, iteratively (deep trees are fine)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(reversed(item))
        elif isinstance(item, pg.Node):
            yield item
            stack.extend(reversed([getattr(item, name) for name in item]))


def leading_columns(indexes: list[dict[str, Any]]) -> dict[str, frozenset[str]]:
    """relation -> columns that lead a full (non-partial) index, from index rows with
    `table_name`, `columns` (see `INDEX_COLUMNS`: None in an expression's slot) and `is_partial`."""
    found: dict[str, set[str]] = {}
    for index in indexes:
        if index["columns"] and index["columns"][0] and not index["is_partial"]:
            found.setdefault(index["table_name"], set()).add(index["columns"][0])
    return {name: frozenset(columns) for name, columns in found.items()}
