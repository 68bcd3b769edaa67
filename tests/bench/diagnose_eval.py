"""Held-out evaluation of `pglab diagnose`: a bookshop that is not the chat service, one workload
per runtime signal and a set of clean workloads, judged with the default thresholds.

    python tests/bench/diagnose_eval.py [--dsn DSN] [CASE ...]

Without --dsn it starts pglab's embedded PostgreSQL 18 (pg_stat_statements and auto_explain
preloaded); a --dsn server needs pg_stat_statements preloaded and a superuser, and gets one
database per case (dropped afterwards). Each case runs in a fresh copy of a seeded template:
authors 5k, books 50k (1.3 kB descriptions), customers 50k, orders 200k (one customer owns a
tenth), order items 400k, reviews 100k, order events 300k, with NULLs where real data has them.

Prints, per case, what was expected and what diagnose found, then recall over the signal cases
(expected id found) and the false findings on the clean ones (any finding there is false). Extra
findings on signal cases are listed too: they are not counted, but they are shown.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import ClientCursor, sql

from pglab.lab.postgres.launcher import EmbeddedPostgres
from pglab.lab.runtime.diagnose import diagnose_window, take_snapshot

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE authors (id bigint PRIMARY KEY, name text NOT NULL, country text);
CREATE TABLE genres (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE books (id bigint PRIMARY KEY, author_id bigint NOT NULL REFERENCES authors, genre text NOT NULL,
                    title text NOT NULL, isbn text NOT NULL, price numeric NOT NULL, published date,
                    description text);
CREATE INDEX books_author_id_idx ON books (author_id);
CREATE INDEX books_genre_published_idx ON books (genre, published);
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text, created_at timestamptz NOT NULL);
CREATE INDEX customers_email_idx ON customers (email);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, status text NOT NULL,
                     created_at timestamptz NOT NULL);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_pending_idx ON orders (created_at) WHERE status = 'pending';
CREATE TABLE order_items (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders,
                          book_id bigint NOT NULL REFERENCES books, qty int NOT NULL, price numeric NOT NULL);
CREATE INDEX order_items_order_id_idx ON order_items (order_id);
CREATE INDEX order_items_book_id_idx ON order_items (book_id);
CREATE TABLE reviews (id bigserial PRIMARY KEY, book_id bigint NOT NULL REFERENCES books,
                      customer_id bigint NOT NULL REFERENCES customers, rating int NOT NULL, body text,
                      created_at timestamptz NOT NULL);
CREATE INDEX reviews_book_id_idx ON reviews (book_id);
CREATE INDEX reviews_customer_id_idx ON reviews (customer_id);
CREATE TABLE order_events (id bigserial PRIMARY KEY, order_ref bigint, kind text NOT NULL,
                           created_at timestamptz NOT NULL);
CREATE INDEX order_events_created_at_idx ON order_events (created_at);
CREATE TABLE stock (book_id bigint PRIMARY KEY REFERENCES books, qty int NOT NULL);
CREATE TABLE notifications (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
                            kind text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX notifications_customer_id_idx ON notifications (customer_id);
"""

