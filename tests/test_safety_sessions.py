"""Sessions pglab opens on a user's server: read-only unless asked, named, and bounded in time.

The hang tests hold a real `LOCK TABLE ... IN ACCESS EXCLUSIVE MODE` in another session, the way
a migration or a long maintenance job does, and show that `diagnose` and `check --dsn` come back
within a bounded time saying what timed out, instead of waiting for ever.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_detectors_support import pgss_dsn, seed_chat  # noqa: F401

from cli import run_pglab
from pglab.lab.postgres.client import LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS, open_session, timed_out
from pglab.lab.runtime.diagnose import run_detectors
from pglab.lab.runtime.stats import APPLICATION_NAME

BOUND_S = 20  # far above the 1 s lock timeout, far below "for ever"


def test_a_session_is_read_only_named_and_bounded(pg_dsn: str) -> None:
    with open_session(pg_dsn, "diagnose") as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('application_name', 'lock_timeout', "
            "'statement_timeout', 'idle_in_transaction_session_timeout', 'default_transaction_read_only')"))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE pglab_must_not_exist (id int)")
    assert settings["application_name"] == APPLICATION_NAME  # what diagnose's own detectors leave out
    assert settings["default_transaction_read_only"] == "on"
    assert int(settings["lock_timeout"]) == LOCK_TIMEOUT_MS
    assert int(settings["statement_timeout"]) == STATEMENT_TIMEOUT_MS
    assert int(settings["idle_in_transaction_session_timeout"]) > 0
    with open_session(pg_dsn, "lab", write=True, autocommit=False, statement_timeout_ms=200) as conn:
        conn.execute("CREATE TEMP TABLE written (id int)")  # asked to write: it may
        with pytest.raises(psycopg.errors.QueryCanceled) as slow:
            conn.execute("SELECT pg_sleep(5)")
        assert timed_out(slow.value)


@pytest.fixture
def locked_dsn(pg_dsn: str) -> Iterator[str]:
    """The chat data, with `messages` (which has indexes) held in ACCESS EXCLUSIVE mode by another session."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=2_000)
    with psycopg.connect(pg_dsn) as holder:
        holder.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        yield pg_dsn
        holder.rollback()


def waiting_sessions(dsn: str, process: subprocess.Popen[str]) -> list[tuple[str, str]]:
    """(application_name, wait_event_type) of the sessions in `dsn`'s database while `process` runs."""
    seen: list[tuple[str, str]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        while process.poll() is None:
            seen += conn.execute("SELECT application_name, coalesce(wait_event_type, '') FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND application_name LIKE 'pglab %%'").fetchall()
            time.sleep(0.05)
    return seen


def run_behind_the_lock(dsn: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float, list[Any]]:
    started = time.perf_counter()
    with subprocess.Popen([sys.executable, "-m", "pglab.lab.cli", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        watcher = threading.Thread(target=lambda: seen.extend(waiting_sessions(dsn, process)))
        seen: list[Any] = []
        watcher.start()
        try:
            stdout, stderr = process.communicate(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail(f"pglab {args[0]} still waiting behind the lock after {BOUND_S} s")
        watcher.join()
    elapsed = time.perf_counter() - started
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr), elapsed, seen


def test_diagnose_returns_behind_an_exclusive_lock(locked_dsn: str) -> None:
    result, elapsed, seen = run_behind_the_lock(locked_dsn, "diagnose", "--dsn", locked_dsn, "--format", "json")
    assert "Traceback" not in result.stderr
    # The locked table is left out (its indexes' definitions and sizes would wait for the lock) and
    # the note says so; everything else is judged: a partial result, not a hang and not an error.
    assert result.returncode in (0, 1), result
    report = json.loads(result.stdout)
    notes = " ".join(diagnostic["message"] for diagnostic in report["diagnostics"])
    assert "locked by another session" in notes and "messages" in notes, report["diagnostics"]
    assert elapsed < BOUND_S


def test_check_dsn_returns_behind_an_exclusive_lock(locked_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "queries.sql").write_text("SELECT id FROM messages WHERE conversation_id = 7;\n"
                                          "SELECT id FROM users WHERE email = 'a@example.com';\n")
    result, elapsed, seen = run_behind_the_lock(locked_dsn, "check", "--no-cache", "--format", "json", "--dsn",
                                                locked_dsn, str(tmp_path / "queries.sql"))
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    diagnostics = [d for d in report.get("diagnostics", []) if d["kind"] == "schema-partial"]
    assert diagnostics and "messages" in json.dumps(diagnostics), report
    assert "users" in json.dumps(report["summary"]["schema"]) or report["summary"]["schema"]["tables"] >= 1
    judged = [f for f in report["findings"] if (f.get("evidence") or {}).get("table") == "messages"
              or (f["id"] == "missing_index" and "messages" in f["message"])]
    assert not judged  # nothing judged on the locked table: its indexes were not read
    assert elapsed < BOUND_S


def test_a_locked_statement_is_a_note_and_the_rest_is_still_judged(pgss_dsn: str) -> None:  # noqa: F811
    """The plan rules: the statement on the locked table is skipped with a note, the rest still runs."""
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=20_000)
        conn.execute("CREATE TABLE audit_log (id bigint, body text)")  # no index: nothing else waits on it
        for conversation_id in range(1, 11):
            conn.execute("SELECT id FROM messages WHERE user_id = %s", (conversation_id,)).fetchall()
            conn.execute("SELECT id FROM audit_log WHERE body = %s", (str(conversation_id),)).fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")
    with psycopg.connect(pgss_dsn) as holder:
        holder.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        findings, notes = run_detectors(pgss_dsn)
        elapsed = time.perf_counter() - started
        holder.rollback()
    assert elapsed < BOUND_S
    assert any("audit_log" in note and "lock timeout" in note for note in notes), notes
    assert any(finding.id == "missing_index" and "messages" in json.dumps(finding.evidence, default=str)
               for finding in findings), [finding.id for finding in findings]


def test_watch_says_it_measures_and_shows_progress(pg_dsn: str) -> None:
    help_text = run_pglab("diagnose", "--help").stdout
    assert "measure over SECONDS" in " ".join(help_text.split())
    result = run_pglab("diagnose", "--dsn", pg_dsn, "--watch", "11", "--no-explain")
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if "measuring" in line]
    assert len(progress) >= 2 and "\r" not in result.stderr, result.stderr  # plain lines: stderr is a pipe
    assert progress[-1].endswith("of 11 s")
