"""Held-out evaluation of `pglab diagnose`: a bookshop that is not the chat service, one workload
per runtime signal and a set of clean workloads, judged with the default thresholds.

    python tests/bench/diagnose_eval.py [--dsn DSN] [CASE ...]

Without --dsn it starts pglab's embedded PostgreSQL 18 (pg_stat_statements and auto_explain
preloaded); a --dsn server needs pg_stat_statements preloaded and a superuser, and gets one
database per case (dropped afterwards). Each case runs in a fresh copy of a seeded template:
authors 5k, books 50k (1.3 kB descriptions), customers 50k, orders 200k (one customer owns a
tenth), order items 400k, reviews 100k, order events 300k, with NULLs where real data has them.

Prints, per case, what was expected and what diagnose found, then recall over the signal cases
(expected id found) and the false findings on the clean ones (any finding there is false). Extra
findings on signal cases are listed too: they are not counted, but they are shown.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator

import psycopg
from bookshop import LAST_MESSAGES, SCHEMA, SEED
from bookshop_clean import CASES as CLEAN
from bookshop_signals import CASES as SIGNALS
from psycopg import sql

from pglab.lab.postgres.launcher import EmbeddedPostgres

CASES = SIGNALS + CLEAN  # workloads are in `bookshop_signals.py` and `bookshop_clean.py`


# --- the run ----------------------------------------------------------------------------------


def prepare_template(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname=name), autocommit=True) as conn:
        conn.execute(SCHEMA)
        for statement in SEED:
            conn.execute(statement)


@contextlib.contextmanager
def case_database(dsn: str, template: str, name: str) -> Iterator[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    try:
        yield psycopg.conninfo.make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def evaluate(dsn: str, selected: list[str]) -> int:
    template = "pglab_eval_bookshop"
    started = time.perf_counter()
    prepare_template(dsn, template)
    print(f"seeded the bookshop template in {time.perf_counter() - started:.1f} s")
    hits = signals = false = clean = 0
    for number, entry in enumerate(CASES):
        if selected and not any(word in entry.name or word == entry.expected for word in selected):
            continue
        began = time.perf_counter()
        with case_database(dsn, template, f"pglab_eval_{number}") as case_dsn:
            found = entry.run(case_dsn)
        seconds = time.perf_counter() - began
        if entry.expected:
            signals += 1
            hit = entry.expected in found
            hits += hit
            extra = sorted(found - {entry.expected})
            print(f"{'found ' if hit else 'MISSED'} {entry.expected:24} {entry.name} ({seconds:.1f} s)"
                  + (f"; also: {', '.join(extra)}" if extra else ""))
        else:
            clean += 1
            false += len(found)
            print(f"{'clean ' if not found else 'FALSE '} {'-':24} {entry.name} ({seconds:.1f} s)"
                  + (f"; found: {', '.join(sorted(found))}" if found else ""))
            for message in LAST_MESSAGES if found else ():
                print(f"         {message[:220]}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(template)))
    print(f"\nrecall: {hits}/{signals} signals found; false findings on clean workloads: {false} "
          f"(over {clean} clean workloads); {time.perf_counter() - started:.0f} s in all")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a server with pg_stat_statements preloaded (default: pglab's embedded one)")
    parser.add_argument("cases", nargs="*", help="words of case names, or expected ids, to run only those")
    args = parser.parse_args()
    if args.dsn:
        return evaluate(args.dsn, args.cases)
    with EmbeddedPostgres() as server:
        return evaluate(server.dsn(), args.cases)


if __name__ == "__main__":
    raise SystemExit(main())
