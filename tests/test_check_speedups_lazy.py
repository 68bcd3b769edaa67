"""What the speed-ups of `pglab check` must not change: statement trees decoded only when a rule
reads them are the trees an eager decode gives, statement types are read from the JSON text
without decoding it, and psql's lines are blanked exactly where they were before."""

from __future__ import annotations

import random

import orjson
from pglast import parser

from pglab.lab.check import sqlnodes
from pglab.lab.check.extract import extract_sql
from pglab.lab.check.sqlforms import psql_blanked
from pglab.lab.check.sqltext import parse_document, statement_trees

STATEMENTS = [
    "SELECT 1",
    "SELECT a FROM t WHERE b = 'x;y' AND c IN (SELECT d FROM u)",
    "INSERT INTO t (a) VALUES ('{\"stmt\":{\"SelectStmt\":1}}')",  # the JSON of a RawStmt inside a string
    "CREATE TABLE t (id bigint PRIMARY KEY, body text)",
    "UPDATE t SET a = 1 WHERE id = $1",
    "select 1; update t set a = 2; delete from t",  # several statements in one piece
    "",
    "-- only a comment",
]


def test_statement_types_are_read_from_the_json_text() -> None:
    for sql in STATEMENTS:
        kinds, document = parse_document(sql)
        eager = [sqlnodes.unwrap(raw["stmt"])[0] for raw in orjson.loads(parser.parse_sql_json(sql))["stmts"]]
        assert kinds == eager, sql
        assert [sqlnodes.unwrap(tree)[0] for tree in statement_trees(document)] == eager


def test_a_statement_is_decoded_when_first_read_and_then_kept() -> None:
    # `E'it\\'s'` ends a quote for the splitter, not for PostgreSQL: two statements in one piece
    text = ";\n".join(STATEMENTS) + ";\nSELECT E'it\\'s'; SELECT 2;\n"
    queries = extract_sql("q.sql", text).queries
    assert len(queries) == 10 and [query.index for query in queries[-2:]] == [0, 1]
    assert all(query.tree is None for query in queries[:-2])  # none read yet
    for query in queries:
        eager = statement_trees(query.json)
        assert query.body == sqlnodes.unwrap(eager[query.index])[1]
        assert query.body is query.body  # rules may key caches on a node's identity


def test_psql_lines_are_blanked_in_place() -> None:
    text = ("\\set ON_ERROR_STOP 1\nCOPY t FROM stdin;\n1\tcafé;x\n\\.\nSELECT 1;\n"
            "copy u (a) from STDIN with csv;\ncopy v from stdin;\n\\.\n  \\d t\nSELECT 2;\n")
    blanked = psql_blanked(text)
    assert len(blanked) == len(text) and [i for i, c in enumerate(blanked) if c == "\n"] == \
        [i for i, c in enumerate(text) if c == "\n"]
    assert [line.strip() for line in blanked.splitlines() if line.strip()] == [
        "COPY t FROM stdin;", "SELECT 1;", "copy u (a) from STDIN with csv;", "SELECT 2;"]
    assert psql_blanked("SELECT 'a\\b';") == "SELECT 'a\\b';"  # no line starts with a backslash


def _blanked_one_character_at_a_time(text: str) -> str:
    """psql_blanked as it was first written: slow and plainly right."""
    import re

    chars = list(text)
    copy_from_stdin = re.compile(r"\bCOPY\b[^;]*?\bFROM\s+STDIN\b[^;]*;[^\n]*\n?", re.I | re.S)
    for copy in copy_from_stdin.finditer(text):
        end = re.compile(r"^\\\.[ \t]*$", re.M).search(text, copy.end())
        for index in range(copy.end(), end.end() if end else len(text)):
            chars[index] = chars[index] if chars[index] == "\n" else " "
    for meta in re.compile(r"^[ \t]*\\[^\n]*", re.M).finditer("".join(chars)):
        for index in range(meta.start(), meta.end()):
            chars[index] = chars[index] if chars[index] == "\n" else " "
    return "".join(chars)


def test_psql_blanking_matches_the_plain_version() -> None:
    pieces = ["\\", "\\.", "\n", "COPY", "copy", " t ", "FROM", " from", " STDIN", "stdin", "ſtdin", ";", "x",
              "\\c db", " ", "\t", "é"]
    generator = random.Random(5)
    for _ in range(20_000):
        text = "".join(generator.choice(pieces) for _ in range(generator.randrange(0, 25)))
        assert psql_blanked(text) == _blanked_one_character_at_a_time(text), text
