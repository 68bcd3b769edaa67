"""Invariants: the judgement of a window, and the measurements it rests on, on a real server."""

from __future__ import annotations

import time

import psycopg
from test_lab_service import TINY

from pglab.lab.trial import invariants
from pglab.lab.trial.loadrun import Summary
from pglab.lab.trial.machine import stolen_seconds
from pglab.lab.trial.seed import lab_dsn, seed

APPLICATION_NAME = "pglab-service-this-run"


def _summary(fast: int, slow: int, failures: int) -> Summary:
    histogram = {5: fast, 900: slow}
    return Summary(requests=fast + slow, failures=failures, seconds=10, histogram=histogram,
                   endpoints={"GET /a": {"requests": fast + slow, "failures": failures, "histogram": histogram}})


def test_a_slow_endpoint_with_little_traffic_still_breaks_the_slo() -> None:
    reads = {"requests": 3000, "failures": 0, "histogram": {5: 3000}}
    broadcasts = {"requests": 12, "failures": 0, "histogram": {2000: 12}}
    hold = Summary(requests=3012, failures=0, seconds=10, histogram={5: 3000, 2000: 12},
                   endpoints={"GET /read": reads, "POST /broadcast": broadcasts})
    assert hold.p(0.99) == 5
    check = invariants.evaluate(hold, 0, 0, 0, invariants.Limits())["p99_under_slo"]
    assert (check.held, check.value) == (False, 2000)
    few = Summary(requests=3003, failures=0, seconds=10, histogram={5: 3000, 2000: 3},
                  endpoints={"GET /read": reads, "POST /broadcast": {**broadcasts, "requests": 3}})
    assert invariants.evaluate(few, 0, 0, 0, invariants.Limits())["p99_under_slo"].held  # too few to judge


def test_a_healthy_window_holds_everything() -> None:
    checks = invariants.evaluate(_summary(1000, 5, 0), 0, 0.2, 0, invariants.Limits())
    assert all(check.held for check in checks.values())
    assert set(checks) == {"p99_under_slo", "error_rate_under_budget", "no_lost_updates",
                           "no_idle_in_transaction", "no_refused_connections"}


def test_each_breach_breaks_its_own_invariant_with_the_measured_value() -> None:
    checks = invariants.evaluate(_summary(900, 100, 50), 12, 2.5, 3, invariants.Limits(slo_p99_ms=250))
    assert {name: (check.held, check.value) for name, check in checks.items()} == {
        "p99_under_slo": (False, 900), "error_rate_under_budget": (False, 0.05), "no_lost_updates": (False, 12),
        "no_idle_in_transaction": (False, 2.5), "no_refused_connections": (False, 3)}


def test_lost_updates_are_the_tokens_missing(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        assert invariants.lost_updates(conn) == 0
        conn.execute("UPDATE users SET tokens_used = tokens_used - 7 WHERE id = 3")
        conn.execute("UPDATE users SET tokens_used = tokens_used - 5 WHERE id = 4")
        assert invariants.lost_updates(conn) == 12


def test_the_sampler_times_idle_in_transaction_of_the_service_only(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, application_name=APPLICATION_NAME) as service, \
            psycopg.connect(pg_dsn, application_name="somebody-else") as other, \
            psycopg.connect(pg_dsn, application_name=APPLICATION_NAME + "-another-run") as neighbour, \
            invariants.ActivitySampler(pg_dsn, APPLICATION_NAME) as sampler:
        began, stolen_before = time.time(), stolen_seconds()
        other.execute("SELECT 1")  # idle in transaction too, but not the service's
        neighbour.execute("SELECT 1")  # nor is another run's service
        time.sleep(0.3)
        service.execute("SELECT 1")
        time.sleep(1.5)
        ended = time.time()
    assert 1.0 < sampler.longest_idle_in_transaction(began, ended) < 3.0
    assert sampler.peak_backends(began, ended) >= 3
    assert sampler.longest_idle_in_transaction(ended + 10, ended + 20) == 0
    stolen = [sample.stolen_s for sample in sampler.window(began, ended)]  # the machine's steal, as it grew
    assert stolen_before <= stolen[0] and stolen == sorted(stolen) and stolen[-1] <= stolen_seconds()


def test_the_steal_over_a_window_is_in_cores() -> None:
    """Arithmetic on samples as the sampler takes them: steal seconds over wall seconds."""
    sampler = invariants.ActivitySampler("unused", APPLICATION_NAME)
    sampler.samples += [invariants.Sample(at, 0.0, 1, 1, 0, 0, 0, stolen) for at, stolen in
                        ((100.0, 7.0), (101.0, 7.1), (104.0, 8.5), (110.0, 20.0))]
    assert sampler.stolen_cores(100.0, 105.0) == 0.38  # 1.5 s of steal over 4 s: 0.375 of a core
    assert sampler.stolen_cores(104.0, 105.0) == 0.0  # one sample says nothing about a rate
