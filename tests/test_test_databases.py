"""The test infrastructure itself: each test gets a private clone of the template."""

from __future__ import annotations

import psycopg

from pglab.lab.postgres.testdbs import TestServer, cloned_database


def test_clone_is_private_and_dropped(pg_server: TestServer, pg_template: str, pg_conn: psycopg.Connection) -> None:
    pg_conn.execute("CREATE TABLE scratch (id int)")
    with cloned_database(pg_server, pg_template) as other_dsn, psycopg.connect(other_dsn) as other:
        found = other.execute("SELECT to_regclass('scratch') IS NOT NULL").fetchone()
        assert found == (False,), "a clone must not see another test's tables"
        name = other.info.dbname
    with psycopg.connect(pg_server.dsn) as admin:
        left = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert left == (0,), "the clone must be dropped after use"


def test_server_answers_with_a_supported_version(pg_server: TestServer) -> None:
    assert pg_server.version_num >= 150000
