"""Seeding the chat schema at named scales, entirely server-side.

Rows are made by `INSERT ... SELECT FROM generate_series` so that no row crosses the wire: the
client only sends a handful of statements. The data is skewed the way real chat data is: a few
hot conversations hold a large share of all messages (the ones a correlated subquery or a missing
index hurts most), while thousands of cold ones hold a few messages each. Message bodies are
drawn from a made-up vocabulary with a steep frequency curve, so some words are everywhere and
others are rare enough that a good search index finds them in microseconds.

Notifications are skewed per user the same way (see `_NOTIFICATION_SQL`): user number k gets a
share of about 1 / (k ln users), so users 1, 2, 3... are the busy ones (tens of thousands at
medium scale, about twenty thousand at small) and the long tail has a dozen or so each. They span
NOTIFICATION_DAYS before EPOCH, oldest first by id; each user last read theirs some days ago, so
the recent ones are unread (busy users have hundreds to thousands unread) and the old ones read.
Every tenth one (id % 10 = 0) is a `system` notification about no message: its `message_id` is
NULL, as real data has. They are computed from their id alone, without random(), so `restore`
can put back the ones a run deleted. A scale may add a backlog: older notifications, by the same
law, of a table that nothing ever purged (ids after the others, dates before them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import pglast
import psycopg
from psycopg import sql

from pglab.lab.core.errors import UserError
from pglab.lab.core.fixes import chat_schema, parse_blocks

LAB_SCHEMA = "pglab_lab"
TABLES = ("users", "conversations", "conversation_members", "messages", "notifications")
SCHEMA_COMMENT = "pglab lab data: dropped and re-created by pglab"
RANDOM_SEED = 0.42  # setseed(): every seed of a scale draws the same rows
EPOCH = "2026-01-01 00:00:00+00"  # the seeded rows' timestamps count from here, not from now()
HOT_SHARE = 0.6  # share of all messages that go to the hot conversations (a few busy channels hold most)
CHUNK_ROWS = 50_000  # rows per INSERT, so the progress bar moves and no statement runs for long
SYLLABLES = ("ka", "lo", "mi", "ren", "tus", "vo", "sha", "bri", "del", "nu", "pax", "quo", "zi", "fen",
             "gor", "hal", "jun", "lex", "mor", "ota", "pri", "sul", "tam", "wex", "yor")
VOCABULARY = 4000  # distinct words; word number floor(VOCABULARY * random()^3) is drawn, so low numbers dominate
WORDS_PER_MESSAGE = 8
NOTIFICATION_DAYS = 90  # notifications span this many days before EPOCH (retention has something to purge)
LAST_READ_DAYS = 45  # each user last read their notifications 1 to this many days before EPOCH
STRAGGLER_EVERY = 50  # one older notification in this many was never read either
SYSTEM_EVERY = 10  # notifications with id % SYSTEM_EVERY = 0 are `system` ones, with message_id NULL
_WORD_SQL = ("(SELECT s[1 + w %% 25] || s[1 + (w / 25) %% 25] || s[1 + (w / 625) %% 25]"
             " FROM (SELECT floor(%(vocabulary)s * random() ^ 3)::int + 0 * i AS w) AS drawn)")  # `0 * i`: per row


@dataclass(frozen=True)
class Scale:
    name: str
    users: int
    conversations: int
    hot_conversations: int
    messages: int
    notifications: int
    notification_backlog: int = 0  # more, older than NOTIFICATION_DAYS (`with_backlog`)

    @property
    def all_notifications(self) -> int:
        return self.notifications + self.notification_backlog

    def with_backlog(self, days: float) -> Scale:
        """This scale with `days` more of notification history before the seeded NOTIFICATION_DAYS,
        at the same rate a day: the table a product has when its retention was never switched on."""
        return replace(self, notification_backlog=round(self.notifications * days / NOTIFICATION_DAYS))


SCALES = {
    scale.name: scale
    for scale in (
        Scale("small", users=1_000, conversations=2_000, hot_conversations=5, messages=200_000,
              notifications=200_000),
        Scale("medium", users=10_000, conversations=20_000, hot_conversations=10, messages=500_000,
              notifications=1_000_000),
        Scale("large", users=50_000, conversations=200_000, hot_conversations=20, messages=5_000_000,
              notifications=4_000_000),
    )
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise UserError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}") from None


def word(index: int) -> str:
    """The vocabulary word number `index`: three syllables picked by its base-25 digits. The SQL in
    `_insert_messages` builds the same words server-side."""
    base = len(SYLLABLES)
    return SYLLABLES[index % base] + SYLLABLES[(index // base) % base] + SYLLABLES[(index // base**2) % base]


def rare_words(count: int) -> list[str]:
    """Words from the tail of the frequency curve: each is in under 0.1 % of messages."""
    return [word(index) for index in range(VOCABULARY - count, VOCABULARY)]


def lab_dsn(dsn: str, schema: str = LAB_SCHEMA) -> str:
    """The DSN with the lab schema first on the search_path, for the service, detectors and fixes."""
    return psycopg.conninfo.make_conninfo(dsn, options=f"-c search_path={schema},public")


def reset_schema(conn: psycopg.Connection[Any], schema: str = LAB_SCHEMA) -> None:
    """Drop and re-create the lab schema, refusing to drop a schema of that name pglab did not make."""
    row = conn.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()
    if row is not None and row[0] != SCHEMA_COMMENT:
        raise UserError(f"schema {schema!r} exists and was not created by pglab; not touching it")
    if row is not None:
        drop_schema(conn, schema)
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(schema), sql.Literal(SCHEMA_COMMENT)))
    conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
    conn.execute(chat_schema())


def fix_objects() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tables, functions) the reference fixes create in a setup or migrate block (a counter table
    kept on write, its trigger functions): the lab made them in its schema, so a new seed drops
    them too."""
    tables: list[str] = []
    functions: list[str] = []
    for resource in sorted(resources.files("pglab.fixes").iterdir(), key=lambda found: found.name):
        if not resource.name.endswith(".sql"):
            continue
        blocks = parse_blocks(resource.read_text(encoding="utf-8"))
        for block in ("setup", "migrate"):
            for statement in pglast.parse_sql(blocks.get(block, "")):
                node = statement.stmt
                if isinstance(node, pglast.ast.CreateStmt) and node.relation and node.relation.relname:
                    tables.append(str(node.relation.relname))
                elif isinstance(node, pglast.ast.CreateFunctionStmt) and node.funcname:
                    functions.append(str(node.funcname[-1].sval))
    return (tuple(dict.fromkeys(name for name in tables if name not in TABLES)), tuple(dict.fromkeys(functions)))


