"""Databases for tests: one server per session, a template seeded once, a fresh clone per test.

The server is pglab's embedded one unless `PGLAB_TEST_DSN` names an existing server. Cloning uses
pytest-postgresql's `DatabaseJanitor` (its no-process route: it creates and drops databases on a
server somebody else runs), so a test gets a private database in milliseconds instead of
re-running its schema set-up.

A session killed with SIGKILL drops nothing, and a template database cannot even be dropped until
it is un-templated. So every name carries its owner: `<prefix>_<host>_<pid>_<start>_<n>` (host: a
short hash of this machine, since a shared server serves many; pid and start time: see
`pglab.lab.postgres.leftovers`), and each session on an existing server first drops the test and
template databases of dead sessions of this machine.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pglab.lab.postgres.launcher import EmbeddedPostgres
from pglab.lab.postgres.leftovers import owner_alive, owner_tag, terminate_as_interrupt

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
    """The session's server. While it is open, SIGTERM interrupts the session like Ctrl-C, so
    fixtures tear down and drop their databases instead of leaving them on a shared server."""
    with terminate_as_interrupt():
        dsn = os.environ.get(TEST_DSN_VARIABLE)
        if dsn:
            drop_dead_sessions_databases(dsn)
            yield TestServer(dsn=dsn, embedded=None)
            return
        with EmbeddedPostgres() as server:
            yield TestServer(dsn=server.dsn(), embedded=server)


def _host_tag() -> str:
    """Six hex digits naming this machine (host name and boot), so that a sweep on a shared
    server never judges another machine's pids."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()}:{boot}".encode()).hexdigest()[:6]


def unique_name(prefix: str) -> str:
    """Database names that two suites sharing one server (two CI passes, two developers) never
    reuse, and that tell a later session whether their owner is still alive."""
    return f"{prefix}_{_host_tag()}_{owner_tag().replace('-', '_')}_{next(_names)}"


OWNED_NAME = re.compile(r"^pglab_[a-z]+_(?P<host>[0-9a-f]{6})_(?P<pid>\d+)_(?P<start>\d+)_\d+$")


def drop_dead_sessions_databases(dsn: str) -> list[str]:
    """Drop the databases this machine's dead test sessions left (un-templating them first)."""
    host = _host_tag()
    with psycopg.connect(dsn, autocommit=True, application_name="pglab tests: sweep") as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'pglab\\_%'")]
        dead = [name for name in names if _dead_here(name, host)]
        return [name for name in dead if _drop(conn, name)]


def _drop(conn: psycopg.Connection[Any], name: str) -> bool:
    try:
        conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error:
        return False  # not ours to drop after all (privileges), or a concurrent sweep won
    return True


def _dead_here(name: str, host: str) -> bool:
    found = OWNED_NAME.match(name)
    if found is None or found["host"] != host:
        return False
    return not owner_alive(int(found["pid"]), int(found["start"]))


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
