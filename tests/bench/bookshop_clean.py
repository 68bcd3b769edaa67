"""The bookshop's clean workloads: near misses of the signals, on which any finding is false."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from bookshop import Case, execute, found_ids, over_window, registry

from pglab.lab.runtime.diagnose import take_snapshot

CASES: list[Case] = []
case = registry(CASES)

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

