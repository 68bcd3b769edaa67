"""Goodput: the answers that arrived in time, and how the verdict judges a fix that sheds load.

A deliberate overload cannot be served whole; a shedding fix must turn more of it into timely
answers than the naive service did, and keep most of the capacity measured in the same run.
The service's shed answers are checked on a real server: 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from test_lab_service import call, data_dsn  # noqa: F401  (a fixture: seeded tiny data)

from pglab.lab.trial import invariants
from pglab.lab.trial.loadrun import Summary
from pglab.lab.trial.service.paths import no_load_shedding
from pglab.lab.trial.service.process import running_service
from pglab.lab.trial.verdict import Side, judge

SHED = "HTTP 503 overloaded, retry later: 10 requests in flight, the limit is 10"


def _hold(fast: int, late: int, shed: int = 0, timeouts: int = 0, seconds: float = 10,
          answered: int | None = None) -> Summary:
    """A hold of one endpoint: `fast` answers within the SLO, `late` ones after it, `shed` fast
    503s and `timeouts` slow 503s; `answered` arrived during it (by default, every success)."""
    histogram = {40: fast + shed, 3000: late + timeouts}
    failures = shed + timeouts
    errors = {SHED: shed} if shed else {}
    if timeouts:
        errors["HTTP 503 no pooled connection within 5 s"] = timeouts
    requests = fast + late + shed + timeouts
    return Summary(requests=requests, failures=failures, seconds=seconds, histogram=histogram, errors=errors,
                   endpoints={"GET /x": {"requests": requests, "failures": failures, "histogram": histogram}},
                   answered=fast + late if answered is None else answered)


def test_goodput_counts_only_successes_within_the_slo() -> None:
    limits = invariants.Limits(slo_p99_ms=250)
    assert invariants.goodput_bounds(_hold(fast=800, late=200), 250) == (80.0, 80.0)
    assert invariants.goodput_bounds(_hold(fast=500, late=0, shed=300), 250) == (50.0, 50.0)  # fast failures: exact
    low, high = invariants.goodput_bounds(_hold(fast=500, late=100, timeouts=100), 250)
    assert (low, high) == (40.0, 50.0)  # a failure's time is not known apart: a floor and a ceiling
    assert invariants.goodput(_hold(fast=1000, late=0), limits).held
    late = invariants.goodput(_hold(fast=100, late=900), limits)
    assert not late.held and late.value == 10.0 and late.limit == 95.0  # the work was done, too late


def test_a_shedding_profile_counts_its_503s_as_shed_not_as_errors() -> None:
    hold = _hold(fast=600, late=0, shed=400)
    plain = invariants.evaluate(hold, 0, 0, 0, invariants.Limits())
    shedding = invariants.evaluate(hold, 0, 0, 0, invariants.Limits(sheds_load=True))
    assert not plain["error_rate_under_budget"].held  # without SHEDS_LOAD a 503 is an error
    assert shedding["error_rate_under_budget"].held and shedding["error_rate_under_budget"].value == 0
    assert invariants.shed_requests(hold, invariants.Limits(sheds_load=True)) == 400
    with_error = _hold(fast=600, late=0, shed=400)
    with_error.errors["HTTP 500 boom"] = 20
    with_error.failures += 20
    assert not invariants.evaluate(with_error, 0, 0, 0, invariants.Limits(sheds_load=True))[
        "error_rate_under_budget"].held  # other failures still count


def _side(hold: Summary, sheds: bool = True, detections: tuple[str, ...] = ()) -> Side:
    limits = invariants.Limits(slo_p99_ms=250, sheds_load=sheds)
    checks = invariants.evaluate(hold, 0, 0, 0, limits)
    checks["goodput_within_slo"] = invariants.goodput(hold, limits)
    return Side(requests=hold.requests, failures=hold.failures, rps=hold.rps, p50_ms=hold.p(0.5),
                p95_ms=hold.p(0.95), p99_ms=hold.p(0.99), lost_updates=0, invariants=checks,
                detections=list(detections), offered_rps=hold.requests / hold.seconds,
                achieved_rps=hold.achieved_rps, answered_rps=hold.answered_rps,
                answers=[{"probe": "GET /x", "status": 200, "body": []}],
                sheds_load=sheds, shed=invariants.shed_requests(hold, limits),
                goodput_range=invariants.goodput_bounds(hold, 250))


PREDICTED = ("goodput_within_slo", "p99_under_slo")
NAIVE = _hold(fast=20, late=880)  # 90 req/s answered, nearly all of them late: capacity 90


@pytest.mark.parametrize(("fixed", "expected", "why"), [
    (_hold(fast=850, late=0, shed=350), "cured", "goodput 2.0 -> 85.0"),  # 85 of 90 in time, the rest shed
    (_hold(fast=300, late=0, shed=900), "not_cured", "less than 80%"),  # sheds what it could serve
    (_hold(fast=10, late=0, shed=1190), "not_cured", "no more than the naive"),  # sheds everything
    (_hold(fast=850, late=0, shed=300, timeouts=50), "not_cured", "still breaks"),  # p99: slow 503s
])
def test_a_shedding_fix_is_judged_on_goodput_against_the_measured_capacity(fixed: Summary, expected: str,
                                                                           why: str) -> None:
    outcome, reason = judge("no_load_shedding", PREDICTED, _side(NAIVE, detections=("no_load_shedding",)),
                            _side(fixed))
    assert outcome == expected, reason
    assert why in reason


def test_the_capacity_is_the_answers_that_arrived_in_the_hold_not_those_sent_in_it() -> None:
    """The naive side's answers take seconds: of the requests it sent in the hold, those sent
    late were answered after it. Its throughput is the 120 answers a second that arrived during
    the hold; against that, 85 a second in time is under 80 %."""
    naive = _side(_hold(fast=20, late=880, answered=1200), detections=("no_load_shedding",))
    outcome, reason = judge("no_load_shedding", PREDICTED, naive, _side(_hold(fast=850, late=0, shed=350)))
    assert outcome == "not_cured" and "120.0 req/s the service completed" in reason


def test_without_sheds_load_a_shedding_fix_is_not_cured() -> None:
    naive = _side(NAIVE, sheds=False, detections=("no_load_shedding",))
    outcome, reason = judge("no_load_shedding", PREDICTED, naive, _side(_hold(fast=850, late=0, shed=350), sheds=False))
    assert outcome == "not_cured" and "error_rate_under_budget" in reason


def test_the_limit_grows_while_answers_are_fast_and_backs_off_when_slow() -> None:
    async def scenario() -> tuple[float, float, bool]:
        limit = no_load_shedding.AdaptiveLimit(initial=2, floor=1, ceiling=20)  # the mechanism, unclamped
        async with limit.admit(), limit.admit():  # two in flight: the limit is in use
            pass
        grown = limit.limit
        limit._done(1.0, True) if limit.in_flight else None
        limit.in_flight += 1
        limit._done(no_load_shedding.LATENCY_TARGET_S * 2, True)  # one slow answer
        shrunk = limit.limit
        limit.limit, limit.in_flight = 1, 1  # full: the next request waits a little, then is shed
        try:
            async with limit.admit():
                pass
            shed = False
        except no_load_shedding.Overloaded:
            shed = True
        return grown, shrunk, shed

    grown, shrunk, shed = asyncio.run(scenario())
    assert grown > 2 and shrunk == pytest.approx(grown * no_load_shedding.AdaptiveLimit.BACKOFF)
    assert shed


def test_the_limit_grows_by_one_per_limits_worth_of_answers_in_time() -> None:
    """Additive increase per round trip, as TCP's: one place per `limit` answers in time, not one
    per answer (which pinned the limit at its ceiling whatever the latency)."""
    limit = no_load_shedding.AdaptiveLimit(initial=4, floor=1, ceiling=20)
    for _ in range(4):  # four answers in time, the limit in use
        limit.in_flight = 4
        limit._done(no_load_shedding.LATENCY_TARGET_S / 10, True)
    assert 4.8 < limit.limit < 5.0


def test_a_waiter_cancelled_after_it_was_handed_a_place_gives_it_back() -> None:
    async def scenario() -> int:
        limit = no_load_shedding.AdaptiveLimit(initial=1, floor=1, ceiling=1)
        async def request() -> None:
            async with limit.admit():
                await asyncio.sleep(0)

        async with limit.admit():
            waiter = asyncio.create_task(request())
            await asyncio.sleep(0)  # the waiter queues
        waiter.cancel()  # handed the place as the first request left, cancelled before it resumed
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        return limit.in_flight

    assert asyncio.run(scenario()) == 0


def test_slow_answers_never_push_the_limit_below_a_few_queries_per_core() -> None:
    limit = no_load_shedding.AdaptiveLimit()
    for _ in range(50):  # a long slow spell: one slow answer per latency target
        limit.in_flight += 1
        limit._last_cut -= no_load_shedding.LATENCY_TARGET_S
        limit._done(no_load_shedding.LATENCY_TARGET_S * 2, True)
    assert limit.limit == no_load_shedding.MIN_LIMIT >= 4


def test_a_burst_of_slow_answers_cuts_the_limit_once() -> None:
    limit = no_load_shedding.AdaptiveLimit()
    for _ in range(10):  # the slow answers of one spell, all started under the same limit
        limit.in_flight += 1
        limit._done(no_load_shedding.LATENCY_TARGET_S * 2, True)
    assert limit.limit == pytest.approx(no_load_shedding.MAX_LIMIT * no_load_shedding.AdaptiveLimit.BACKOFF)


def test_a_freed_place_goes_to_the_first_waiter_and_late_ones_are_shed() -> None:
    async def scenario() -> list[str]:
        limit = no_load_shedding.AdaptiveLimit(initial=1, floor=1, ceiling=1)
        order: list[str] = []

        async def request(name: str, hold: float) -> None:
            try:
                async with limit.admit():
                    order.append(name)
                    await asyncio.sleep(hold)
            except no_load_shedding.Overloaded:
                order.append(f"{name} shed")

        first = asyncio.create_task(request("first", no_load_shedding.QUEUE_TIMEOUT_S / 2))
        await asyncio.sleep(0)
        second = asyncio.create_task(request("second", 0))
        await asyncio.sleep(0)
        third = asyncio.create_task(request("third", 0))
        await asyncio.gather(first, second, third)
        late = asyncio.create_task(request("late", 0))
        async with limit.admit():  # the place is taken for longer than a late request waits
            await asyncio.sleep(no_load_shedding.QUEUE_TIMEOUT_S * 2)
        await late
        assert limit.in_flight == 0
        return order

    assert asyncio.run(scenario()) == ["first", "second", "third", "late shed"]


def test_the_fixed_path_sheds_with_retry_after_and_answers_what_it_admits(data_dsn: str) -> None:  # noqa: F811
    with running_service(data_dsn, frozenset()) as url:
        status, body = call(f"{url}/conversations/1/top-posters")
        assert status == 200 and body and {"user_id", "messages", "tokens", "last_at", "words"} <= set(body[0])
        with ThreadPoolExecutor(max_workers=64) as pool, psycopg.connect(data_dsn) as blocker:
            # the database stalls (a lock held for a moment): admitted requests hold their places
            blocker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            pending = [pool.submit(_get_with_headers, url) for _ in range(200)]  # far more than the limit
            time.sleep(1)
            blocker.rollback()
            answers: list[Any] = [future.result() for future in pending]
    shed = [headers for status, headers in answers if status == 503]
    assert shed, "200 at once against a stalled database, a limit of 10 and a 25 ms wait: some are shed"
    assert any(status == 200 for status, _ in answers), "the admitted ones are answered once it resumes"
    assert all(status in (200, 503) for status, _ in answers), sorted({status for status, _ in answers})
    assert all(headers.get("retry-after") == str(no_load_shedding.RETRY_AFTER_S) for headers in shed)


def _get_with_headers(url: str) -> tuple[int, dict[str, str]]:
    """(status, headers with lower-case names)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/conversations/1/top-posters", timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}
