"""Finding SQL in Python and mapping every character back to its file position."""

from __future__ import annotations

import ast
from pathlib import Path

from pglab.lab.check import sqlnodes
from pglab.lab.check.extract import extract_python, extract_sql
from pglab.lab.check.sqltext import FileLocator, normalise

SOURCE = '''\
from sqlalchemy import text
from psycopg import sql

TABLE_QUERY = "SELECT id FROM users WHERE name = :name"
PREFIX = "SELECT id, body "


def f(conn, cur, session, term, table, ids):
    cur.execute(
        "SELECT id "
        "FROM messages\\n"
        "WHERE conversation_id = %(cid)s AND author_id = %s", {"cid": 1})
    session.execute(text(TABLE_QUERY), {"name": term})
    conn.execute(f"SELECT * FROM {table} WHERE title = 'café' AND body LIKE '%{term}%'")
    conn.execute(PREFIX + "FROM notes WHERE id = ANY(%s)", (ids,))
    conn.execute("SELECT {} FROM t WHERE x = %s".format("a, b"), (term,))
    conn.execute("SELECT a FROM t WHERE b = '%s' AND c = %d" % (term, 3))
    conn.execute(sql.SQL("DELETE FROM t WHERE id = {}").format(sql.Literal(1)))
    helper.execute(job)
    executor.execute("not sql at all")
'''


def _located(path: Path, text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of the first occurrence of `needle` in the file text."""
    offset = text.index(needle)
    return FileLocator(text).position(offset)


def _column_positions(query) -> dict[str, tuple[int, int]]:
    positions = {}
    for kind, body in sqlnodes.walk({query.kind: query.body}):
        if kind == "ColumnRef":
            reference = sqlnodes.column({kind: body})
            if reference:
                positions[reference[1]] = query.position(body["location"])
    return positions


def test_finds_every_shape_and_maps_positions_exactly(tmp_path: Path) -> None:
    result = extract_python("app.py", SOURCE)
    assert not result.diagnostics, result.diagnostics
    sqls = [query.sql for query in result.queries]
    assert len(sqls) == 7, sqls
    first, alchemy, fstring, concatenated, formatted, percent, psycopg_sql = result.queries
    assert first.sql == "SELECT id FROM messages\nWHERE conversation_id = $1 AND author_id = $2"
    assert first.params == {1: "cid", 2: 0}
    positions = _column_positions(first)
    assert positions["conversation_id"] == _located(tmp_path, SOURCE, "conversation_id")
    assert positions["author_id"] == _located(tmp_path, SOURCE, "author_id")
    assert _column_positions(alchemy)["name"] == _located(tmp_path, SOURCE, "name = :name")
    assert alchemy.call is not None and isinstance(alchemy.call.param_expr(alchemy, 1), ast.Name)
    assert "'%x%'" in fstring.sql and "pglab_hole_1" in fstring.sql  # the table name is a hole
    assert _column_positions(fstring)["body"] == _located(tmp_path, SOURCE, "body LIKE")
    assert concatenated.sql.startswith("SELECT id, body FROM notes")
    assert _column_positions(concatenated)["body"] == _located(tmp_path, SOURCE, "body \"")
    assert formatted.sql.startswith("SELECT a, b FROM t")
    assert "'x'" in percent.sql and "$" in percent.sql
    assert psycopg_sql.kind == "DeleteStmt"


def test_non_ascii_columns_are_characters(tmp_path: Path) -> None:
    text = "SELECT 'ééé', naïve FROM t WHERE über = 1;\n"
    [query] = extract_sql("x.sql", text).queries
    assert _column_positions(query)["über"] == (1, text.index("über") + 1)
    python = 'def f(c):\n    c.execute("SELECT \'é\' FROM t WHERE über = %s", (1,))  # ü\n'
    [query] = extract_python("x.py", python).queries
    assert _column_positions(query)["über"] == (2, python.splitlines()[1].index("über") + 1)


def test_placeholders_of_every_driver() -> None:
    raw = "SELECT 1 FROM t WHERE a = %s AND b = %(b)s AND c = :c AND d = $9 AND e::text = 'x:y' AND f = %(b)s"
    result = normalise(raw, FileLocator(raw))
    assert result.text == ("SELECT 1 FROM t WHERE a = $1 AND b = $2 AND c = $3 AND d = $9 AND e::text = 'x:y' "
                           "AND f = $2")
    assert result.params == {1: 0, 2: "b", 3: "c", 9: 8}
    assert result.locator.position(result.text.index("$3")) == (1, raw.index(":c") + 1)
    percent = normalise("SELECT '%%' || %s", FileLocator(""))
    assert percent.text == "SELECT '%' || $1"


def test_statements_split_across_a_sql_file() -> None:
    text = ("SELECT 1;\n-- a comment; with a semicolon\nSELECT ';' AS x;\n"
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n")
    result = extract_sql("x.sql", text)
    assert [query.kind for query in result.queries] == ["SelectStmt", "SelectStmt", "CreateFunctionStmt"]
    assert [query.position(0) for query in result.queries] == [(1, 1), (3, 1), (4, 1)]


def test_ddl_in_python_builds_the_schema(tmp_path: Path) -> None:
    from pglab.lab.check.config import Config
    from pglab.lab.check.engine import run

    (tmp_path / "db.py").write_text(
        'SCHEMA = """\n'
        "CREATE TABLE messages (id bigint PRIMARY KEY, conversation_id bigint, body text);\n"
        "CREATE INDEX messages_body_idx ON messages (body);\n"
        '"""\n\n\n'
        "def create_schema(conn):\n"
        "    conn.execute(SCHEMA)\n"
        '    conn.execute("ALTER TABLE messages ADD COLUMN author_id bigint")\n')
    (tmp_path / "app.py").write_text(
        "def by_conversation(conn, cid):\n"
        '    return conn.execute("SELECT id FROM messages WHERE conversation_id = %s LIMIT 5", (cid,))\n\n\n'
        "def by_body(conn, body):\n"
        '    return conn.execute("SELECT id FROM messages WHERE body = %s LIMIT 5", (body,))\n\n\n'
        "def by_author(conn, author):\n"
        '    return conn.execute("SELECT id FROM messages WHERE author_id = %s LIMIT 5", (author,))\n')
    result = run([str(tmp_path)], Config(select=["missing_index"]), use_cache=False)
    assert sorted((Path(f.path).name, f.line) for f in result.findings) == [("app.py", 2), ("app.py", 10)]
    assert result.schema.table("messages").columns["author_id"] == "int8"  # type: ignore[union-attr]
