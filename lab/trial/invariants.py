"""What a healthy service guarantees, judged over a window of a load run rather than at an instant.

Five invariants: p99 latency under the profile's SLO (for every endpoint with enough requests,
not only for the mix), error rate under a budget, no lost updates (every account total equals the
sum of its messages' tokens), no session idle in transaction for longer than a limit, no
connection refused by the server. Each yields whether it held and the value measured, so a report
can show by how much it failed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab.lab.runtime.stats import MARKER
from pglab.lab.trial.loadrun import Summary

# The lab's own statements carry MARKER so the detectors never judge them; it goes after the first
# keyword because pg_stat_statements drops a statement's leading comments.

SAMPLE_INTERVAL = 0.25  # seconds between two looks at pg_stat_activity
MIN_ENDPOINT_REQUESTS = 10  # an endpoint's own p99 is judged once it has this many requests


@dataclass(frozen=True)
class Limits:
    slo_p99_ms: float = 250.0
    error_budget: float = 0.01  # failed share of requests
    idle_in_transaction_s: float = 1.0  # timed from state_change, as the design notes ask
    lost_updates: int = 0
    refused_connections: int = 0


@dataclass(frozen=True)
class Check:
    held: bool
    value: float
    limit: float

    def as_json(self) -> dict[str, Any]:
        return {"held": self.held, "value": self.value, "limit": self.limit}


def evaluate(hold: Summary, lost_updates: int, idle_in_transaction_s: float, refused_connections: int,
             limits: Limits) -> dict[str, Check]:
    p99 = max(hold.p(0.99), hold.worst_endpoint(0.99, MIN_ENDPOINT_REQUESTS))  # every endpoint, not the mix
    return {
        "p99_under_slo": Check(p99 <= limits.slo_p99_ms, p99, limits.slo_p99_ms),
        "error_rate_under_budget": Check(hold.error_rate <= limits.error_budget, round(hold.error_rate, 4),
                                         limits.error_budget),
        "no_lost_updates": Check(lost_updates <= limits.lost_updates, lost_updates, limits.lost_updates),
        "no_idle_in_transaction": Check(idle_in_transaction_s <= limits.idle_in_transaction_s,
                                        round(idle_in_transaction_s, 2), limits.idle_in_transaction_s),
        "no_refused_connections": Check(refused_connections <= limits.refused_connections, refused_connections,
                                        limits.refused_connections),
    }


def lost_updates(conn: psycopg.Connection[Any]) -> int:
    """Tokens missing from account totals: sum over users of |sum(messages.tokens) - tokens_used|."""
    row = conn.execute(
        f"SELECT {MARKER} coalesce(sum(abs(coalesce(t.total, 0) - u.tokens_used)), 0) FROM users u"
        " LEFT JOIN (SELECT user_id, sum(tokens) AS total FROM messages GROUP BY user_id) t ON t.user_id = u.id"
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Sample:
    """One look at pg_stat_activity: the service's sessions by state, and all client backends."""

    at: float
    longest_idle_in_transaction: float  # seconds, timed from state_change
    service_backends: int
    all_backends: int
    active: int
    idle_in_transaction: int
    waiting_on_locks: int


@dataclass
class ActivitySampler:
    """Watches one run's service sessions (by their application_name) in pg_stat_activity from a
    thread, a few times a second, so the lab can judge a window of the run afterwards and draw
    connections by state over time."""

    dsn: str
    application_name: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ActivitySampler:
        self._thread = threading.Thread(target=self._run, name="pglab-activity-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, application_name="pglab-sampler") as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    f"SELECT {MARKER} coalesce(max(extract(epoch FROM now() - state_change))"
                    "   FILTER (WHERE state LIKE 'idle in transaction%%' AND mine), 0),"
                    " count(*) FILTER (WHERE mine), count(*) FILTER (WHERE backend_type = 'client backend'),"
                    " count(*) FILTER (WHERE mine AND state = 'active'),"
                    " count(*) FILTER (WHERE mine AND state LIKE 'idle in transaction%%'),"
                    " count(*) FILTER (WHERE mine AND wait_event_type = 'Lock')"
                    " FROM (SELECT *, application_name = %s AS mine FROM pg_stat_activity) AS activity",
                    (self.application_name,)).fetchone()
                if row:
                    self.samples.append(Sample(time.time(), float(row[0]), *(int(value) for value in row[1:])))
                self._stop.wait(SAMPLE_INTERVAL)

    def window(self, start: float, end: float) -> list[Sample]:
        return [sample for sample in self.samples if start <= sample.at < end]

    def longest_idle_in_transaction(self, start: float, end: float) -> float:
        return max((sample.longest_idle_in_transaction for sample in self.window(start, end)), default=0.0)

    def peak_backends(self, start: float, end: float) -> int:
        return max((sample.all_backends for sample in self.window(start, end)), default=0)

    def per_second(self, origin: float) -> dict[int, dict[str, int]]:
        """Second since `origin` -> the peak count of the service's sessions in each state."""
        seconds: dict[int, dict[str, int]] = {}
        for sample in self.samples:
            point = seconds.setdefault(int(sample.at - origin), {"active": 0, "idle_in_transaction": 0,
                                                                  "waiting_on_locks": 0})
            point["active"] = max(point["active"], sample.active)
            point["idle_in_transaction"] = max(point["idle_in_transaction"], sample.idle_in_transaction)
            point["waiting_on_locks"] = max(point["waiting_on_locks"], sample.waiting_on_locks)
        return seconds
