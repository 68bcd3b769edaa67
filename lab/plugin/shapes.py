"""What a captured statement is: its shape (pglast fingerprint, which ignores constants and
parameter values, after psycopg's `%s` placeholders are turned into `$n`), its command and its
budget class. Two lookups that differ only by id are one shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast import parse_sql
from pglast.parser import ParseError, fingerprint, normalize

from pglab.lab.core.sql import command_of, to_dollar_placeholders
from pglab.lab.plugin.records import Statement

_WRITES = {"insert", "update", "delete", "merge", "cte_write", "copy_from"}
_CONTROL = {"transaction", "set"}
# Transaction control and session settings, recognised by their first word: pg_stat_statements
# on PostgreSQL 17+ records `SAVEPOINT $1` and `RELEASE $1`, which no parser accepts, and the
# client's `SAVEPOINT _pg3_1` must be the same shape as the server's record of it.
_CONTROL_WORDS = {"begin": "transaction", "start": "transaction", "commit": "transaction", "end": "transaction",
                  "rollback": "transaction", "abort": "transaction", "savepoint": "transaction",
                  "release": "transaction", "set": "set", "reset": "set"}


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


def _first_word(text: str) -> str:
    words = text.lstrip(" \t\r\n(").split(None, 1)
    return words[0].lower().rstrip(";") if words else ""


@lru_cache(maxsize=8192)
def shape_of(sql: str, has_params: bool) -> Shape:
    """The fingerprint and class of a statement text (cached: tests repeat the same texts)."""
    first = _first_word(sql)
    if first in _CONTROL_WORDS:
        return Shape(f"control:{first}", _CONTROL_WORDS[first], False)
    text = to_dollar_placeholders(sql) if has_params else sql
    try:
        parsed = parse_sql(text)
        print_ = fingerprint(text)
    except ParseError:
        flat = " ".join(text.lower().split())
        command = first if first in ("select", "insert", "update", "delete") else "other"
        return Shape("text:" + hashlib.sha1(flat.encode()).hexdigest()[:16], command, False)
    if not parsed:
        return Shape(print_, "other", False)
    commands = [command_of(raw.stmt) for raw in parsed]
    command = next((c for c in commands if c in _WRITES), commands[0])
    explainable = len(parsed) == 1 and _explainable(parsed[0].stmt, command)
    return Shape(print_, command, explainable)


@lru_cache(maxsize=4096)
def normalised(sql: str, has_params: bool) -> str:
    """The statement with every constant and parameter as `$n`, as pg_stat_statements shows a
    shape: what a summary of many calls with different values should print."""
    text = to_dollar_placeholders(sql) if has_params else sql
    try:
        return str(normalize(text))
    except ParseError:
        return text


def counted(statement: Statement) -> bool:
    """Statements a budget counts: not the drivers' own BEGIN/COMMIT/SAVEPOINT, not SET."""
    return not statement.control and shape_of(statement.sql, statement.has_params).statement_class != "control"


def calls_of(statement: Statement) -> int:
    """How many executions one record stands for: a server-side record carries its call count."""
    return statement.batch if statement.source == "server" else 1
