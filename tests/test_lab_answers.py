"""The lab's answers rule: a fix must give the same answers as the naive code, except where the
naive answer is *wrong* (NOT IN over NULLs): then the path must say so (NAIVE_ANSWER_WRONG) and an
independent oracle (the fix file's `oracle` block, never the fix itself) must refute the naive
answer and confirm the fixed one. Judged without a server; the oracle itself on real Postgres."""

from __future__ import annotations

import io
from typing import Any

import psycopg
import pytest
from rich.console import Console
from test_detectors_support import seed_chat, statements

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.trial import probes, terminal
from pglab.lab.trial.invariants import Check
from pglab.lab.trial.service import paths
from pglab.lab.trial.verdict import Side, answers_check, judge, wrong_answers

ENTRY = "not_in_subquery"
WHY = "NOT IN is never true once its subquery yields a NULL"
PREDICTED = ("p99_under_slo",)


def _answer(items: int, right: bool | None, status: int = 200, probe: str = "GET /inbox") -> dict[str, Any]:
    answer: dict[str, Any] = {"probe": probe, "status": status, "body": [{"id": i} for i in range(items)]}
    if right is not None:
        answer["oracle"] = {"right": right, "expected": 37}
    return answer


def _side(answers: list[dict[str, Any]], broken: bool = False) -> Side:
    checks = {"p99_under_slo": Check(not broken, 900 if broken else 20, 250)}
    return Side(requests=100, failures=0, rps=10, p50_ms=1, p95_ms=2, p99_ms=3, lost_updates=0, invariants=checks,
                detections=[ENTRY] if broken else [], offered_rps=10, achieved_rps=10,
                answers=[*answers, {"probe": "rows of messages", "rows": [5, 42]}])


def _judge(naive: list[dict[str, Any]], fixed: list[dict[str, Any]], declared: str = WHY) -> tuple[str, str]:
    return judge(ENTRY, PREDICTED, _side(naive, broken=True), _side(fixed), declared)


def test_a_declared_wrong_naive_answer_refuted_by_the_oracle_is_cured() -> None:
    outcome, reason = _judge([_answer(0, False)], [_answer(37, True)])
    assert outcome == "cured", reason
    assert "the naive answer was wrong (GET /inbox: 0 items naive, 37 items fixed = oracle)" in reason
    assert "same answers" not in reason


def test_a_naive_side_that_gives_no_answer_is_corrected_only_by_an_answer_the_oracle_confirms() -> None:
    """On big data the naive NOT IN runs into the statement timeout: HTTP 500, no answer at all."""
    failed = {"probe": "GET /inbox", "status": 500, "body": "Internal Server Error", "oracle": {"right": False}}
    outcome, reason = _judge([failed], [_answer(37, True)])
    assert outcome == "cured", reason
    assert "GET /inbox: HTTP 500 naive, 37 items fixed = oracle" in reason
    assert _judge([failed], [_answer(12, False)])[0] == "not_equivalent"
    assert _judge([failed], [_answer(37, True)], declared="")[0] == "not_equivalent"
    client_error = {**failed, "status": 404}
    assert _judge([client_error], [_answer(37, True)])[0] == "not_equivalent"


def test_a_fixed_answer_the_oracle_refutes_is_never_equivalent() -> None:
    outcome, reason = _judge([_answer(0, False)], [_answer(12, False)])
    assert outcome == "not_equivalent" and "its oracle says 37 items" in reason
    # even when both sides agree: the same wrong answer twice is no cure
    assert _judge([_answer(12, False)], [_answer(12, False)])[0] == "not_equivalent"


def test_a_path_that_does_not_declare_it_needs_equal_answers() -> None:
    outcome, reason = _judge([_answer(0, False)], [_answer(37, True)], declared="")
    assert outcome == "not_equivalent"
    assert "does not declare NAIVE_ANSWER_WRONG" in reason


@pytest.mark.parametrize(("naive", "fixed"), [
    ([_answer(0, None)], [_answer(37, None)]),  # no oracle for that probe: nothing says which is right
    ([_answer(0, False, status=404)], [_answer(37, True)]),  # a refused request is not a wrong answer
    ([_answer(37, True)], [_answer(36, True)]),  # the naive answer was right: the fix changed it
    ([_answer(0, False)], [_answer(37, True), _answer(1, None, probe="GET /other")]),  # one answer more
])
def test_anything_else_still_needs_equal_answers(naive: list[dict[str, Any]], fixed: list[dict[str, Any]]) -> None:
    assert _judge(naive, fixed)[0] == "not_equivalent"


