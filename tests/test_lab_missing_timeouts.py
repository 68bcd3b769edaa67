"""missing_timeouts on a live server: an abandoned transaction that another session queues behind
trips the runtime rule; the same transaction with the fix's own idle-in-transaction timeout is
ended by the server first, and the rule stays quiet. Plus what the `session` path gives connections."""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from typing import Any

import psycopg
import pytest
from test_detectors_support import ids, of, seed_chat

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.diagnose import run_detectors
from pglab.lab.trial.service.config import ServiceConfig
from pglab.lab.trial.service.paths import missing_timeouts, statements

LIMITS = {"missing_timeouts": {"min_seconds": 30.0, "min_blocking_seconds": 1.0}}
PARAMS = {"conversation_id": 1, "user_id": 1, "body": "preview"}


@pytest.fixture
def chat_dsn(pg_dsn: str) -> str:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=2_000, notifications=2_000)
    return pg_dsn


def queue_behind(dsn: str) -> threading.Thread:
    """Another share of the same conversation: it waits on the row lock until the holder ends."""
    def run() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE conversations SET updated_at = now() WHERE id = 1")
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def share_with_hanging_preview(dsn: str, block: str) -> list[Finding]:
    """The path's transaction touches the conversation, then the preview hangs; the detectors
    look 1.5 s in, while another share queues on the lock."""
    sql = statements(missing_timeouts.__name__, block)
    with psycopg.connect(dsn) as app:
        if block == "fixed":
            app.execute(sql[0], {"callout_idle_ms": "500ms"})
        app.execute(sql[-2], PARAMS)  # touch: the row lock
        queued = queue_behind(dsn)
        time.sleep(1.5)
        findings, _ = run_detectors(dsn, explain_top=False, thresholds=LIMITS)
        with suppress(psycopg.Error):  # the server ended the session: the fix at work
            app.rollback()
        queued.join(timeout=10)
        assert not queued.is_alive()
    return findings


def test_the_abandoned_transaction_is_seen(chat_dsn: str) -> None:
    (finding,) = of(share_with_hanging_preview(chat_dsn, "naive"), "missing_timeouts")
    assert finding.evidence["waiters"] == 1 and finding.evidence["seconds"] >= 1.0
    assert "UPDATE conversations" in (finding.source or "")


def test_the_fix_ends_it_before_it_starves_anyone(chat_dsn: str) -> None:
    assert "missing_timeouts" not in ids(share_with_hanging_preview(chat_dsn, "fixed"))


def test_session_settings() -> None:
    """Naive: nothing set. Fixed: the timeouts, no looser than the lab's former defaults (15 s
    statement, 5 s acquire), and an idle-in-transaction limit above the 2 s that streaming_txn's
    naive stream must be able to sit idle for its own harm to show."""
    config = ServiceConfig(dsn="")
    assert missing_timeouts.naive(config).options() == ""
    fixed: Any = missing_timeouts.fixed(config)
    assert "-c statement_timeout=15000" in fixed.options() and fixed.acquire_timeout_s <= 5.0
    assert fixed.idle_in_transaction_ms > config.stream_chunks * config.stream_interval * 1000
    assert 0 < fixed.callout_idle_ms < 1000
