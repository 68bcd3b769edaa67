"""What a healthy service guarantees, judged over a window of a load run rather than at an instant.

Five invariants: p99 latency under the profile's SLO (for every endpoint with enough requests,
not only for the mix), error rate under a budget, no lost updates (every account total equals the
sum of its messages' tokens), no session idle in transaction for longer than a limit, no
connection refused by the server; and goodput (`goodput`): the successful answers that arrived
within the SLO, per second. When a profile declares SHEDS_LOAD, its 503 answers are load shed,
not errors. When a profile declares WAL_BUDGET_PER_WRITE, the WAL bytes its service's statements
wrote per successful write request (`wal_per_write`) are judged against it. Each yields whether
it held and the value measured, so a report can show by how much it failed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab.lab.runtime.stats import MARKER
from pglab.lab.trial.loadrun import Summary
from pglab.lab.trial.machine import stolen_seconds
from pglab.lab.trial.server import safe_dsn

# The lab's own statements carry MARKER so the detectors never judge them; it goes after the first
# keyword because pg_stat_statements drops a statement's leading comments.

SAMPLE_INTERVAL = 0.25  # seconds between two looks at pg_stat_activity
MIN_ENDPOINT_REQUESTS = 10  # an endpoint's own p99 is judged once it has this many requests
SHED_ANSWER = "HTTP 503"  # how the load's recorder names a 503 answer among the failures
GOODPUT_SHARE = 0.95  # of the successful answers, the share that must arrive within the SLO


@dataclass(frozen=True)
class Limits:
    slo_p99_ms: float = 250.0
    error_budget: float = 0.01  # failed share of requests
    idle_in_transaction_s: float = 1.0  # timed from state_change, as the design notes ask
    lost_updates: int = 0
    refused_connections: int = 0
    sheds_load: bool = False  # the profile's fix answers an overload's excess with 503: shed, not errors
    wal_bytes_per_write: float | None = None  # the profile's WAL_BUDGET_PER_WRITE; judged only if declared


@dataclass(frozen=True)
class Check:
    held: bool
    value: float
    limit: float
    higher_is_better: bool = False  # a floor (goodput), not a ceiling: an improvement is a rise

    def as_json(self) -> dict[str, Any]:
        return {"held": self.held, "value": self.value, "limit": self.limit}


def evaluate(hold: Summary, lost_updates: int, idle_in_transaction_s: float, refused_connections: int,
             limits: Limits) -> dict[str, Check]:
    p99 = max(hold.p(0.99), hold.worst_endpoint(0.99, MIN_ENDPOINT_REQUESTS))  # every endpoint, not the mix
    errors = (hold.failures - shed_requests(hold, limits)) / hold.requests if hold.requests else 0.0
    return {
        "p99_under_slo": Check(p99 <= limits.slo_p99_ms, p99, limits.slo_p99_ms),
        "error_rate_under_budget": Check(errors <= limits.error_budget, round(errors, 4), limits.error_budget),
        "no_lost_updates": Check(lost_updates <= limits.lost_updates, lost_updates, limits.lost_updates),
        "no_idle_in_transaction": Check(idle_in_transaction_s <= limits.idle_in_transaction_s,
                                        round(idle_in_transaction_s, 2), limits.idle_in_transaction_s),
        "no_refused_connections": Check(refused_connections <= limits.refused_connections, refused_connections,
                                        limits.refused_connections),
    }


def shed_requests(hold: Summary, limits: Limits) -> int:
    """Requests the service turned away with 503 (its way of saying "not now, retry later"), when
    the profile declares that its fix sheds load; otherwise none: a 503 is then an error."""
    if not limits.sheds_load:
        return 0
    return sum(count for message, count in hold.errors.items() if message.startswith(SHED_ANSWER))


def goodput_bounds(hold: Summary, slo_ms: float) -> tuple[float, float]:
    """(at least, at most) successful answers within the SLO per second. The load's histograms
    mix failures with successes, so per endpoint the answers within the SLO, less every failure,
    is a floor, and the fewer of those answers and the successes is a ceiling; both are exact
    when every failure is fast (a shed) or every failure is slow (a timeout)."""
    if not hold.seconds:
        return 0.0, 0.0
    low = high = 0
    for endpoint in hold.endpoints.values():
        histogram = endpoint.get("first_chunk") or endpoint.get("histogram", {})  # what the SLO judges
        within = sum(count for value, count in histogram.items() if float(value) <= slo_ms)
        low += max(0, within - endpoint["failures"])
        high += min(within, endpoint["requests"] - endpoint["failures"])
    return low / hold.seconds, high / hold.seconds


def goodput(hold: Summary, limits: Limits) -> Check:
    """Goodput: successful answers within the SLO per second (counted at its floor). It holds when
    the work done was done in time: at least GOODPUT_SHARE of the successful answers. A service
    that answers everything seconds late does its work and still serves nobody."""
    floor, _ = goodput_bounds(hold, limits.slo_p99_ms)
    wanted = GOODPUT_SHARE * hold.achieved_rps
    return Check(floor >= wanted, round(floor, 1), round(wanted, 1), higher_is_better=True)


WRITE_METHODS = ("POST ", "PUT ", "PATCH ", "DELETE ")  # the load's request names start with the method
_STATEMENT_WAL = (f"SELECT {MARKER} coalesce(sum(wal_bytes), 0)::float8 FROM pg_stat_statements WHERE dbid ="
                  " (SELECT oid FROM pg_database WHERE datname = current_database())"
                  " AND position(%(marker)s IN query) = 0{toplevel}")


@dataclass
class WalMeter:
    """The WAL the service's statements wrote, as pg_stat_statements counts it (PostgreSQL 13+: per
    statement, when it ends; top-level statements only, since a statement's count already holds
    the foreign-key checks it ran). Not pg_stat_wal: that is the whole cluster's (autovacuum, the
    lab's own sessions) and each backend reports it up to a second late. Sampled while the load
    runs, so that `between` can cut the hold out of it; a server without the counters gives None."""

    dsn: str
    samples: list[tuple[float, float]] = field(default_factory=list)
    unavailable: bool = False

    def sample(self) -> None:
        if self.unavailable:
            return
        try:
            with psycopg.connect(safe_dsn(self.dsn), autocommit=True, application_name="pglab-sampler") as conn:
                for toplevel in (" AND toplevel", ""):  # `toplevel` is PostgreSQL 14+
                    try:
                        row = conn.execute(_STATEMENT_WAL.format(toplevel=toplevel), {"marker": MARKER}).fetchone()
                        break
                    except psycopg.errors.UndefinedColumn:
                        row = None
        except psycopg.Error:
            row = None
        if row is None:
            self.unavailable = True
            return
        self.samples.append((time.time(), float(row[0])))

    def at(self, moment: float) -> float | None:
        """WAL bytes written by `moment`, interpolated between the two samples around it."""
        for (t0, b0), (t1, b1) in zip(self.samples, self.samples[1:], strict=False):
            if t0 <= moment <= t1:
                return b0 + (b1 - b0) * ((moment - t0) / (t1 - t0) if t1 > t0 else 1.0)
        return None

    def between(self, start: float, end: float) -> float | None:
        first, last = self.at(start), self.at(end)
        return None if first is None or last is None else last - first


def successful_writes(summary: Summary) -> int:
    return sum(endpoint["requests"] - endpoint["failures"] for name, endpoint in summary.endpoints.items()
               if name.startswith(WRITE_METHODS))


def wal_per_write(hold: Summary, wal: WalMeter, start: float, end: float, limits: Limits) -> dict[str, Check]:
    """WAL bytes per successful write request of the hold (its whole seconds, as `hold` counts
    requests), against the profile's budget; nothing when it declares none or nothing was
    measured (no counters, no successful write)."""
    written, writes = wal.between(float(int(start)), float(int(end))), successful_writes(hold)
    if limits.wal_bytes_per_write is None or written is None or not writes:
        return {}
    per_write = round(written / writes)
    return {"wal_bytes_per_write_under_budget": Check(per_write <= limits.wal_bytes_per_write, per_write,
                                                      limits.wal_bytes_per_write)}


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
    stolen_s: float  # the machine's CPU steal so far (`machine.stolen_seconds`)


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
        with psycopg.connect(safe_dsn(self.dsn), autocommit=True, application_name="pglab-sampler") as conn:
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
                    service, everyone, active, idle, waiting = (int(value) for value in row[1:])
                    self.samples.append(Sample(time.time(), float(row[0]), service, everyone, active, idle, waiting,
                                               stolen_seconds()))
                self._stop.wait(SAMPLE_INTERVAL)

    def window(self, start: float, end: float) -> list[Sample]:
        return [sample for sample in self.samples if start <= sample.at < end]

    def longest_idle_in_transaction(self, start: float, end: float) -> float:
        return max((sample.longest_idle_in_transaction for sample in self.window(start, end)), default=0.0)

    def stolen_cores(self, start: float, end: float) -> float:
        """Cores' worth of CPU the hypervisor took from this machine over the window, on average."""
        window = self.window(start, end)
        if len(window) < 2 or window[-1].at <= window[0].at:
            return 0.0
        return round((window[-1].stolen_s - window[0].stolen_s) / (window[-1].at - window[0].at), 2)

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
