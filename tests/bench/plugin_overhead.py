"""Benchmark: what the pytest plugin costs a query-heavy suite.

    python tests/bench/plugin_overhead.py [ROUNDS] [--tests N] [--lookups N]

Writes a suite of N tests, each sending a few hundred statements through psycopg (point lookups,
inserts, a transaction with savepoints, an async connection), and runs it with pytest three ways:
plugin inactive, `--pglab --pglab-plans off`, and `--pglab` with plan checks on. It times the
test calls only (junit `call` durations, which include the plugin's per-test checks, since they
run inside the call), so pytest start-up and database cloning, which are the same in every mode,
do not dilute the ratio. Modes are interleaved per round and the median round is reported.

The databases live on pglab's embedded server, or on `PGLAB_TEST_DSN` when it is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
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

pytestmark = pytest.mark.pglab(allow=["n_plus_one", "fanout_loop", "per_row_update"])
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


def run_suite(directory: Path, dsn: str, flags: list[str]) -> float:
    junit = directory / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
               "-o", "junit_duration_report=call", *flags]
    done = subprocess.run(command, cwd=directory, env={**os.environ, "PGLAB_TEST_DSN": dsn},
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"the benchmark suite failed with {' '.join(flags) or 'no flags'}:\n{done.stdout[-3000:]}")
    return call_seconds(junit)


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
        for number in range(options.rounds):
            for mode, flags in MODES.items():
                timings[mode].append(run_suite(directory, server.dsn, flags))
            print(f"round {number + 1}: " + ", ".join(f"{mode} {timings[mode][-1]:.2f} s" for mode in MODES))
    base = statistics.median(timings["plugin inactive"])
    for mode in MODES:
        median = statistics.median(timings[mode])
        print(f"{mode:>20}: median {median:.2f} s of test calls, {median / base:.2f}x the inactive run")


if __name__ == "__main__":
    main()
