"""Benchmark: what the pytest plugin costs a query-heavy suite.

    python tests/bench/plugin_overhead.py [ROUNDS] [--tests N] [--lookups N] [--small]

Writes a suite of N tests, each sending a few hundred statements through psycopg (point lookups,
inserts and updates in a transaction with savepoints, an async connection), or with `--small` a
suite of N (default 200) small tests of a handful of statements each, the shape of most real
suites, where the plugin's per-test costs (checks, plan reads) weigh most; and runs it three
ways: plugin inactive, `--pglab --pglab-plans off`, and `--pglab` with plan checks on. Modes are
interleaved round by round and medians are reported, since the machine this runs on is shared.

1. Steady state, the figure the < 1.2x target is about: the suite runs in this process (pytest.main)
   after one warm-up run, and the median test call is compared. A test's call includes the
   plugin's checks, which run inside it.
2. Whole runs: each mode as its own `python -m pytest` process, wall and CPU time, which adds the
   plugin's one-time costs (importing pglast, the catalogue and the detectors when enabled).
3. The capture alone: one statement sent with no test recording and while one records.

The databases live on pglab's embedded server, or on `PGLAB_TEST_DSN` when it is set.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pglab.lab.postgres.testdbs import open_test_server

CONFTEST = '''
import psycopg
import pytest


@pytest.fixture(scope="session")
def pglab_seed():
    def seed(dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance int NOT NULL)")
            conn.execute("INSERT INTO accounts SELECT g, 'account ' || g, 100 FROM generate_series(1, 2000) g")
            conn.execute("CREATE TABLE transfers (id bigserial PRIMARY KEY, account_id int NOT NULL, amount int)")
    return seed
'''

SUITE = '''
import asyncio

import psycopg
import pytest

# every check runs; the findings this deliberately repetitive suite earns are accepted
pytestmark = pytest.mark.pglab(allow=["n_plus_one", "fanout_loop", "per_row_update", "streaming_txn"])
LOOKUPS = {lookups}


@pytest.mark.parametrize("round_", range({tests}))
def test_query_heavy(pglab_db, round_):
    with psycopg.connect(pglab_db) as conn:
        for account_id in range(1, LOOKUPS + 1):
            conn.execute("SELECT name, balance FROM accounts WHERE id = %s", (account_id,)).fetchone()
        with conn.transaction():
            for account_id in range(1, LOOKUPS // 10 + 1):
                with conn.transaction():
                    conn.execute("INSERT INTO transfers (account_id, amount) VALUES (%s, 1)", (account_id,))
                    conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (account_id,))
        conn.execute("SELECT count(*) FROM transfers WHERE account_id = %s", (1,)).fetchone()

    async def reads():
        async with await psycopg.AsyncConnection.connect(pglab_db, autocommit=True) as aconn:
            for account_id in range(1, LOOKUPS // 10 + 1):
                await aconn.execute("SELECT balance FROM accounts WHERE id = %s", (account_id,))

    asyncio.run(reads())
'''

SMALL_SUITE = '''
import psycopg
import pytest


@pytest.mark.parametrize("round_", range({tests}))
def test_small(pglab_db, round_):
    with psycopg.connect(pglab_db) as conn:
        conn.execute("SELECT name, balance FROM accounts WHERE id = %s", (round_ % 2000 + 1,)).fetchone()
        conn.execute("INSERT INTO transfers (account_id, amount) VALUES (%s, 1)", (round_ % 2000 + 1,))
        conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (round_ % 2000 + 1,))
        conn.execute("SELECT count(*) FROM transfers WHERE account_id = %s", (round_ % 2000 + 1,)).fetchone()
'''

MODES = {
    "plugin inactive": [],
    "--pglab, plans off": ["--pglab", "--pglab-plans", "off"],
    "--pglab, plans on": ["--pglab"],
}


@dataclass
class Run:
    wall: float  # the whole pytest process: start-up, cloning, calls, teardown
    cpu: float  # CPU seconds of the pytest process


def run_suite(directory: Path, dsn: str, flags: list[str]) -> Run:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=directory, env={**os.environ, "PGLAB_TEST_DSN": dsn},
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"the benchmark suite failed with {' '.join(flags) or 'no flags'}:\n{done.stdout[-3000:]}")
    return Run(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def capture_cost(dsn: str, statements: int = 500, rounds: int = 41) -> tuple[float, float]:
    """Median microseconds per `SELECT $1` round trip without and with a recorder listening, over
    many short interleaved rounds (short, so a burst of other work lands on both alike)."""
    import psycopg

    from pglab.lab.plugin import capture

    capture.install()
    plain: list[float] = []
    recorded: list[float] = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(rounds):
                for recorder, sink in ((None, plain), (capture.Recorder(), recorded)):
                    capture.activate(recorder)
                    began = time.perf_counter()
                    for number in range(statements):
                        conn.execute("SELECT %s::int", (number,))
                    sink.append((time.perf_counter() - began) / statements * 1e6)
                    capture.activate(None)
    finally:
        capture.uninstall()
    return statistics.median(plain), statistics.median(recorded)


class CallTimes:
    """A pytest plugin that keeps every test's call duration."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call":
            self.calls.append(report.duration)