SEED = [
    "INSERT INTO authors SELECT i, 'author ' || i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'c' || i % 40 END "
    "FROM generate_series(1, 5000) i",
    "INSERT INTO genres SELECT i, 'genre ' || i FROM generate_series(1, 300) i",
    "INSERT INTO books SELECT i, 1 + (i * 7) % 5000, 'genre ' || (1 + i % 12), "
    "(ARRAY['the', 'a', 'my', 'last'])[1 + i % 4] || ' ' || md5(i::text) || CASE WHEN i % 97 = 0 THEN ' dragon' "
    "ELSE '' END, 'isbn-' || i, 5 + i % 40, date '2000-01-01' + i % 9000, "
    "(SELECT string_agg(md5((i * 41 + k)::text), '') FROM generate_series(1, 40) k) FROM generate_series(1, 50000) i",
    "INSERT INTO customers SELECT i, 'Customer' || i || '@example.com', CASE WHEN i % 11 = 0 THEN NULL "
    "ELSE 'name ' || i END, now() - i * interval '10 minutes' FROM generate_series(1, 50000) i",
    "INSERT INTO orders SELECT i, CASE WHEN i % 10 = 0 THEN 1 ELSE 2 + i % 49999 END, "
    "CASE WHEN i % 100 = 0 THEN 'pending' WHEN i % 7 = 0 THEN 'cancelled' ELSE 'shipped' END, "
    "now() - i * interval '3 minutes' FROM generate_series(1, 200000) i",
    "INSERT INTO order_items (order_id, book_id, qty, price) SELECT 1 + i % 200000, 1 + (i * 13) % 45000, "
    "1 + i % 3, 5 + i % 40 FROM generate_series(1, 400000) i",
    "INSERT INTO reviews (book_id, customer_id, rating, body, created_at) SELECT 1 + i % 50000, 1 + (i * 3) % 50000, "
    "1 + i % 5, CASE WHEN i % 3 = 0 THEN NULL ELSE 'review ' || md5(i::text) END, now() - i * interval '7 minutes' "
    "FROM generate_series(1, 100000) i",
    "INSERT INTO order_events (order_ref, kind, created_at) SELECT CASE WHEN i % 9 = 0 THEN NULL ELSE 1 + i % 200000 "
    "END, 'event', now() - i * interval '1 minute' FROM generate_series(1, 300000) i",
    "INSERT INTO stock SELECT i, 100 FROM generate_series(1, 50000) i",
    "VACUUM ANALYZE",
]


@dataclass
class Case:
    name: str
    expected: str | None  # the catalogue id the workload should trip; None: a clean workload
    run: Callable[[str], set[str]]  # runs the workload on a database DSN, returns the ids diagnose found


CASES: list[Case] = []


def case(name: str, expected: str | None) -> Callable[[Callable[[str], set[str]]], Callable[[str], set[str]]]:
    def register(run: Callable[[str], set[str]]) -> Callable[[str], set[str]]:
        CASES.append(Case(name, expected, run))
        return run
    return register


LAST_MESSAGES: list[str] = []  # the findings of the last diagnose run, printed for false findings


def found_ids(dsn: str, before: Any) -> set[str]:
    result = diagnose_window(dsn, before)
    LAST_MESSAGES[:] = [f"{finding.id}: {finding.message}" for finding in result.findings]
    return {finding.id for finding in result.findings}


def over_window(dsn: str, work: Callable[[psycopg.Connection[Any]], None], autocommit: bool = True,
                flush: bool = True, **connect: Any) -> set[str]:
    """Snapshot, run `work` on one application connection, diagnose the window. `flush` makes the
    session's table counters visible at once (an eval artefact: no application runs it); without
    it the session's last statement stays the workload's own, as pg_stat_activity would show it."""
    before = take_snapshot(dsn)
    with psycopg.connect(dsn, autocommit=autocommit, **connect) as app:
        work(app)
        if flush:
            app.execute("SELECT pg_stat_force_next_flush()")
        if not autocommit:
            app.commit()
        return found_ids(dsn, before)


@contextlib.contextmanager
def background(dsn: str, body: Callable[[psycopg.Connection[Any], threading.Event], None],
               sessions: int = 1, autocommit: bool = False) -> Iterator[None]:
    """Sessions running `body` until the block ends (the event is set)."""
    stop = threading.Event()

    def target() -> None:
        with psycopg.connect(dsn, autocommit=autocommit) as conn, contextlib.suppress(psycopg.Error):
            body(conn, stop)

    threads = [threading.Thread(target=target) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def execute(sql_text: str, *params: Any) -> Callable[[psycopg.Connection[Any]], None]:
    def work(app: psycopg.Connection[Any]) -> None:
        app.execute(sql_text, params or None).fetchall()
    return work


# --- signal workloads -------------------------------------------------------------------------


@case("lookups by an unindexed isbn", "missing_index")
def _missing_index(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute("SELECT id, title, price FROM books WHERE isbn = %s",
                                                     (f"isbn-{i * 977}",)).fetchall() for i in range(30)])


