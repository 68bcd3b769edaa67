"""The load runner: real Locust processes against the real service, results read back as data."""

from __future__ import annotations

import pytest
from test_lab_service import TINY

from pglab.lab.core.errors import UserError
from pglab.lab.trial.loadrun import LoadResult, percentile, profile_constants, profile_path, run_load
from pglab.lab.trial.seed import lab_dsn, seed
from pglab.lab.trial.service.process import running_service

SAMPLE = {"users": TINY.users, "conversations": TINY.conversations, "hot_conversations": TINY.hot_conversations,
          "search_terms": ["kaka"], "max_connections": 20}


def test_percentiles_follow_the_histogram() -> None:
    histogram = {1: 90, 10: 9, 500: 1}
    assert percentile(histogram, 0.5) == 1
    assert percentile(histogram, 0.95) == 10
    assert percentile(histogram, 0.99) == 10
    assert percentile(histogram, 1.0) == 500
    assert percentile({}, 0.99) == 0


def test_summaries_keep_only_the_window_asked_for() -> None:
    cell = {"count": 10, "failures": 1, "times": {"5": 9, "700": 1}, "errors": {"HTTPError 503": 1}}
    result = LoadResult(started_at=1000.0, phases=[{"name": "hold", "start": 2, "end": 4}],
                        buckets={"1000": {"GET /a": cell}, "1002": {"GET /a": cell}, "1003": {"GET /b": cell}})
    hold = result.hold()
    assert (hold.requests, hold.failures, hold.rps) == (20, 2, 10.0)
    assert set(hold.endpoints) == {"GET /a", "GET /b"} and hold.errors == {"HTTPError 503": 2}
    assert hold.p(0.95) == 700
    assert [row["requests"] for row in result.timeline()] == [10, 0, 10, 10]


def test_profiles_are_read_without_importing_locust() -> None:
    assert profile_constants("pool_exhaustion")["SLO_P99_MS"] == 1000
    with pytest.raises(UserError, match="no load profile"):
        profile_path("no_such_profile")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bounded_run_measures_every_window(pg_dsn: str, workers: int) -> None:
    seed(pg_dsn, TINY)
    with running_service(lab_dsn(pg_dsn), frozenset()) as url:
        result = run_load(profile_path("ceiling"), url, duration=5, sample=SAMPLE, workers=workers)
    hold = result.hold()
    assert result.distributed is (workers > 0)
    assert hold.requests > 50 and hold.failures == 0
    assert set(hold.endpoints) == {"GET /health"}
    assert 0 < hold.p(0.5) <= hold.p(0.99)
    assert sum(row["requests"] for row in result.timeline()) >= hold.requests


def test_load_goes_to_loopback_only() -> None:
    with pytest.raises(UserError, match="127.0.0.1"):
        run_load(profile_path("ceiling"), "http://example.com:80", duration=5, sample=SAMPLE)