def steady_state(directory: Path, rounds: int) -> dict[str, float]:
    """Median test call per mode, the suite run in this process after a warm-up run."""
    import pytest

    calls: dict[str, list[float]] = {mode: [] for mode in MODES}
    base = ["-q", "-p", "no:cacheprovider", "--rootdir", str(directory), str(directory)]
    for number in range(rounds + 1):
        for mode, flags in MODES.items():
            times = CallTimes()
            with contextlib.redirect_stdout(io.StringIO()):
                code = pytest.main([*base, *flags], plugins=[times])
            if code != 0:
                sys.exit(f"the benchmark suite failed in this process with {' '.join(flags) or 'no flags'}")
            if number:  # round 0 warms up: imports, caches, first connections
                calls[mode] += times.calls
    return {mode: statistics.median(values) for mode, values in calls.items()}


def ratios(figures: dict[str, float]) -> str:
    base = figures["plugin inactive"]
    return "; ".join(f"{mode} {value * 1000:.1f} ms ({value / base:.2f}x)" for mode, value in figures.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=3)
    parser.add_argument("--tests", type=int, default=None, help="tests in the suite (30, or 200 with --small)")
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--small", action="store_true", help="many small tests instead of a few query-heavy ones")
    options = parser.parse_args()
    options.tests = options.tests or (200 if options.small else 30)
    with tempfile.TemporaryDirectory(prefix="pglab-bench-") as folder, open_test_server() as server:
        directory = Path(folder)
        (directory / "conftest.py").write_text(textwrap.dedent(CONFTEST))
        if options.small:
            (directory / "test_small.py").write_text(SMALL_SUITE.format(tests=options.tests))
            per_test = 4
        else:
            (directory / "test_heavy.py").write_text(SUITE.format(tests=options.tests, lookups=options.lookups))
            per_test = options.lookups + 3 * (options.lookups // 10) + 1
        print(f"{options.tests} tests x ~{per_test} statements each, {options.rounds} rounds, "
              f"server {'embedded' if server.embedded else 'PGLAB_TEST_DSN'}")
        os.environ["PGLAB_TEST_DSN"] = server.dsn
        print("1. steady state, median test call: " + ratios(steady_state(directory, options.rounds)))
        runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
        for _ in range(options.rounds):
            for mode, flags in MODES.items():
                runs[mode].append(run_suite(directory, server.dsn, flags))
        print("2. whole pytest process, median wall: "
              + ratios({mode: statistics.median(run.wall for run in done) for mode, done in runs.items()}))
        print("   whole pytest process, median CPU: "
              + ratios({mode: statistics.median(run.cpu for run in done) for mode, done in runs.items()}))
        plain, recorded = capture_cost(server.dsn)
    print(f"3. capture alone: {plain:.1f} us per statement unrecorded, {recorded:.1f} us recorded "
          f"({recorded / plain:.2f}x, +{recorded - plain:.1f} us per statement)")


if __name__ == "__main__":
    main()