def drop_schema(conn: psycopg.Connection[Any], schema: str = LAB_SCHEMA) -> None:
    """Drop the lab's tables and the fixes' tables and functions, then its schema, without CASCADE: anything
    else in or on them (someone's view over messages, an extension installed into the schema) stops
    the drop with a one-line error naming it, and nothing of theirs is touched."""
    extra_tables, functions = fix_objects()
    tables = sql.SQL(", ").join(sql.Identifier(schema, table) for table in (*extra_tables, *TABLES))
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(tables))
            for function in functions:
                conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(sql.Identifier(schema, function)))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(schema)))
    except psycopg.errors.DependentObjectsStillExist as error:
        detail = (error.diag.message_detail or str(error)).splitlines()[0]
        raise UserError(f"schema {schema!r} holds or feeds objects pglab did not create ({detail});"
                        " not dropping them: remove them or use another database") from None


Step = tuple[str, int, Callable[[psycopg.Connection[Any], int, int], None]]  # label, rows, insert(conn, first, last)


def _steps(scale: Scale) -> tuple[list[Step], list[Step]]:
    """The tables to fill in foreign-key order on one connection (messages draw on the session's
    random() sequence, so they keep their place in it), and those that may fill at the same time
    on another when foreign keys are not checked: notifications, computed from their id alone."""
    return ([("users", scale.users, _insert_users),
             ("conversations", scale.conversations, lambda c, a, b: _insert_conversations(c, scale, a, b)),
             ("members", scale.conversations, lambda c, a, b: _insert_members(c, scale, a, b)),
             ("messages", scale.messages, lambda c, a, b: _insert_messages(c, scale, a, b))],
            [("notifications", scale.all_notifications, lambda c, a, b: _insert_notifications(c, scale, a, b))])


def _insert_users(conn: psycopg.Connection[Any], first: int, last: int) -> None:
    conn.execute(
        "INSERT INTO users (id, name, email) SELECT i, 'user ' || i, 'user' || i || '@example.com'"
        " FROM generate_series(%s::bigint, %s::bigint) AS i", (first, last))