def test_rows_left_behind_still_compare_equal() -> None:
    naive = _side([_answer(0, False)], broken=True)
    fixed = _side([_answer(37, True)])
    fixed.answers[-1] = {"probe": "rows of messages", "rows": [4, 40]}
    outcome, reason = judge(ENTRY, PREDICTED, naive, fixed, WHY)
    assert outcome == "not_equivalent" and "rows of messages" in reason


def test_equal_answers_need_no_oracle_and_report_nothing_wrong() -> None:
    assert answers_check([_answer(5, None)], [_answer(5, None)], WHY) == ("", [])
    assert wrong_answers([_side([_answer(5, None)])], [_side([_answer(5, None)])], WHY) is None


def test_the_report_says_how_the_naive_answer_was_wrong() -> None:
    naive, fixed = [_side([_answer(0, False)], broken=True)], [_side([_answer(37, True)])]
    wrong = wrong_answers(naive, fixed, WHY)
    assert wrong == {"why": WHY, "probes": ["GET /inbox: 0 items naive, 37 items fixed = oracle"]}
    output = io.StringIO()
    terminal.explain({"id": ENTRY, "naive": {}, "fixed": {}, "naive_answer_wrong": wrong},
                     Console(file=output, width=200))
    printed = output.getvalue()
    assert "The naive answer was wrong" in printed and "0 items naive, 37 items fixed = oracle" in printed


def test_the_path_declares_it_and_names_its_oracle() -> None:
    module = paths.module(ENTRY)
    assert module.NAIVE_ANSWER_WRONG
    assert set(module.ORACLE_PARAMS) <= {path for _, path, _ in module.PROBES}
    oracle = probes.oracle_statement(ENTRY)
    assert oracle not in statements(fix_blocks(ENTRY)["fixed"]) + statements(fix_blocks(ENTRY)["naive"])


@pytest.fixture
def inbox(pg_conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Chat data whose notifications refer to the older messages, and system ones to none."""
    seed_chat(pg_conn, users=50, conversations=20, messages=2_000, notifications=1_900)
    pg_conn.execute("UPDATE notifications SET message_id = NULL, kind = 'system' WHERE id % 10 = 0")
    pg_conn.execute("ANALYZE")
    return pg_conn


def _ids(conn: psycopg.Connection[Any], block: str) -> list[int]:
    (query,) = statements(fix_blocks(ENTRY)[block])
    return [row[0] for row in conn.execute(query).fetchall()]


def test_the_oracle_refutes_not_in_and_confirms_not_exists(inbox: psycopg.Connection[Any], pg_dsn: str) -> None:
    expected = sorted({*range(1901, 2001), *range(10, 1901, 10)}, reverse=True)[:50]  # never notified, latest first
    assert _ids(inbox, "oracle") == expected
    assert _ids(inbox, "fixed") == expected
    assert _ids(inbox, "naive") == []  # the NULLs make NOT IN never true
    params = paths.module(ENTRY).ORACLE_PARAMS["/inbox/unanswered"]
    fixed_reply = [{"id": i, "conversation_id": 0} for i in expected]
    assert probes.oracle_check(pg_dsn, ENTRY, params, fixed_reply) == {"right": True, "expected": 50}
    assert probes.oracle_check(pg_dsn, ENTRY, params, []) == {"right": False, "expected": 50}
    assert probes.oracle_check(pg_dsn, ENTRY, params, fixed_reply[::-1])["right"] is False  # order counts
    assert probes.oracle_check(pg_dsn, ENTRY, params, {"error": "x"})["right"] is False


def test_without_nulls_naive_and_oracle_agree(pg_conn: psycopg.Connection[Any]) -> None:
    """The oracle is not built to fail NOT IN: on data without NULLs all three give one answer."""
    seed_chat(pg_conn, users=50, conversations=20, messages=2_000, notifications=1_900)
    assert _ids(pg_conn, "naive") == _ids(pg_conn, "fixed") == _ids(pg_conn, "oracle") == list(range(2000, 1950, -1))
