"""Session server, template database and per-test clones, shared by the whole suite.

Set PGLAB_TEST_DSN to run the suite against an existing server instead of pglab's embedded one.
While the session server is open, SIGTERM interrupts the session like Ctrl-C (see
`open_test_server`), so the fixtures' teardown drops the test databases.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pglab.lab.postgres.testdbs import (
    TEST_DSN_VARIABLE,
    TestServer,
    cloned_database,
    open_test_server,
    template_database,
)


def embedded_only(reason: str = "exercises pglab's own embedded server") -> pytest.MarkDecorator:
    """Tests of the launcher run once, in the embedded pass, whatever PGLAB_TEST_DSN says."""
    return pytest.mark.skipif(bool(os.environ.get(TEST_DSN_VARIABLE)), reason=f"{reason}; embedded pass only")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    with open_test_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_template(pg_server: TestServer) -> Iterator[str]:
    with template_database(pg_server) as name:
        yield name


@pytest.fixture
def pg_dsn(pg_server: TestServer, pg_template: str) -> Iterator[str]:
    """A fresh database of its own for one test."""
    with cloned_database(pg_server, pg_template) as dsn:
        yield dsn


@pytest.fixture
def pg_conn(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as the working directory, with the cache kept inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PGLAB_CACHE_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    return tmp_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `load` (long load runs) are opt-in: `pytest -m load` runs them."""
    if "load" in (config.getoption("markexpr") or ""):
        return
    opt_in = pytest.mark.skip(reason="a long load run: opt in with `pytest -m load`")
    for item in items:
        if "load" in item.keywords:
            item.add_marker(opt_in)
