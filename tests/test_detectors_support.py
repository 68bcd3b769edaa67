"""Shared set-up for the detector tests: the chat schema with small seeded data, the reference
fix blocks run statement by statement, and pg_stat_statements where the server has it.

Named like a test module so that it sits with the detector tests; it holds no test itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
import pytest
from pglast import split
from pglast.parser import ParseError

from pglab.lab.core.findings import Finding
from pglab.lab.core.fixes import chat_schema, fix_blocks

_STATEMENT_END = re.compile(r";\s*(?:\n|$)")


def statements(block: str) -> list[str]:
    """The statements of a fix block, comments dropped. pglast splits what it can parse (DO blocks
    included); blocks with psycopg placeholders are split at line-ending semicolons."""
    text = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
    try:
        parts = list(split(text))
    except ParseError:
        parts = _STATEMENT_END.split(text)
    return [part.strip() for part in parts if part.strip()]


def run_block(conn: psycopg.Connection[Any], entry_id: str, block: str, **params: Any) -> list[Any]:
    """Run every statement of one block on an autocommit connection; the last result's rows."""
    rows: list[Any] = []
    for statement in statements(fix_blocks(entry_id)[block]):
        names = set(re.findall(r"%\((\w+)\)s", statement))
        cursor = conn.execute(statement, {name: params[name] for name in names} if names else None)
        rows = cursor.fetchall() if cursor.description else []
    return rows


def seed_chat(conn: psycopg.Connection[Any], users: int = 200, conversations: int = 200, messages: int = 30_000,
              members: int = 0, notifications: int = 0) -> None:
    """The chat schema with data: messages spread evenly over conversations, one second apart."""
    conn.execute(chat_schema())
    conn.execute("INSERT INTO users (name, email) SELECT 'user ' || i, 'user' || i || '@example.com' "
                 "FROM generate_series(1, %s) i", (users,))
    conn.execute("INSERT INTO conversations (owner_id, title, updated_at) SELECT 1 + i %% %s, 'conversation ' || i, "
                 "now() - i * interval '1 minute' FROM generate_series(1, %s) i", (users, conversations))
    conn.execute("INSERT INTO messages (conversation_id, user_id, body, tokens, created_at) "
                 "SELECT 1 + i %% %s, 1 + i %% %s, 'message ' || md5(i::text), i %% 50, "
                 "now() - i * interval '1 second' FROM generate_series(1, %s) i", (conversations, users, messages))
    if members:
        conn.execute("INSERT INTO conversation_members SELECT c, 1 + (c + k) %% %s FROM generate_series(1, %s) c, "
                     "generate_series(1, %s) k ON CONFLICT DO NOTHING", (users, conversations, members))
    if notifications:
        conn.execute("INSERT INTO notifications (user_id, message_id, kind, read_at) SELECT 1 + i %% %s, i, 'message', "
                     "CASE WHEN i %% 3 = 0 THEN now() END FROM generate_series(1, %s) i", (users, notifications))
    conn.execute("ANALYZE")


def ids(findings: Iterable[Finding]) -> set[str]:
    return {finding.id for finding in findings}


def of(findings: Iterable[Finding], entry_id: str) -> list[Finding]:
    return [finding for finding in findings if finding.id == entry_id]


def flush_stats(conn: psycopg.Connection[Any]) -> None:
    """Make this session's table and database counters visible now: a backend flushes them at most
    once a second (and up to ten seconds late when idle), before it reports ready for a query."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    if not conn.autocommit:
        conn.commit()


def statements_available(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    return row is not None and "pg_stat_statements" in row[0]


@pytest.fixture
def pgss_dsn(pg_dsn: str) -> Iterator[str]:
    """A test database with pg_stat_statements installed; skipped where the server lacks it."""
    if not statements_available(pg_dsn):
        pytest.skip("this server does not preload pg_stat_statements (the PostgreSQL 15 pass)")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    yield pg_dsn
