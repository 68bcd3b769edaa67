"""The plugin's fixtures: a fresh database per test cloned from a seeded template (`pglab_db`),
what the test sent (`pglab_queries`), and assertions over a block of it (`pglab`). Importing this
module imports nothing but pytest; the rest loads when a fixture runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pglab.lab.plugin.capture import Recorder
    from pglab.lab.plugin.pytest_plugin import PglabSession
    from pglab.lab.plugin.records import Statement, Transaction
    from pglab.lab.postgres.testdbs import TestServer

DB_KEY = pytest.StashKey[str]()
RECORDER_KEY = pytest.StashKey["Recorder"]()
SESSION_KEY = pytest.StashKey["PglabSession"]()


def recorder_of(item: pytest.Item) -> Recorder:
    from pglab.lab.plugin.capture import Recorder

    return item.stash.setdefault(RECORDER_KEY, Recorder())


def _enabled_session(request: pytest.FixtureRequest) -> PglabSession:
    session = request.config.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.fail("the pglab plugin is not enabled: run pytest with --pglab or set `pglab = true` in the ini file",
                    pytrace=False)
    return session


class QueryLog:
    """The statements the current test sent so far (live: it grows as the test runs), from the
    `start`-th on. Iterating gives the counted ones: psycopg's BEGIN/COMMIT/SAVEPOINT and SET are
    left out."""

    def __init__(self, recorder: Recorder, start: int = 0) -> None:
        self._recorder = recorder
        self._start = start

    @property
    def all(self) -> list[Statement]:
        return self._recorder.since(self._start)

    @property
    def counted(self) -> list[Statement]:
        from pglab.lab.plugin.shapes import counted

        return [s for s in self.all if counted(s)]

    def of_class(self, statement_class: str) -> list[Statement]:
        """Counted statements of one class: "select", "write" or "other" (DDL, SHOW...)."""
        from pglab.lab.plugin.shapes import shape_of

        return [s for s in self.counted if shape_of(s.sql, s.has_params).statement_class == statement_class]

    @property
    def selects(self) -> list[Statement]:
        return self.of_class("select")

    @property
    def writes(self) -> list[Statement]:
        return self.of_class("write")

    def matching(self, fragment: str) -> list[Statement]:
        return [s for s in self.counted if fragment.lower() in s.sql.lower()]

    @property
    def transactions(self) -> list[Transaction]:
        """Transactions finished so far (all of them once the test is over)."""
        return list(self._recorder.transactions)

    def __len__(self) -> int:
        return len(self.counted)

    def __iter__(self) -> Iterator[Statement]:
        return iter(self.counted)

    def __getitem__(self, index: int) -> Statement:
        return self.counted[index]


class Pglab:
    """The `pglab` fixture: assertions over the statements a block of the test sends."""

    def __init__(self, recorder: Recorder) -> None:
        self.queries = QueryLog(recorder)
        self._recorder = recorder

    @contextmanager
    def assert_max_queries(self, limit: int, statement_class: str | None = None) -> Iterator[QueryLog]:
        """Fail when the block sends more than `limit` counted statements (of `statement_class`,
        "select" or "write", when given). Yields the log of the block's statements."""
        from pglab.lab.core.sql import short

        block = QueryLog(self._recorder, start=len(self._recorder.statements))
        yield block
        sent = block.of_class(statement_class) if statement_class else block.counted
        if len(sent) > limit:
            label = f"{statement_class} statements" if statement_class else "statements"
            listing = "\n".join(f"  {s.call_site}  {short(s.sql, 120)}" for s in sent[:20])
            raise AssertionError(f"expected at most {limit} {label}, the block sent {len(sent)}:\n{listing}")

    def no_queries(self, statement_class: str | None = None) -> Any:
        """Fail when the block sends any counted statement (a cache hit must not reach the database)."""
        return self.assert_max_queries(0, statement_class)


@pytest.fixture
def pglab(request: pytest.FixtureRequest) -> Pglab:
    """`pglab.assert_max_queries(n)`, `pglab.no_queries()`, `pglab.queries`."""
    _enabled_session(request)
    return Pglab(recorder_of(request.node))


@pytest.fixture
def pglab_queries(request: pytest.FixtureRequest) -> QueryLog:
    """The statements the test sends through psycopg, for custom assertions."""
    _enabled_session(request)
    return QueryLog(recorder_of(request.node))


@pytest.fixture(scope="session")
def pglab_server() -> Iterator[TestServer]:
    """pglab's embedded PostgreSQL, or the server `PGLAB_TEST_DSN` names."""
    from pglab.lab.postgres.testdbs import open_test_server

    with open_test_server() as server:
        yield server


@pytest.fixture(scope="session")
def pglab_seed() -> Callable[[str], None] | None:
    """Override in a conftest to seed the template once per session: return a function that
    receives the template's DSN (create the schema, load reference data)."""
    return None


@pytest.fixture(scope="session")
def pglab_template(request: pytest.FixtureRequest, pglab_server: TestServer,
                   pglab_seed: Callable[[str], None] | None) -> Iterator[str]:
    from pglab.lab.postgres.testdbs import template_database

    session = request.config.stash.get(SESSION_KEY, None)

    def seed(dsn: str) -> None:
        if session is not None and session.server_capture:
            from pglab.lab.plugin.serverside import enable

            enable(dsn, session.results.notes)
        if pglab_seed is not None:
            pglab_seed(dsn)
            _analyze(dsn)

    with template_database(pglab_server, seed) as name:
        yield name


def _analyze(dsn: str) -> None:
    """Planner statistics for the seeded data, gathered once in the template: every clone starts
    with them, so the plan checks plan as production would without analysing per test."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")


@pytest.fixture
def pglab_db(request: pytest.FixtureRequest, pglab_server: TestServer, pglab_template: str) -> Iterator[str]:
    """The DSN of a fresh database for this test, cloned from the session's template."""
    from pglab.lab.postgres.testdbs import cloned_database

    with cloned_database(pglab_server, pglab_template) as dsn:
        request.node.stash[DB_KEY] = dsn
        yield dsn
