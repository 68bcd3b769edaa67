"""The bookshop `tests/bench/diagnose_eval.py` evaluates `pglab diagnose` on: its schema and seed,
and the harness its workloads are written with (snapshot, run, diagnose the window; sessions in
the background; a registry of cases, each with the id it should trip or None for a clean one).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

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


def registry(cases: list[Case]) -> Callable[[str, str | None], Callable[[Callable[[str], set[str]]],
                                                                        Callable[[str], set[str]]]]:
    """A `@case(name, expected)` decorator that appends each workload it decorates to `cases`."""
    def case(name: str, expected: str | None) -> Callable[[Callable[[str], set[str]]], Callable[[str], set[str]]]:
        def register(run: Callable[[str], set[str]]) -> Callable[[str], set[str]]:
            cases.append(Case(name, expected, run))
            return run
        return register
    return case


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