def _insert_conversations(conn: psycopg.Connection[Any], scale: Scale, first: int, last: int) -> None:
    conn.execute(
        "INSERT INTO conversations (id, owner_id, title, created_at, updated_at)"
        " SELECT i, 1 + (i * 7919) %% %s, 'conversation ' || i, %s::timestamptz - interval '30 days', %s::timestamptz"
        " FROM generate_series(%s::bigint, %s::bigint) AS i", (scale.users, EPOCH, EPOCH, first, last))


def _insert_members(conn: psycopg.Connection[Any], scale: Scale, first: int, last: int) -> None:
    conn.execute(
        "INSERT INTO conversation_members (conversation_id, user_id)"
        " SELECT DISTINCT c.id, 1 + (c.owner_id - 1 + k * 104729) %% %s"
        " FROM conversations c, generate_series(0, 2) AS k WHERE c.id BETWEEN %s AND %s",
        (scale.users, first, last))


def _insert_messages(conn: psycopg.Connection[Any], scale: Scale, first: int, last: int) -> None:
    """A share HOT_SHARE of messages goes to the hot conversations 1..hot; the rest spread evenly."""
    cold = scale.conversations - scale.hot_conversations
    body = "concat_ws(' ', " + ", ".join([_WORD_SQL] * WORDS_PER_MESSAGE) + ")"
    conn.execute(
        "INSERT INTO messages (id, conversation_id, user_id, body, tokens, created_at)"
        " SELECT i,"
        "  CASE WHEN random() < %(hot_share)s THEN 1 + i %% %(hot)s ELSE %(hot)s + 1 + (i * 104729) %% %(cold)s END,"
        "  1 + (i * 15485863) %% %(users)s,"
        f"  {body},"
        "  1 + (i %% 50),"
        "  %(epoch)s::timestamptz - interval '30 days' + (i * interval '30 days') / %(total)s"
        " FROM (SELECT %(syllables)s::text[] AS s) AS syllables,"
        "  generate_series(%(first)s::bigint, %(last)s::bigint) AS i",
        {"hot_share": HOT_SHARE, "hot": scale.hot_conversations, "cold": cold, "users": scale.users,
         "vocabulary": VOCABULARY, "syllables": list(SYLLABLES), "total": scale.messages, "epoch": EPOCH,
         "first": first, "last": last})


# One notification per id `i` of `n` (users `u`, messages `m`), from `i` alone (no random()):
# - user: `floor((u + 1) ^ h)` for `h` the fractional part of i times the golden ratio (evenly
#   spread over [0, 1)): a Zipf-like skew where user 1 gets ln 2 / ln(u + 1) of all rows;
# - created_at: NOTIFICATION_DAYS before EPOCH for i = 1, up to EPOCH, in id order (position
#   `i - shift`: a backlog's ids come after the others, its shifted positions before 1, older);
# - kind: `system` (no message, message_id NULL) for every SYSTEM_EVERY-th id, else a mention, a
#   reply or a reaction to a message;
# - read_at: user k last read their notifications 1 + (37 k mod LAST_READ_DAYS) days before
#   EPOCH; the ones since are unread, and so is one older straggler in STRAGGLER_EVERY; the others
#   were read a few hours after they came (and by that last read).
_NOTIFICATION_CREATED = ("%(epoch)s::timestamptz - (%(n)s - (i - %(shift)s)) * (%(days)s * interval '1 day')"
                         " / %(n)s")
_NOTIFICATION_USER = ("least(%(u)s, floor(power(%(u)s + 1.0::float8,"
                      " (i * 0.6180339887498949 - floor(i * 0.6180339887498949))::float8))::bigint)")
_NOTIFICATION_SQL = (
    "SELECT i, user_id,"
    "  CASE WHEN i %% %(system)s = 0 THEN NULL ELSE 1 + (i * 104729) %% %(m)s END,"
    "  CASE WHEN i %% %(system)s = 0 THEN 'system' WHEN i %% %(system)s < 7 THEN 'mention'"
    "       WHEN i %% %(system)s < 9 THEN 'reply' ELSE 'reaction' END,"
    "  {read_at}, created_at"
    f" FROM (SELECT i, {_NOTIFICATION_USER} AS user_id, {_NOTIFICATION_CREATED} AS created_at"
    "  FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i{missing}) AS generated")