@case("last event per customer, one scan per customer", "correlated_subquery")
def _correlated(dsn: str) -> set[str]:
    query = ("SELECT c.id, (SELECT max(e.created_at) FROM order_events e WHERE e.order_ref = c.id) AS last_event "
             "FROM customers c WHERE c.id <= %s ORDER BY c.id")
    return over_window(dsn, lambda app: [app.execute(query, (30,)).fetchall() for _ in range(3)])


@case("title search with a leading wildcard", "ilike_scan")
def _ilike(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute("SELECT id, title FROM books WHERE title ILIKE %s LIMIT 50",
                                                     (f"%{word}%",)).fetchall() for word in ["dragon", "ghost"] * 5])


@case("a genre's whole catalogue on every call", "unbounded_results")
def _unbounded(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute("SELECT id, title, price FROM books WHERE genre = %s",
                                                     (f"genre {1 + i % 12}",)).fetchall() for i in range(10)])


@case("deep OFFSET pages, client-side binding", "offset_pagination")
def _offset(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for page in range(1000, 1010):
            app.execute("SELECT id, title FROM books ORDER BY id LIMIT 20 OFFSET %s", (page * 20,)).fetchall()
    return over_window(dsn, work, flush=False, cursor_factory=ClientCursor)


@case("deep OFFSET pages of ordered items, server-side binding", "offset_pagination")
def _offset_bound(dsn: str) -> set[str]:
    """psycopg 3's default: the offset travels as a bound parameter, so only auto_explain's log of
    the slow calls records it (pglab's server logs calls from 100 ms; these take about 200 ms)."""
    query = ("SELECT i.id, i.qty, i.price, o.created_at FROM order_items i JOIN orders o ON o.id = i.order_id "
             "ORDER BY o.created_at DESC, i.id LIMIT 20 OFFSET %s")
    return over_window(dsn, lambda app: [app.execute(query, (150_000 + page * 20,)).fetchall() for page in range(5)])


@case("login by lower(email) beside an index on email", "non_sargable_predicate")
def _non_sargable(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute("SELECT id FROM customers WHERE lower(email) = %s",
                                                     (f"customer{i * 31}@example.com",)).fetchall()
                                         for i in range(20)])


@case("order list, then each order's items one by one", "n_plus_one")
def _n_plus_one(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for customer in range(2, 22):
            orders = app.execute("SELECT id FROM orders WHERE customer_id = %s ORDER BY created_at DESC LIMIT 20",
                                 (customer * 101,)).fetchall()
            for _ in range(3):  # three page views per customer
                for (order_id,) in orders or [(customer,)] * 5:
                    app.execute("SELECT sum(qty) FROM order_items WHERE order_id = %s", (order_id,)).fetchall()
            app.commit()
    return over_window(dsn, work, autocommit=False)


@case("a count of open orders on every page view", "count_per_request")
def _count(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for request in range(150):
            app.execute("SELECT id, title FROM books WHERE genre = %s ORDER BY published DESC LIMIT 10",
                        (f"genre {1 + request % 12}",)).fetchall()
            app.execute("SELECT count(*) FROM orders WHERE customer_id = %s AND status <> 'cancelled'",
                        (1,)).fetchall()
    return over_window(dsn, work)


@case("cheapest books first, sorted on every call", "sort_without_index")
def _sort(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute("SELECT id, title FROM books ORDER BY price, id LIMIT %s",
                                                     (20,)).fetchall() for _ in range(10)])


@case("books never ordered, NOT IN over all order items", "not_in_subquery")
def _not_in(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute(
        "SELECT id FROM books WHERE id > %s AND id NOT IN (SELECT book_id FROM order_items) LIMIT 3",
        (44_990,)).fetchall() for _ in range(3)])


