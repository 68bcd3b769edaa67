"""The inner test suite the plugin's checks are shown on: a real suite, run with pytester against
the live test server, whose statements go through psycopg to Postgres. Shared by the
`test_plugin_*` files that exercise one family of checks each."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from pglab.lab.postgres.testdbs import TestServer

Run = Callable[..., pytest.RunResult]

TABLES = '''
import asyncio
import time

import psycopg
import pytest


def authors_and_books(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("CREATE TABLE books (id int PRIMARY KEY, author_id int NOT NULL, title text NOT NULL)")
        conn.execute("INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 20) g")
        conn.execute("INSERT INTO books SELECT g, g % 20 + 1, 'book ' || g FROM generate_series(1, 40) g")
'''


def inner_suite(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch,
                header: str = TABLES, *always: str) -> Run:
    """Run an inner suite with the plugin on, its databases on this suite's server: each body goes
    after `header`, and `always` (e.g. a report file) goes to every run."""
    monkeypatch.setenv("PGLAB_TEST_DSN", pg_server.dsn)

    def run(body: str, *args: str, subprocess: bool = False) -> pytest.RunResult:
        (pytester.path / "test_inner.py").write_text(header + textwrap.dedent(body), encoding="utf-8")
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner("--pglab", "-p", "no:cacheprovider", *always, *args)

    return run


def marked_line(body: str, marker: str, header: str = TABLES) -> int:
    """The line of the inner test file that ends with `# marker`."""
    lines = (header + textwrap.dedent(body)).splitlines()
    return next(number for number, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))
