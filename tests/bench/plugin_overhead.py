"""Benchmark: what the pytest plugin costs a query-heavy suite.

    python tests/bench/plugin_overhead.py [ROUNDS] [--tests N] [--lookups N]

Writes a suite of N tests, each sending a few hundred statements through psycopg (point lookups,
inserts, a transaction with savepoints, an async connection), and runs it with pytest three ways:
plugin inactive, `--pglab --pglab-plans off`, and `--pglab` with plan checks on. It times the
test calls only (junit `call` durations, which include the plugin's per-test checks, since they
run inside the call), so pytest start-up and database cloning, which are the same in every mode,
do not dilute the ratio. Modes are interleaved per round; the fastest and the median round are
reported (on a shared machine the fastest is the one least disturbed by other work), with the CPU
time of the pytest process, which other load disturbs less than wall time.

A second part times the capture alone, in this process: the same statement sent with no test
recording and while one records, interleaved, giving the plugin's cost per statement.

The databases live on pglab's embedded server, or on `PGLAB_TEST_DSN` when it is set.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from pglab.lab.testing import open_test_server

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

MODES = {
    "plugin inactive": [],
    "--pglab, plans off": ["--pglab", "--pglab-plans", "off"],
    "--pglab, plans on": ["--pglab"],
}


def call_seconds(junit: Path) -> float:
    tree = ElementTree.parse(junit)
    return sum(float(case.get("time", 0)) for case in tree.iter("testcase"))


def run_suite(directory: Path, dsn: str, flags: list[str]) -> tuple[float, float]:
    """(seconds of test calls, CPU seconds of the whole pytest process)."""
    junit = directory / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
               "-o", "junit_duration_report=call", *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, cwd=directory, env={**os.environ, "PGLAB_TEST_DSN": dsn},
                          capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"the benchmark suite failed with {' '.join(flags) or 'no flags'}:\n{done.stdout[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return call_seconds(junit), cpu


def capture_cost(dsn: str, statements: int = 2000, rounds: int = 15) -> tuple[float, float]:
    """Microseconds per `SELECT $1` round trip without and with a recorder listening (the fastest
    of interleaved rounds, the one other processes disturbed least)."""
    import psycopg

    from pglab.lab import capture

    capture.install()
    plain, recorded = [], []
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
    return min(plain), min(recorded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=3)
    parser.add_argument("--tests", type=int, default=30)
    parser.add_argument("--lookups", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pglab-bench-") as folder, open_test_server() as server:
        directory = Path(folder)
        (directory / "conftest.py").write_text(textwrap.dedent(CONFTEST))
        (directory / "test_heavy.py").write_text(SUITE.format(tests=options.tests, lookups=options.lookups))
        per_test = options.lookups + 2 * (options.lookups // 10) + 1 + options.lookups // 10
        print(f"{options.tests} tests x ~{per_test} statements each, {options.rounds} rounds, "
              f"server {'embedded' if server.embedded else 'PGLAB_TEST_DSN'}")
        timings: dict[str, list[float]] = {mode: [] for mode in MODES}
        cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
        for number in range(options.rounds):
            for mode, flags in MODES.items():
                calls, seconds = run_suite(directory, server.dsn, flags)
                timings[mode].append(calls)
                cpu[mode].append(seconds)
            print(f"round {number + 1}: " + ", ".join(f"{mode} {timings[mode][-1]:.2f} s" for mode in MODES))
        plain, recorded = capture_cost(server.dsn)
    fastest, median, cpu_median = (min(timings["plugin inactive"]), statistics.median(timings["plugin inactive"]),
                                   statistics.median(cpu["plugin inactive"]))
    for mode in MODES:
        print(f"{mode:>20}: test calls fastest {min(timings[mode]):.2f} s ({min(timings[mode]) / fastest:.2f}x), "
              f"median {statistics.median(timings[mode]):.2f} s ({statistics.median(timings[mode]) / median:.2f}x); "
              f"pytest CPU median {statistics.median(cpu[mode]):.2f} s "
              f"({statistics.median(cpu[mode]) / cpu_median:.2f}x)")
    print(f"capture alone: {plain:.1f} us per statement unrecorded, {recorded:.1f} us recorded "
          f"({recorded / plain:.2f}x, +{recorded - plain:.1f} us per statement)")


if __name__ == "__main__":
    main()