_LAST_READ = "%(epoch)s::timestamptz - (1 + (user_id * 37) %% %(last_read_days)s) * interval '1 day'"
_NOTIFICATION_READ_AT = (
    f"CASE WHEN created_at > {_LAST_READ} OR {{i}} %% %(straggler)s = 0 THEN NULL"
    f" ELSE least({_LAST_READ}, created_at + (1 + {{i}} %% 48) * interval '1 hour') END")


def _notification_parameters(scale: Scale, first: int, last: int, shift: int = 0) -> dict[str, Any]:
    return {"u": scale.users, "m": scale.messages, "n": scale.notifications, "epoch": EPOCH,
            "days": NOTIFICATION_DAYS, "last_read_days": LAST_READ_DAYS, "straggler": STRAGGLER_EVERY,
            "system": SYSTEM_EVERY, "first": first, "last": last, "shift": shift}


def _insert_notifications(conn: psycopg.Connection[Any], scale: Scale, first: int, last: int,
                          missing_only: bool = False) -> None:
    """Notifications `first`..`last` as `_NOTIFICATION_SQL` makes them; with `missing_only`, only
    those a run deleted. Ids past `scale.notifications` are the backlog, dated before id 1."""
    read_at = _NOTIFICATION_READ_AT.format(i="i")
    # The ids still there are left out by an anti-join: inserting every id ON CONFLICT DO NOTHING
    # took 15.5 s where a retention job had deleted a million of 1.2 million (bulk_delete), this
    # 11.5 s. Most of the rest is keeping the table's indexes up to date, row by row.
    missing = " WHERE NOT EXISTS (SELECT FROM notifications kept WHERE kept.id = i)" if missing_only else ""
    statement = ("INSERT INTO notifications (id, user_id, message_id, kind, read_at, created_at) "
                 + _NOTIFICATION_SQL.format(read_at=read_at, missing=missing))
    seeded = scale.notifications
    if first <= seeded:
        conn.execute(statement, _notification_parameters(scale, first, min(last, seeded)))
    if last > seeded:
        conn.execute(statement, _notification_parameters(scale, max(first, seeded + 1), last,
                                                         shift=scale.all_notifications))


def _reset_read_at(conn: psycopg.Connection[Any], scale: Scale) -> None:
    """Undo a run's "mark as read": every seeded notification's read_at as the seed made it."""
    read_at = _NOTIFICATION_READ_AT.format(i="id")
    conn.execute(f"UPDATE notifications SET read_at = {read_at} WHERE read_at IS DISTINCT FROM {read_at}",
                 _notification_parameters(scale, 1, scale.notifications))


def _finish(conn: psycopg.Connection[Any]) -> None:
    """Consistent totals (the lost-update invariant starts from zero), serials past the seeded ids,
    fresh statistics so the planner sees the real sizes."""
    conn.execute("UPDATE users u SET tokens_used = t.total FROM"
                 " (SELECT user_id, sum(tokens) AS total FROM messages GROUP BY user_id) t WHERE t.user_id = u.id")
    conn.execute("UPDATE conversations c SET message_count = t.n FROM"
                 " (SELECT conversation_id, count(*) AS n FROM messages GROUP BY conversation_id) t"
                 " WHERE t.conversation_id = c.id")
    for table in ("users", "conversations", "messages", "notifications"):
        conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), (SELECT max(id) FROM {}))").format(
            sql.Literal(table), sql.Identifier(table)))
    for table in TABLES:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def restore(dsn: str, scale: Scale, schema: str = LAB_SCHEMA) -> None:
    """Put the seeded data back as `seed` made it, after a run wrote to it: remove the rows the
    service added, put back the seeded ones it deleted, undo its changes to seeded rows (read_at,
    a conversation's last activity), recompute the totals, VACUUM ANALYZE. Much faster than seeding
    again (and its indexes stay), so each side of a lab run starts alike."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute("DELETE FROM notifications WHERE id > %s", (scale.all_notifications,))
        # The service's messages go without the foreign key's check of each one: where no index
        # serves notifications.message_id (missing_fk_index's naive side, 1.2 million notifications)
        # that check scans the table once per message, 13 s. One scan clears every reference first.
        conn.execute("DELETE FROM notifications WHERE message_id > %s", (scale.messages,))
        with _foreign_key_checks_skipped(conn):
            conn.execute("DELETE FROM messages WHERE id > %s", (scale.messages,))
        row = conn.execute("SELECT count(*) FROM notifications").fetchone()
        if row and row[0] < scale.all_notifications:  # a retention job deleted seeded ones: put them back
            with _foreign_key_checks_skipped(conn):
                _insert_notifications(conn, scale, 1, scale.all_notifications, missing_only=True)
        _reset_read_at(conn, scale)
        conn.execute("UPDATE conversations SET updated_at = %(epoch)s::timestamptz WHERE id <= %(n)s"
                     " AND updated_at <> %(epoch)s::timestamptz", {"epoch": EPOCH, "n": scale.conversations})
        conn.execute("UPDATE users u SET tokens_used = coalesce(t.total, 0) FROM users v LEFT JOIN"
                     " (SELECT user_id, sum(tokens) AS total FROM messages GROUP BY user_id) t ON t.user_id = v.id"
                     " WHERE v.id = u.id AND u.tokens_used <> coalesce(t.total, 0)")
        _finish(conn)


def _skip_foreign_key_checks(conn: psycopg.Connection[Any]) -> bool:
    """The generated rows are consistent by construction; checking every foreign key row by row
    doubles the seeding time. Only a superuser may skip them (True), so others simply pay the time."""
    try:
        conn.execute("SET session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


@contextmanager
def _foreign_key_checks_skipped(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Within the block only: the session's triggers (a fix's among them) fire again after it."""
    skipped = _skip_foreign_key_checks(conn)
    try:
        yield
    finally:
        if skipped:
            conn.execute("RESET session_replication_role")


