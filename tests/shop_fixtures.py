"""The shop databases of the `test_diagnose_workloads*` files, a pytest plugin they load with
`pytest_plugins = ["shop_fixtures"]`: each file seeds the template once and gives every test a
fresh clone of it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from shop_workload import seed
from test_detectors_support import statements_available

from pglab.lab.postgres.testdbs import TestServer, cloned_database, template_database


def _seed_template(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed(conn)
        if statements_available(dsn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


@pytest.fixture(scope="module")
def shop_template(pg_server: TestServer) -> Iterator[str]:
    """The logistics data, seeded once per module; each test gets a clone."""
    with template_database(pg_server, _seed_template) as name:
        yield name


@pytest.fixture
def shop_plans(pg_server: TestServer, shop_template: str) -> Iterator[str]:
    """A fresh clone, for plan rules alone: no pg_stat_statements needed (PostgreSQL 15 too)."""
    with cloned_database(pg_server, shop_template) as dsn:
        yield dsn


@pytest.fixture
def shop(shop_plans: str) -> str:
    """A fresh clone with pg_stat_statements; skipped where the server does not preload it."""
    if not statements_available(shop_plans):
        pytest.skip("this server does not preload pg_stat_statements (the PostgreSQL 15 pass)")
    return shop_plans
