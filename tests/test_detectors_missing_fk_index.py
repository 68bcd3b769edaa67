"""missing_fk_index over a window, on a live server: an unindexed foreign key is reported when its
parent lost rows and its child was scanned in the window (the harm happening), or, as a risk, when
the counters cover a long history; a short window without parent deletes says nothing of it."""

from __future__ import annotations

import psycopg
from test_detectors_support import flush_stats, ids, of, run_block, seed_chat

from pglab.lab.runtime.diagnose import run_detectors, take_snapshot

NOTIFICATIONS_KEY = "foreign key notifications_message_id_fkey"


def purge(dsn: str, user_id: int) -> None:
    """The reference purge (naive and fixed are the same SQL): an account's messages of the last hour."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        run_block(conn, "missing_fk_index", "naive", user_id=user_id)
        flush_stats(conn)


def test_parent_deletes_that_scan_the_child_are_reported(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, notifications=20_000)  # the last hour holds 3,600 messages, 18 of each user
    before = take_snapshot(pg_dsn)
    purge(pg_dsn, user_id=7)
    findings, _ = run_detectors(pg_dsn, before, explain_top=False)
    (found,) = of(findings, "missing_fk_index")  # users lost no row: messages.user_id is not this window's harm
    assert found.evidence["subject"] == NOTIFICATIONS_KEY and found.severity == "error"
    assert found.evidence["parent_rows_deleted"] == 18
    assert found.evidence["child_seq_scans"] >= 18  # one scan of notifications per purged message
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        run_block(conn, "missing_fk_index", "migrate")
        conn.execute("ANALYZE")
    before = take_snapshot(pg_dsn)
    purge(pg_dsn, user_id=8)
    findings, _ = run_detectors(pg_dsn, before, explain_top=False)
    assert NOTIFICATIONS_KEY not in {f.evidence["subject"] for f in of(findings, "missing_fk_index")}


def test_a_short_window_without_deletes_is_quiet_and_a_long_history_shows_the_risk(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, notifications=20_000)
    before = take_snapshot(pg_dsn)
    assert "missing_fk_index" not in ids(run_detectors(pg_dsn, before, explain_top=False)[0])
    long_window = {"missing_fk_index": {"min_latent_seconds": 0}}
    findings, _ = run_detectors(pg_dsn, before, explain_top=False, thresholds=long_window)
    latent = {f.evidence["subject"] for f in of(findings, "missing_fk_index")}
    assert {NOTIFICATIONS_KEY, "foreign key messages_user_id_fkey"} <= latent
    assert {f.severity for f in of(findings, "missing_fk_index")} == {"warning"}
