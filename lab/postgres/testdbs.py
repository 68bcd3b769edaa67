"""Databases for tests: one server per session, a template seeded once, a fresh clone per test.

The server is pglab's embedded one unless `PGLAB_TEST_DSN` names an existing server. Cloning uses
pytest-postgresql's `DatabaseJanitor` (its no-process route: it creates and drops databases on a
server somebody else runs), so a test gets a private database in milliseconds instead of
re-running its schema set-up.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pglab.lab.postgres.launcher import EmbeddedPostgres

TEST_DSN_VARIABLE = "PGLAB_TEST_DSN"
_names = itertools.count()


@dataclass
class TestServer:
    """Where the test databases live. `embedded` is set when pglab started the server itself."""

    __test__ = False  # not a pytest test class
    dsn: str
    embedded: EmbeddedPostgres | None

    @property
    def params(self) -> dict[str, Any]:
        return conninfo_to_dict(self.dsn)

    def dsn_for(self, dbname: str) -> str:
        return make_conninfo(self.dsn, dbname=dbname)

    @property
    def version_num(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        return int(row[0]) if row else 0


@contextmanager
def open_test_server() -> Iterator[TestServer]:
    dsn = os.environ.get(TEST_DSN_VARIABLE)
    if dsn:
        yield TestServer(dsn=dsn, embedded=None)
        return
    with EmbeddedPostgres() as server:
        yield TestServer(dsn=server.dsn(), embedded=server)


def unique_name(prefix: str) -> str:
    """Database names that two suites sharing one server (two CI passes, two developers) never reuse."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


def _janitor(server: TestServer, dbname: str, template: str | None = None, as_template: bool = False) -> Any:
    from pytest_postgresql.janitor import DatabaseJanitor  # test extra: imported only when used

    params = server.params
    return DatabaseJanitor(
        user=params.get("user", "postgres"),
        host=params.get("host", "127.0.0.1"),
        port=params.get("port", 5432),
        password=params.get("password"),
        dbname=dbname,
        template_dbname=template,
        maintenance_dbname=params.get("dbname", "postgres"),
        as_template=as_template,
    )


@contextmanager
def template_database(server: TestServer, seed: Callable[[str], None] | None = None) -> Iterator[str]:
    """A template database, seeded once by `seed(dsn)`, dropped at the end."""
    name = unique_name("pglab_tmpl")
    with _janitor(server, name, as_template=True):
        if seed is not None:
            seed(server.dsn_for(name))
        yield name


@contextmanager
def cloned_database(server: TestServer, template: str) -> Iterator[str]:
    """A fresh database cloned from `template`; yields its DSN and drops it afterwards."""
    name = unique_name("pglab_test")
    with _janitor(server, name, template=template):
        yield server.dsn_for(name)
