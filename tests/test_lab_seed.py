"""Seeding: the sizes asked for, the skew promised, consistent totals, and a schema of its own."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pglab.lab.core.errors import UserError
from pglab.lab.trial import invariants
from pglab.lab.trial.seed import (
    EPOCH,
    HOT_SHARE,
    LAB_SCHEMA,
    NOTIFICATION_DAYS,
    SCALES,
    SYSTEM_EVERY,
    Scale,
    get_scale,
    lab_dsn,
    rare_words,
    restore,
    seed,
    word,
)

TINY = Scale("tiny", users=60, conversations=50, hot_conversations=2, messages=6_000, notifications=300)
BUSY = Scale("busy", users=200, conversations=50, hot_conversations=2, messages=2_000, notifications=20_000)
NOTIFICATIONS_DIGEST = "SELECT count(*), coalesce(sum(hashtext(n::text)::bigint), 0) FROM notifications n"


def test_seed_makes_the_rows_of_the_scale_with_hot_conversations(pg_dsn: str) -> None:
    steps: list[tuple[str, int, int]] = []
    seed(pg_dsn, TINY, progress=lambda label, done, total: steps.append((label, done, total)))
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                  for table in ("users", "conversations", "messages", "notifications")}
        hot_share = conn.execute(
            "SELECT avg((conversation_id <= %s)::int) FROM messages", (TINY.hot_conversations,)).fetchone()[0]  # type: ignore[index]
        cold_max = conn.execute(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM messages WHERE conversation_id > %s"
            " GROUP BY conversation_id) c", (TINY.hot_conversations,)).fetchone()[0]  # type: ignore[index]
        assert invariants.lost_updates(conn) == 0
    assert counts == {"users": 60, "conversations": 50, "messages": 6_000, "notifications": 300}
    assert abs(float(hot_share) - HOT_SHARE) < 0.05  # 2 of 50 conversations hold HOT_SHARE of the messages
    assert cold_max * 5 < 6_000 * HOT_SHARE / 2  # each hot one holds over 5x any cold one
    assert steps[-1][1] == steps[-1][2]  # the progress reached its total


def test_rare_words_are_rare_and_common_words_common(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        def share(term: str) -> float:
            row = conn.execute("SELECT avg((body LIKE %s)::int) FROM messages", (f"%{term}%",)).fetchone()
            return float(row[0]) if row else 0.0

        assert share(word(0)) > 0.2
        assert max(share(term) for term in rare_words(5)) < 0.01


def test_reseeding_replaces_the_lab_schema_but_not_a_foreign_one(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    seed(pg_dsn, TINY)  # its own schema: dropped and made again
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA somebody_elses")
    with pytest.raises(UserError, match="not created by pglab"):
        seed(pg_dsn, TINY, schema="somebody_elses")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (LAB_SCHEMA,)).fetchone() == (1,)


def test_scales_grow_by_about_ten_and_unknown_ones_are_refused() -> None:
    assert SCALES["medium"].messages == 500_000
    assert SCALES["large"].messages == 5_000_000
    with pytest.raises(UserError, match="unknown scale 'huge'"):
        get_scale("huge")


def test_notifications_are_skewed_aged_mostly_read_when_old_and_null_for_system_ones(pg_dsn: str) -> None:
    seed(pg_dsn, BUSY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        per_user = [row[0] for row in conn.execute(
            "SELECT count(*) FROM notifications GROUP BY user_id ORDER BY user_id").fetchall()]
        unread_of_busiest = conn.execute(
            "SELECT count(*) FROM notifications WHERE user_id = 1 AND read_at IS NULL").fetchone()[0]  # type: ignore[index]
        span = conn.execute(
            "SELECT extract(day FROM max(created_at) - min(created_at)) FROM notifications").fetchone()[0]  # type: ignore[index]
        unread_recent, unread_old = conn.execute(
            "SELECT avg((read_at IS NULL)::int) FILTER (WHERE created_at > %(epoch)s::timestamptz - interval '7 days'),"
            " avg((read_at IS NULL)::int) FILTER (WHERE created_at < %(epoch)s::timestamptz - interval '50 days')"
            " FROM notifications", {"epoch": "2026-01-01 00:00:00+00"}).fetchone()  # type: ignore[misc]
        nulls = conn.execute("SELECT array_agg(DISTINCT kind), bool_and(id %% %s = 0) FROM notifications"
                             " WHERE message_id IS NULL", (SYSTEM_EVERY,)).fetchone()
        read_before_created = conn.execute("SELECT count(*) FROM notifications WHERE read_at < created_at").fetchone()
    assert len(per_user) == BUSY.users  # every user has some
    assert per_user[0] > 0.1 * BUSY.notifications  # the busiest holds over a tenth of them
    assert sorted(per_user)[len(per_user) // 2] < 0.005 * BUSY.notifications  # the median user few
    assert unread_of_busiest >= 100  # hundreds unread for the busiest
    assert span == 89  # an age spread of about 90 days
    assert unread_recent > 0.5 > 0.05 > unread_old  # recent mostly unread, old mostly read
    assert nulls == (["system"], True)  # message_id is NULL for system notifications, and only for them
    assert read_before_created == (0,)


def test_restore_puts_back_deleted_notifications_and_undoes_reads_and_new_rows(pg_dsn: str) -> None:
    seed(pg_dsn, BUSY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        seeded = conn.execute(NOTIFICATIONS_DIGEST).fetchone()
        conn.execute("DELETE FROM notifications WHERE created_at < '2025-12-01'")  # a retention job
        conn.execute("UPDATE notifications SET read_at = now() WHERE user_id = 1 AND read_at IS NULL")
        conn.execute("INSERT INTO notifications (user_id, kind) SELECT id, 'announcement' FROM users")
        assert conn.execute(NOTIFICATIONS_DIGEST).fetchone() != seeded
    restore(pg_dsn, BUSY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        assert conn.execute(NOTIFICATIONS_DIGEST).fetchone() == seeded
        assert invariants.lost_updates(conn) == 0


MESSAGES_DIGEST = "SELECT count(*), coalesce(sum(hashtext(m::text)::bigint), 0) FROM messages m"


def test_restore_removes_new_messages_and_what_points_at_them_and_a_fixs_triggers_still_fire(pg_dsn: str) -> None:
    """Without an index on notifications.message_id, the foreign key's check of each deleted
    message scanned notifications once per message: the restore clears the references in one scan
    and skips the checks for its own unchecked statements only, so a trigger on notifications (a
    fix's counter) still sees the reads the restore undoes."""
    seed(pg_dsn, BUSY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        seeded = conn.execute(NOTIFICATIONS_DIGEST).fetchone(), conn.execute(MESSAGES_DIGEST).fetchone()
        conn.execute("CREATE TABLE seen_updates (n bigint)")
        conn.execute("CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$BEGIN INSERT INTO seen_updates VALUES (1); RETURN NULL; END$$")
        conn.execute("CREATE TRIGGER count_update AFTER UPDATE ON notifications FOR EACH STATEMENT"
                     " EXECUTE FUNCTION count_update()")
        try:
            conn.execute("INSERT INTO messages (conversation_id, user_id, body) SELECT 1, id, 'new' FROM users")
            conn.execute("INSERT INTO notifications (user_id, message_id, kind) SELECT user_id, id, 'mention'"
                         " FROM messages WHERE id > %s", (BUSY.messages,))
            conn.execute("UPDATE notifications SET message_id = (SELECT max(id) FROM messages) WHERE id ="
                         " (SELECT min(id) FROM notifications WHERE created_at >= '2025-12-01')")  # kept by retention
            conn.execute("DELETE FROM notifications WHERE created_at < '2025-12-01'")  # a retention job
            conn.execute("UPDATE notifications SET read_at = now() WHERE user_id = 1 AND read_at IS NULL")
            conn.execute("TRUNCATE seen_updates")
            restore(pg_dsn, BUSY)
            assert (conn.execute(NOTIFICATIONS_DIGEST).fetchone(), conn.execute(MESSAGES_DIGEST).fetchone()) == seeded
            assert conn.execute("SELECT count(*) FROM seen_updates").fetchone() != (0,)  # the undone reads
        finally:  # objects pglab did not make would stop the next seeding from replacing the schema
            conn.execute("DROP TRIGGER count_update ON notifications")
            conn.execute("DROP FUNCTION count_update()")
            conn.execute("DROP TABLE seen_updates")


def test_a_backlog_is_older_history_by_the_same_law_and_restored_like_the_rest(pg_dsn: str) -> None:
    scale = BUSY.with_backlog(NOTIFICATION_DAYS)  # as much history again, before the seeded days
    assert scale.notification_backlog == BUSY.notifications
    seed(pg_dsn, scale)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        count, span, busiest_share, unread = conn.execute(
            "SELECT count(*), extract(day FROM max(created_at) - min(created_at)),"
            " avg((user_id = 1)::int), avg((read_at IS NULL)::int)"
            " FROM notifications WHERE id > %s", (BUSY.notifications,)).fetchone()  # type: ignore[misc]
        older = conn.execute("SELECT (SELECT max(created_at) FROM notifications WHERE id > %(n)s) < min(created_at)"
                             " FROM notifications WHERE id <= %(n)s", {"n": BUSY.notifications}).fetchone()
        seeded = conn.execute(NOTIFICATIONS_DIGEST).fetchone()
        conn.execute("DELETE FROM notifications WHERE created_at < %(epoch)s::timestamptz - interval '30 days'",
                     {"epoch": EPOCH})  # the retention job, switched on at last
        conn.execute("INSERT INTO notifications (user_id, kind) VALUES (1, 'announcement')")
    assert count == BUSY.notifications and span == NOTIFICATION_DAYS - 1 and older == (True,)
    assert busiest_share > 0.1 and 0 < unread < 0.05  # the same skew; old, so read but for stragglers
    restore(pg_dsn, scale)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        assert conn.execute(NOTIFICATIONS_DIGEST).fetchone() == seeded


def test_seeding_is_deterministic(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        first = [conn.execute(f"SELECT count(*), sum(hashtext(t::text)::bigint) FROM {table} t").fetchone()
                 for table in ("messages", "notifications")]
    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        assert first == [conn.execute(f"SELECT count(*), sum(hashtext(t::text)::bigint) FROM {table} t").fetchone()
                         for table in ("messages", "notifications")]


def test_reseeding_drops_the_tables_and_functions_a_fix_created(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pglab.lab.trial import seed as seeding

    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:  # as a fix's migrate block would
        conn.execute("CREATE TABLE unread_tally (user_id bigint PRIMARY KEY REFERENCES users, n int)")
        conn.execute("CREATE FUNCTION tally() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
        conn.execute("CREATE TRIGGER tally AFTER INSERT ON notifications FOR EACH STATEMENT EXECUTE FUNCTION tally()")
    monkeypatch.setattr(seeding, "fix_objects", lambda: (("unread_tally",), ("tally",)))
    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('unread_tally'), to_regprocedure('tally()')").fetchone() == (None, None)


def test_the_fixes_own_tables_and_functions_are_known() -> None:
    from pglab.lab.trial.seed import fix_objects

    tables, functions = fix_objects()
    assert not set(tables) & {"users", "messages", "notifications"}
    assert all(name.isidentifier() for name in (*tables, *functions))


def _digests(dsn: str, schema: str) -> list[tuple[int, int]]:
    with psycopg.connect(lab_dsn(dsn, schema), autocommit=True) as conn:
        return [conn.execute(f"SELECT count(*), sum(hashtext(t::text)::bigint) FROM {table} t").fetchone()  # type: ignore[misc]
                for table in ("messages", "notifications")]


def test_a_role_that_must_check_foreign_keys_seeds_the_same_rows(pg_dsn: str) -> None:
    """A superuser fills notifications on a second connection while the first fills messages
    (foreign keys unchecked); a role that may not skip the checks fills them after the messages,
    on one connection. Both get the same rows."""
    seed(pg_dsn, BUSY)
    name = f"pglab_seed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(name)))
    plain = make_conninfo(pg_dsn, user=name)
    try:
        with psycopg.connect(plain, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")
        seed(plain, BUSY, schema="pglab_lab_checked")
        assert _digests(plain, "pglab_lab_checked") == _digests(pg_dsn, LAB_SCHEMA)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