ProgressCallback = Callable[[str, int, int], None]


def seed(dsn: str, scale: Scale, progress: ProgressCallback | None = None, schema: str = LAB_SCHEMA) -> float:
    """Create the chat schema in `schema` and fill it at `scale`; returns the seconds it took.
    `progress(label, done, total)` is called after every chunk of rows."""
    began = time.perf_counter()
    in_order, independent = _steps(scale)
    total = sum(rows for _, rows, _ in in_order + independent) + 1
    done = [0, 0]  # rows inserted by this connection, by the one alongside

    def say(label: str) -> None:
        if progress:
            progress(label, sum(done), total)

    with psycopg.connect(dsn, autocommit=True) as conn:
        reset_schema(conn, schema)
        unchecked = _skip_foreign_key_checks(conn)
        conn.execute("SELECT setseed(%s)", (RANDOM_SEED,))
        with _Alongside(dsn, schema, independent if unchecked else [], done) as alongside:
            _fill(conn, in_order + ([] if unchecked else independent), done, say)
            alongside.wait(say)
        _finish(conn)
    if progress:
        progress("analyze", total, total)
    return time.perf_counter() - began


def _fill(conn: psycopg.Connection[Any], steps: list[Step], done: list[int], say: Callable[[str], None],
          slot: int = 0, stop: threading.Event | None = None) -> None:
    for label, rows, insert in steps:
        for first in range(1, rows + 1, CHUNK_ROWS):
            if stop is not None and stop.is_set():
                return
            last = min(rows, first + CHUNK_ROWS - 1)
            insert(conn, first, last)
            done[slot] += last - first + 1
            say(label)


class _Alongside:
    """Steps filled on a second connection while the first fills the others: the server has more
    than one core, and notifications alone took 1.0-1.6 s of a 3.8 s seed at small scale. Leaving
    the block early (Ctrl-C, an error) stops it after the chunk at hand; its error is raised here."""

    def __init__(self, dsn: str, schema: str, steps: list[Step], done: list[int]) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(dsn, schema, steps, done), daemon=True)
        self.steps = steps

    def __enter__(self) -> _Alongside:
        if self.steps:
            self.thread.start()
        return self

    def _run(self, dsn: str, schema: str, steps: list[Step], done: list[int]) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
                _skip_foreign_key_checks(conn)
                _fill(conn, steps, done, lambda label: None, slot=1, stop=self.stop)
        except BaseException as error:  # noqa: BLE001 -- handed to the seeding thread, raised there
            self.error = error

    def wait(self, say: Callable[[str], None]) -> None:
        """Until the steps are done, saying how far they got."""
        while self.thread.is_alive():
            self.thread.join(0.2)
            say(self.steps[-1][0])

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        if self.error is not None and exc_info[0] is None:
            raise self.error
