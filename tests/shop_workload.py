"""The logistics workload `pglab diagnose` is tried on (issue 11): a small, skewed shop database
(customers, orders, shipments), and how a test judges what diagnose says about a piece of work.
One customer owns a large share of the orders, and most shipments are delivered while few are in
transit. Its databases are the fixtures of `shop_fixtures`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from pglab.lab.runtime.diagnose import run_detectors, take_snapshot

SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, region text, vip boolean NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
                     amount numeric NOT NULL, created_at timestamptz NOT NULL);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE TABLE shipments (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, status text NOT NULL,
                        carrier text, created_at timestamptz NOT NULL);
CREATE INDEX shipments_order_id_idx ON shipments (order_id);
CREATE INDEX shipments_in_transit_idx ON shipments (created_at) WHERE status = 'in_transit';
CREATE INDEX shipments_carrier_idx ON shipments (carrier);
"""


def seed(conn: psycopg.Connection[Any], customers: int = 20_000, orders: int = 60_000) -> None:
    """Customer 1 owns a third of the orders; 2 % of shipments are in transit."""
    conn.execute(SCHEMA)
    conn.execute(f"INSERT INTO customers SELECT i, 'customer ' || i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'r' || i % 9 "
                 f"END, i % 20 = 0 FROM generate_series(1, {customers}) i")
    conn.execute(f"INSERT INTO orders SELECT i, CASE WHEN i % 3 = 0 THEN 1 ELSE 2 + i % {customers - 1} END, "
                 f"(i % 97) + 0.5, now() - i * interval '1 minute' FROM generate_series(1, {orders}) i")
    conn.execute(f"INSERT INTO shipments SELECT i, i, CASE WHEN i % 50 = 0 THEN 'in_transit' ELSE 'delivered' END, "
                 f"CASE WHEN i % 4 = 0 THEN NULL ELSE 'carrier ' || i % 5 END, now() - i * interval '1 minute' "
                 f"FROM generate_series(1, {orders}) i")
    conn.execute("ANALYZE")


def judged(dsn: str, work: Callable[[], None], **kwargs: Any) -> tuple[list[Any], list[str]]:
    before = take_snapshot(dsn)
    work()
    return run_detectors(dsn, before, **kwargs)


def about(findings: list[Any], fragment: str) -> list[Any]:
    """Findings whose statement contains `fragment`."""
    return [f for f in findings if fragment in (f.source or "")]
