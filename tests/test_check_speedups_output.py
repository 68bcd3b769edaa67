"""What the speed-ups of `pglab check`'s walk, work sharing and text output must not change: a
walk that stops once it has met every wanted node calls the hooks a full walk calls; files shared
out as the work goes give the answers one process gives; the plain text path drops tags, escapes,
control codes and tabs as rich's own functions do."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from rich.console import Console
from rich.control import STRIP_CONTROL_CODES, strip_control_codes
from rich.markup import escape

from pglab.lab.check import sqlnodes
from pglab.lab.check.config import Config
from pglab.lab.check.extract import extract_sql
from pglab.lab.check.filecheck import Context, Worker
from pglab.lab.check.schema import Schema
from pglab.lab.check.shards import Shards
from pglab.lab.check.walk import Dispatch, load_rules, walk_sql
from pglab.lab.core import textreport

SQL = """\
CREATE TABLE t (id bigint PRIMARY KEY, a int, b text);
SELECT a FROM t WHERE b = 'x' AND (a > 1 OR a < 0) AND id IN (SELECT id FROM t WHERE a = 2);
SELECT 1;
SELECT * FROM t;
UPDATE t SET a = 1 WHERE id = $1 AND NOT (b IS NULL);
DELETE FROM t WHERE a BETWEEN 1 AND 2;
SELECT a::numeric(1 + 2, 1) FROM t WHERE a = 1;
WITH x AS (SELECT a FROM t WHERE a = 1) SELECT * FROM x WHERE a NOT IN (SELECT a FROM t);
select 1; update t set a = 2 where a = 3; delete from t where b like 'x%';
"""
PIECES = ["[", "]", "\\", "\\\\", "[bold]", "[/]", "[a", "b]", "\t", "\r", "\x07", "\x0b", "\n", "x", "é", " ",
          "[/x]", "[#f00]", "[@click]", "[]", "\\[dim]"]


class _Recorder:
    def __init__(self) -> None:
        self.rule: Any = None
        self.calls: list[tuple[str, int]] = []


def test_a_walk_with_a_budget_calls_the_hooks_a_full_walk_calls() -> None:
    seen: list[tuple[str, int]] = []
    types = ["SelectStmt", "UpdateStmt", "DeleteStmt", "A_Expr", "BoolExpr", "SubLink"]

    def hook_of(node_type: str) -> Any:
        return lambda node, context: context.calls.append((node_type, id(node)))

    hooks: dict[str, Any] = {node_type: [(None, hook_of(node_type))] for node_type in types}
    for query in extract_sql("q.sql", SQL).queries:
        full, budgeted = _Recorder(), _Recorder()
        walk_sql({query.kind: query.body}, hooks, full)  # type: ignore[arg-type]
        budget = sum(query.json.count(f'"{node_type}":') for node_type in types)
        walk_sql({query.kind: query.body}, hooks, budgeted, budget)  # type: ignore[arg-type]
        assert budgeted.calls == full.calls and len(full.calls) <= budget, query.sql
        seen += full.calls
    assert {node_type for node_type, _ in seen} == set(types)


def _forty_files(seed: int) -> tuple[Config, Dispatch, list[tuple[str, str]]]:
    """The rules' dispatch, and 40 files of 1-30 statements drawn from SQL."""
    config = Config()
    dispatch = Dispatch.of([rule for rule in load_rules(config.selected_ids()) if rule.has_hooks])
    rng = random.Random(seed)
    statements = [line for line in SQL.splitlines() if line]
    items = [(f"f{index:02d}.sql", "\n".join(rng.choice(statements) for _ in range(rng.randrange(1, 30))))
             for index in range(40)]
    return config, dispatch, items


def test_files_shared_out_as_the_work_goes_give_the_answers_of_one_process() -> None:
    config, dispatch, items = _forty_files(3)
    alone = Worker(config, dispatch)
    expected = alone.extract(items)
    shards = Shards(Worker(config, dispatch), 3)
    try:
        shared = shards.extract(items)
        assert list(shared) == [path for path, _ in items]  # file order, whoever parsed what
        assert shared == expected
        schema = Schema()
        assert sorted(shards.check(schema, []).items()) == sorted(alone.check(schema, []).items())
    finally:
        shards.close()


def test_a_worker_out_of_work_checks_files_this_process_has_not_started() -> None:
    config, dispatch, items = _forty_files(5)
    alone = Worker(config, dispatch)
    alone.extract(items)
    shards = Shards(Worker(config, dispatch), 2)
    local_check, hand_over = shards.local.check, shards._hand_over
    handed: list[list[int]] = []

    def late_check(schema: Schema, more: list[tuple[str, str]], between: Any = None) -> Any:
        first = [True]

        def waiting(todo: Any) -> None:  # this process is slow: the worker is done first
            if first:
                first.clear()
                assert shards.remote[0][1].poll(30)
            between(todo)

        return local_check(schema, more, waiting)

    shards.local.check = late_check  # type: ignore[method-assign]
    shards._hand_over = lambda todo: handed.append(hand_over(todo)) or handed[-1]  # type: ignore[method-assign]
    try:
        shards.extract(items)
        schema = Schema()
        assert sorted(shards.check(schema, []).items()) == sorted(alone.check(schema, []).items())
        assert handed and handed[0]  # some files were handed over, and checked the same
    finally:
        shards.close()