@case("SELECT * of a genre page with the descriptions", "select_star_payload")
def _select_star(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute(
        "SELECT * FROM books WHERE genre = %s ORDER BY published DESC LIMIT 200", (f"genre {1 + i % 12}",)).fetchall()
        for i in range(10)])


@case("a connection per request, never closed", "pool_exhaustion")
def _pool(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        limit = int(conn.execute("SELECT current_setting('max_connections')::int - "
                                 "current_setting('superuser_reserved_connections')::int - "
                                 "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')")
                    .fetchone()[0])  # type: ignore[index]
    held = []
    try:
        for _ in range(max(limit - 3, 0)):
            held.append(psycopg.connect(dsn, autocommit=True))
        return found_ids(dsn, None)
    finally:
        for conn in held:
            conn.close()


def _stock_update(conn: psycopg.Connection[Any], stop: threading.Event) -> None:
    while not stop.is_set():
        conn.execute("UPDATE stock SET qty = qty - 1 WHERE book_id = 1")
        conn.execute("SELECT pg_sleep(0.005)")
        conn.commit()


@case("checkout queueing on one hot stock row", "no_load_shedding")
def _no_shedding(dsn: str) -> set[str]:
    first = take_snapshot(dsn)
    with background(dsn, _stock_update, sessions=1):
        time.sleep(2)
    second = take_snapshot(dsn, previous=first)
    started = time.monotonic()
    with background(dsn, _stock_update, sessions=8):
        time.sleep(max(0.0, 2 - (time.monotonic() - started)))
    return found_ids(dsn, second)


@case("export streamed inside an open transaction", "streaming_txn")
def _streaming(dsn: str) -> set[str]:
    def body(conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        conn.execute("SELECT id, title FROM books WHERE author_id = 7").fetchall()
        stop.wait()  # the client writes the export to a slow consumer
        conn.rollback()
    with background(dsn, body):
        time.sleep(3)
        return found_ids(dsn, None)


@case("an order-status poller inside one transaction", "long_poll_connection")
def _long_poll(dsn: str) -> set[str]:
    def body(conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        while not stop.is_set():
            conn.execute("SELECT status FROM orders WHERE id = 42").fetchall()
            stop.wait(0.5)
        conn.rollback()
    with background(dsn, body):
        time.sleep(7)
        return found_ids(dsn, None)


@case("a report left running, no statement_timeout", "missing_timeouts")
def _missing_timeouts(dsn: str) -> set[str]:
    def body(conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        conn.execute("SELECT pg_sleep(40)")
    with background(dsn, body, autocommit=True):
        time.sleep(31)
        found = found_ids(dsn, None)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(40)'")
        return found


@case("every order also updates its book's stock row", "write_contention")
def _contention(dsn: str) -> set[str]:
    def holder(conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        conn.execute("UPDATE stock SET qty = qty - 1 WHERE book_id = 2")
        stop.wait()
        conn.rollback()

    def waiter(conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        conn.execute("SET lock_timeout = '6s'")
        conn.execute("UPDATE stock SET qty = qty - 1 WHERE book_id = 2")
        conn.rollback()

    with background(dsn, holder):
        time.sleep(0.5)
        with background(dsn, waiter, sessions=3):
            time.sleep(2)
            return found_ids(dsn, None)


@case("a new-release notice, one INSERT per follower", "fanout_loop")
def _fanout(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for release in range(10):
            followers = app.execute("SELECT DISTINCT customer_id FROM reviews WHERE book_id = %s",
                                    (1 + release,)).fetchall()
            for (customer_id,) in followers + [(c,) for c in range(100 + 30 * release, 130 + 30 * release)]:
                app.execute("INSERT INTO notifications (customer_id, kind) VALUES (%s, 'release')", (customer_id,))
            app.commit()
    return over_window(dsn, work, autocommit=False)


@case("expire stale pending orders one UPDATE at a time", "per_row_update")
def _per_row(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for _batch in range(10):
            orders = app.execute("SELECT id FROM orders WHERE status = 'pending' ORDER BY created_at "
                                 "LIMIT 20").fetchall()
            for (order_id,) in orders:
                app.execute("UPDATE orders SET status = 'cancelled' WHERE id = %s", (order_id,))
            app.commit()
    return over_window(dsn, work, autocommit=False)


@case("retention as one DELETE of old events", "bulk_delete")
def _bulk_delete(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: app.execute(
        "DELETE FROM order_events WHERE created_at < now() - interval '100 days'"))


@case("stock reservations at SERIALIZABLE, no retry", "serializable_no_retry")
def _serializable(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        with psycopg.connect(dsn) as other:
            for conn in (app, other):
                conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
            for book in range(3, 13):
                for conn in (app, other):
                    conn.execute("SELECT qty FROM stock WHERE book_id = %s", (book,)).fetchone()
                for conn in (app, other):
                    try:
                        conn.execute("UPDATE stock SET qty = qty - 1 WHERE book_id = %s", (book,))
                        conn.commit()
                    except psycopg.errors.SerializationFailure:
                        conn.rollback()
    return over_window(dsn, work, autocommit=False)


@case("reviews written under a duplicate index", "write_amplification")
def _write_amp(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX reviews_book_id_rating_idx ON reviews (book_id, rating)")
        conn.execute("CREATE INDEX reviews_book_id_dup_idx ON reviews (book_id)")

    def work(app: psycopg.Connection[Any]) -> None:
        with app.cursor() as cursor:
            cursor.executemany("INSERT INTO reviews (book_id, customer_id, rating, created_at) "
                               "VALUES (%s, %s, 5, now())", [(1 + i % 50000, 1 + i % 50000) for i in range(1500)])
    return over_window(dsn, work)


@case("order items with no index on book_id", "missing_fk_index")
def _missing_fk(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX order_items_book_id_idx")
    return over_window(dsn, execute("SELECT count(*) FROM order_items WHERE order_id = %s", 5))


# --- clean workloads --------------------------------------------------------------------------


@case("clean: indexed lookups, keyset pages and joins", None)
def _clean_lookups(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for i in range(40):
            app.execute("SELECT id, email FROM customers WHERE email = %s",
                        (f"Customer{i * 17}@example.com",)).fetchall()
            app.execute("SELECT id, title FROM books WHERE genre = %s AND published > %s ORDER BY published LIMIT 20",
                        (f"genre {1 + i % 12}", "2010-01-01")).fetchall()
            app.execute("SELECT o.id, i.book_id, i.qty FROM orders o JOIN order_items i ON i.order_id = o.id "
                        "WHERE o.id = %s", (i * 101,)).fetchall()
    return over_window(dsn, work)


@case("clean: an order and its items in one INSERT ... SELECT (foreign-key checks)", None)
def _clean_batch_insert(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for batch in range(3):
            app.execute("INSERT INTO order_items (order_id, book_id, qty, price) SELECT 1 + i %% 5000, "
                        "1 + (i * 7) %% 40000, 1, 9.5 FROM generate_series(1, 1500) i WHERE %s >= 0", (batch,))
            app.commit()
    return over_window(dsn, work, autocommit=False)


@case("clean: read-only SERIALIZABLE reports ended with ROLLBACK", None)
def _clean_serializable(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        app.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        for customer in range(2, 42):
            app.execute("SELECT count(*), max(created_at) FROM orders WHERE customer_id = %s", (customer,)).fetchone()
            app.rollback()
    return over_window(dsn, work, autocommit=False)


@case("clean: independent lookups beside a list query", None)
def _clean_independent(dsn: str) -> set[str]:
    before = take_snapshot(dsn)

    def lister() -> None:
        with psycopg.connect(dsn, autocommit=True) as app:
            for _ in range(10):
                app.execute("SELECT id, title FROM books WHERE genre = 'genre 3' ORDER BY published DESC LIMIT 20")

    def looker() -> None:
        with psycopg.connect(dsn, autocommit=True) as app:
            for i in range(200):
                app.execute("SELECT qty FROM stock WHERE book_id = %s", (i + 1,)).fetchall()

    threads = [threading.Thread(target=lister), threading.Thread(target=looker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
    return found_ids(dsn, before)


@case("clean: a rare heavy analytical query", None)
def _clean_report(dsn: str) -> set[str]:
    return over_window(dsn, execute(
        "SELECT b.genre, sum(i.qty * i.price) FROM order_items i JOIN books b ON b.id = i.book_id GROUP BY b.genre"))


@case("clean: pending orders served by a partial index", None)
def _clean_partial(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute(
        "SELECT id, customer_id FROM orders WHERE status = %s ORDER BY created_at LIMIT 20", ("pending",)).fetchall()
        for _ in range(30)])


@case("clean: retention in small batches on an indexed column", None)
def _clean_batches(dsn: str) -> set[str]:
    def work(app: psycopg.Connection[Any]) -> None:
        for _ in range(5):
            app.execute("DELETE FROM order_events WHERE id IN (SELECT id FROM order_events WHERE created_at < "
                        "now() - interval '200 days' ORDER BY created_at LIMIT 1000)")
    return over_window(dsn, work)


@case("clean: a 300-row genre table read over and over", None)
def _clean_small(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute("SELECT id FROM genres WHERE name = %s",
                                                     (f"genre {i}",)).fetchall() for i in range(100)])


@case("clean: the busiest customer's recent orders through an index", None)
def _clean_busiest(dsn: str) -> set[str]:
    return over_window(dsn, lambda app: [app.execute(
        "SELECT id, status FROM orders WHERE customer_id = %s ORDER BY id DESC LIMIT 20", (c,)).fetchall()
        for c in range(1, 40)])


# --- the run ----------------------------------------------------------------------------------


def prepare_template(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname=name), autocommit=True) as conn:
        conn.execute(SCHEMA)
        for statement in SEED:
            conn.execute(statement)


@contextlib.contextmanager
def case_database(dsn: str, template: str, name: str) -> Iterator[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    try:
        yield psycopg.conninfo.make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def evaluate(dsn: str, selected: list[str]) -> int:
    template = "pglab_eval_bookshop"
    started = time.perf_counter()
    prepare_template(dsn, template)
    print(f"seeded the bookshop template in {time.perf_counter() - started:.1f} s")
    hits = signals = false = clean = 0
    for number, entry in enumerate(CASES):
        if selected and not any(word in entry.name or word == entry.expected for word in selected):
            continue
        began = time.perf_counter()
        with case_database(dsn, template, f"pglab_eval_{number}") as case_dsn:
            found = entry.run(case_dsn)
        seconds = time.perf_counter() - began
        if entry.expected:
            signals += 1
            hit = entry.expected in found
            hits += hit
            extra = sorted(found - {entry.expected})
            print(f"{'found ' if hit else 'MISSED'} {entry.expected:24} {entry.name} ({seconds:.1f} s)"
                  + (f"; also: {', '.join(extra)}" if extra else ""))
        else:
            clean += 1
            false += len(found)
            print(f"{'clean ' if not found else 'FALSE '} {'-':24} {entry.name} ({seconds:.1f} s)"
                  + (f"; found: {', '.join(sorted(found))}" if found else ""))
            for message in LAST_MESSAGES if found else ():
                print(f"         {message[:220]}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(template)))
    print(f"\nrecall: {hits}/{signals} signals found; false findings on clean workloads: {false} "
          f"(over {clean} clean workloads); {time.perf_counter() - started:.0f} s in all")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a server with pg_stat_statements preloaded (default: pglab's embedded one)")
    parser.add_argument("cases", nargs="*", help="words of case names, or expected ids, to run only those")
    args = parser.parse_args()
    if args.dsn:
        return evaluate(args.dsn, args.cases)
    with EmbeddedPostgres() as server:
        return evaluate(server.dsn(), args.cases)


if __name__ == "__main__":
    raise SystemExit(main())
