"""pg_stat_activity sampled through a `--watch` window: which statement a session ran right after which.

pg_stat_statements counts each statement's calls, but not who made them: a list query and lookups
from an unrelated thread whose counts happen to line up look just like a loop and the query that
drives it, and a loop in autocommit mode (each lookup its own transaction) looks like no loop at
all when calls are compared with transactions. What ties the calls of a loop together is the
session that sends them: one connection runs the parent, then the lookup again and again. Sampled
often, pg_stat_activity shows that order: each session's current (or, when idle, last) statement
with the time it started, so two samples of one session showing the parent and then the lookup,
started moments apart, are one step of that session's work. Samples miss most fast statements,
so the evidence is a count of such steps seen, and it only ever links statements of one session.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import psycopg

from pglab.lab.postgres.client import open_session
from pglab.lab.runtime.autoexplain import statement_key
from pglab.lab.runtime.stats import APPLICATION_NAME, MARKER, dict_rows, normalised

SAMPLE_EVERY_S = 0.02  # a read of pg_stat_activity takes about a millisecond
MAX_GAP_S = 1.0  # from the end of the parent (as far as the samples know it) to the start of the lookup
_SAMPLE = f"""SELECT {MARKER}
       pid, {{query_id}} AS query_id, query, state = 'active' AS active,
       extract(epoch FROM query_start)::float8 AS query_start, extract(epoch FROM state_change)::float8 AS state_change,
       extract(epoch FROM xact_start)::float8 AS xact_start, extract(epoch FROM now())::float8 AS now
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      AND application_name <> %s AND query_start IS NOT NULL"""


@dataclass
class Execution:
    """One execution of a statement by one session, as the samples saw it. `ended` is when it
    ended (idle afterwards), else the last sample that still saw it running: a lower bound."""

    query_id: int | None
    query: str
    query_start: float
    ended: float
    xact_start: float | None


@dataclass
class ActivitySamples:
    """What sampling saw: per session (pid), its executions in the order they started. No samples
    at all means nobody sampled (diagnose without --watch)."""

    samples: int = 0
    seconds: float = 0.0
    sessions: dict[int, dict[float, Execution]] = field(default_factory=dict)

    def record(self, row: dict[str, Any]) -> None:
        if MARKER in (row["query"] or ""):
            return
        ended = row["now"] if row["active"] else row["state_change"] or row["now"]
        executions = self.sessions.setdefault(row["pid"], {})
        seen = executions.get(row["query_start"])
        if seen is None:
            executions[row["query_start"]] = Execution(row["query_id"], row["query"] or "", row["query_start"],
                                                       ended, row["xact_start"])
        else:
            seen.ended = max(seen.ended, ended)


class ActivitySampler:
    """Samples pg_stat_activity of the database `dsn` names, on a connection of its own, while
    `run` is called (the command line calls it instead of sleeping through --watch)."""

    def __init__(self, dsn: str) -> None:
        self.conn = open_session(dsn, "diagnose")  # its own sessions are left out of the samples
        version = int(dict_rows(self.conn, "SHOW server_version_num")[0]["server_version_num"])
        self.query = _SAMPLE.format(query_id="query_id" if version >= 140000 else "NULL::bigint")
        self.result = ActivitySamples()

    def __enter__(self) -> ActivitySampler:
        return self

    def __exit__(self, *_: object) -> None:
        self.conn.close()

    def run(self, seconds: float) -> None:
        started = time.perf_counter()
        end = started + seconds
        while (now := time.perf_counter()) < end:
            try:
                rows = dict_rows(self.conn, self.query, (APPLICATION_NAME,))
            except psycopg.Error:
                return  # a partial sample: the rule links what it saw
            for row in rows:
                self.result.record(row)
            self.result.samples += 1
            time.sleep(max(0.0, min(SAMPLE_EVERY_S - (time.perf_counter() - now), end - time.perf_counter())))
        self.result.seconds += time.perf_counter() - started


@dataclass
class Link:
    """A statement seen starting right after another in one session."""

    parent: str  # normalised text of the statement it followed
    steps: int = 0  # times the samples saw the parent, then this statement, in one session
    sessions: set[int] = field(default_factory=set)
    same_transaction: int = 0  # of those steps, how many inside one transaction


def links(activity: ActivitySamples, statements: list[dict[str, Any]]) -> dict[str, dict[str, Link]]:
    """normalised text of a statement -> (normalised text of a statement it followed -> the link),
    over `statements` (window entries: `query`, `queryids`) only. An execution is matched to its
    entry by query_id where the server computes one, else by the fingerprint of its text."""
    by_queryid = {queryid: normalised(s["query"]) for s in statements for queryid in s.get("queryids", ())}
    by_fingerprint = {statement_key(s["query"]): normalised(s["query"]) for s in statements}
    fingerprints: dict[str, str | None] = {}

    def entry_of(execution: Execution) -> str | None:
        if execution.query_id is not None and execution.query_id in by_queryid:
            return by_queryid[execution.query_id]
        if execution.query not in fingerprints:
            fingerprints[execution.query] = by_fingerprint.get(statement_key(execution.query))
        return fingerprints[execution.query]

    found: dict[str, dict[str, Link]] = defaultdict(dict)
    for pid, executions in activity.sessions.items():
        ordered = [(entry_of(e), e) for _, e in sorted(executions.items())]
        for (parent, first), (child, then) in pairwise(ordered):
            if parent is None or child is None or parent == child or then.query_start - first.ended > MAX_GAP_S:
                continue
            link = found[child].setdefault(parent, Link(parent))
            link.steps += 1
            link.sessions.add(pid)
            link.same_transaction += first.xact_start is not None and first.xact_start == then.xact_start
    return found