def _text(rng: random.Random, most: int = 8) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, most)))


def test_the_plain_text_path_does_what_richs_functions_do() -> None:
    plain = textreport._Plain
    rng = random.Random(7)
    for _ in range(3000):
        text = _text(rng)
        assert textreport._escaped(text) == escape(text)
        markup = text.replace("\\", "")
        assert plain._BARE_TAG.sub("", markup) == plain._TAG.sub(plain._strip, markup)
    lines = [_text(rng, 12) for _ in range(200)]
    console = plain()
    for line in lines:
        console.print(line)
    per_line = "".join(strip_control_codes(plain._TAG.sub(plain._strip, line)).expandtabs(8) + "\n"
                       for line in lines)
    assert console.text() == per_line
    assert sorted(ord(code) for code in plain._CONTROL.pattern.strip("[]").encode().decode("unicode_escape")) \
        == sorted(STRIP_CONTROL_CODES)


@pytest.mark.parametrize("environment", [{}, {"FORCE_COLOR": "1"}, {"TTY_COMPATIBLE": "1"}, {"NO_COLOR": "1"}])
def test_plain_output_is_assumed_only_where_rich_would_show_no_styles(
        environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    if textreport._surely_plain(out):
        assert Console(file=out).color_system is None
    assert textreport._surely_plain(out) == (not environment or "NO_COLOR" in environment)



STATEMENTS = SQL + """\
INSERT INTO t (a) VALUES (1);
BEGIN ISOLATION LEVEL SERIALIZABLE;
SET default_transaction_isolation = 'serializable';
SELECT a FROM t WHERE b ILIKE '%x' AND NOT EXISTS (SELECT 1 FROM t u WHERE u.a = t.a);
SELECT a FROM t WHERE NOT (a > 1);
SELECT now(), (SELECT 1) ORDER BY 1 LIMIT 5;
SELECT $1::int ORDER BY 1;
"""


def test_rules_skipped_by_query_kinds_and_gates_would_have_found_nothing() -> None:
    """`QUERY_KINDS`, `QUERY_GATE` and `SQL_GATES` only spare calls that return at once: called
    anyway, on the statements they are spared, the hooks report nothing (and the schema rules see a
    real one)."""
    config = Config()
    rules = [rule for rule in load_rules(config.selected_ids()) if rule.has_hooks]
    assert any(rule.query_kinds for rule in rules) and any(rule.gates for rule in rules)
    assert any(rule.query_gate for rule in rules)
    result = extract_sql("app.sql", STATEMENTS)
    schema = Schema()
    for query in result.queries:
        if query.kind == "CreateStmt":
            schema.apply(query.kind, query.body)
    context = Context(schema, config)
    context.texts = {"app.sql": STATEMENTS}
    context.file = result
    for query in result.queries:
        context.query = query
        for rule in rules:
            context.rule = rule
            if rule.query and ((rule.query_kinds is not None and query.kind not in rule.query_kinds)
                               or (rule.query_gate is not None and not rule.query_gate(query.json))):
                rule.query(query, context)
            for node_type, gate in rule.gates.items():
                if not gate(query.json):
                    for kind, node in sqlnodes.walk({query.kind: query.body}):
                        if kind == node_type:
                            rule.sql[node_type](node, context)
    assert context.found == []


def test_a_finding_without_markup_characters_is_written_as_its_markup_would_be() -> None:
    from pglab.lab.core.findings import Finding

    rng = random.Random(11)
    pieces = ["]", "x", "é", " ", "\t", "(", ")", ":", "a b", "│", "\n"]
    drop = textreport._Plain()
    for _ in range(2000):
        def text(most: int = 8) -> str:
            return "".join(rng.choice(pieces) for _ in range(rng.randrange(most)))

        finding = Finding("x_" + text(3), "PGL" + text(2), text(), rng.choice(["warning", "error", "info"]),
                          "p/" + text(3), rng.choice([None, 3]), rng.choice([None, 2]), text(),
                          rng.choice([None, text(), text() + "\n" + text()]), rng.choice([None, text()]),
                          rng.choice([{}, {text(2): text()}, {"columns": ["a", text(2)]}]))
        style = textreport._STYLE[finding.severity]
        assert not textreport._has_markup_characters(finding)
        marked = textreport._finding_lines(finding, style, textreport._tagged, textreport._escaped)
        assert textreport._finding_lines(finding, style, textreport._bare, str) == \
            [drop._TAG.sub(drop._strip, line) for line in marked]
