"""`pglab check --dsn`: the schema comes from a live catalog, read-only, instead of from DDL."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from pglab.lab.check.schema import schema_from_catalog
from pglab.lab.cli import main
from tests.cli import assert_one_line_error, run_pglab

DDL = """
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
CREATE INDEX users_lower_email_idx ON users (lower(email));
CREATE TABLE messages (
    id bigint PRIMARY KEY,
    conversation_id bigint NOT NULL,
    author_id bigint NOT NULL REFERENCES users (id),
    body text
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);
CREATE INDEX messages_conversation_only_idx ON messages (conversation_id);
"""

CODE = '''\
async def by_author(conn, author_id):
    return await conn.fetch("SELECT id FROM messages WHERE author_id = $1 LIMIT 20", author_id)


async def by_email(conn, email):
    return await conn.fetchrow("SELECT id FROM users WHERE lower(email) = lower($1)", email)


async def by_conversation(conn, conversation_id):
    return await conn.fetch("SELECT id FROM messages WHERE conversation_id = $1 LIMIT 20", conversation_id)
'''


def test_schema_from_live_catalog(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(DDL)
    schema = schema_from_catalog(pg_dsn)
    messages = schema.table("messages")
    assert messages is not None and messages.primary_key == ("id",)
    assert [fk.columns for fk in messages.foreign_keys] == [("author_id",)]
    assert schema.max_connections and schema.max_connections > 0
    assert any(all(index.expressions) for index in schema.table("users").indexes.values())  # type: ignore[union-attr]

    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(CODE)
    code = main(["check", "--no-cache", "--format", "json", "--dsn", pg_dsn, "."])
    document = json.loads(capsys.readouterr().out)
    found = sorted((f["id"], f.get("line")) for f in document["findings"])
    assert code == 1
    assert found == [("missing_fk_index", None), ("missing_index", 2), ("write_amplification", None)], found
    schema = document["summary"]["schema"]
    assert (schema["source"], schema["tables"], schema["files"]) == ("catalog", 2, [])
    assert schema["description"] == f"2 tables, {schema['indexes']} indexes from the live catalog (--dsn)"
    with psycopg.connect(pg_dsn) as conn:  # nothing was created on the user's server
        tables = conn.execute("SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'i') "
                              "AND relnamespace = 'public'::regnamespace").fetchone()
    assert tables == (7,)


def test_unreachable_dsn_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(CODE)
    result = run_pglab("check", "--dsn", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", str(tmp_path))
    assert_one_line_error(result)
    assert result.returncode == 2
