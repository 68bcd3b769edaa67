"""count_per_request's fix: the unread counts its triggers keep stay equal to the count they
replace, through every kind of write to notifications (the service's, a retention job's, a
script's), and concurrent broadcasts to every user neither wait for each other nor deadlock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg

from pglab.lab.trial import baseline
from pglab.lab.trial.seed import Scale, lab_dsn, restore, seed

TINY = Scale("tiny", users=60, conversations=50, hot_conversations=2, messages=2_000, notifications=3_000)
DRIFT = ("SELECT count(*) FROM users u"
         " WHERE (SELECT coalesce(sum(delta), 0) FROM unread_deltas d WHERE d.user_id = u.id)"
         "    <> (SELECT count(*) FROM notifications n WHERE n.user_id = u.id AND n.read_at IS NULL)")
BADGE = "SELECT coalesce(sum(delta), 0) FROM unread_deltas WHERE user_id = %s"


def _migrated(dsn: str) -> None:
    seed(dsn, TINY)
    with psycopg.connect(lab_dsn(dsn), autocommit=True) as conn:
        for statement in baseline.migration("count_per_request"):
            conn.execute(statement)


def test_the_counters_follow_inserts_updates_and_deletes(pg_dsn: str) -> None:
    _migrated(pg_dsn)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        assert conn.execute(DRIFT).fetchone() == (0,)
        conn.execute("INSERT INTO notifications (user_id, kind) SELECT id, 'news' FROM users")
        conn.execute("INSERT INTO notifications (user_id, kind, read_at) VALUES (1, 'news', now())")
        conn.execute("UPDATE notifications SET read_at = now() WHERE user_id = 2 AND read_at IS NULL")
        conn.execute("UPDATE notifications SET read_at = NULL WHERE id IN (SELECT id FROM notifications"
                     " WHERE user_id = 3 AND read_at IS NOT NULL LIMIT 5)")
        conn.execute("UPDATE notifications SET kind = 'renamed' WHERE user_id = 4")
        conn.execute("DELETE FROM notifications WHERE created_at < '2025-11-15'")
        with conn.transaction():
            conn.execute("DELETE FROM notifications WHERE user_id = 5")
            conn.execute("INSERT INTO notifications (user_id, kind) VALUES (5, 'news'), (5, 'news')")
        assert conn.execute(DRIFT).fetchone() == (0,)
        badge = conn.execute(BADGE, (5,)).fetchone()
        assert badge == (2,) and type(badge[0]) is int  # type: ignore[index]  # JSON, not a Decimal
    restore(pg_dsn, TINY)  # the seed's rows back: a second migrate puts the counters right again
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        for statement in baseline.migration("count_per_request"):
            conn.execute(statement)
        assert conn.execute(DRIFT).fetchone() == (0,)


def test_concurrent_broadcasts_keep_the_counts_and_do_not_wait_for_each_other(pg_dsn: str) -> None:
    _migrated(pg_dsn)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as first, \
            psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as second:
        second.execute("SET lock_timeout = '2s'")
        with first.transaction():  # a broadcast still open...
            first.execute("INSERT INTO notifications (user_id, kind) SELECT id, 'news' FROM users ORDER BY id")
            # ...does not hold up another broadcast to the same users, nor a user marking theirs read
            second.execute("INSERT INTO notifications (user_id, kind) SELECT id, 'news' FROM users ORDER BY id DESC")
            second.execute("UPDATE notifications SET read_at = now() WHERE user_id = 7 AND read_at IS NULL")

    def write(index: int) -> None:
        with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn, conn.transaction():
            if index % 3 == 2:
                conn.execute("UPDATE notifications SET read_at = now() WHERE read_at IS NULL AND id %% 7 = %s",
                             (index % 7,))
            else:
                conn.execute("INSERT INTO notifications (user_id, kind) SELECT id, 'news' FROM users")

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(write, range(30)))
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        assert conn.execute(DRIFT).fetchone() == (0,)
