"""The bookshop's signal workloads: each should make `pglab diagnose` report its catalogue id."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from bookshop import Case, background, execute, found_ids, over_window, registry
from psycopg import ClientCursor

from pglab.lab.runtime.diagnose import take_snapshot

CASES: list[Case] = []
case = registry(CASES)

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

