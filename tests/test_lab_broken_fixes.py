"""Deliberately broken "fixes" are not called cured: one that answers with fewer rows (caught by
the probes, `not_equivalent`), and one that sheds load with 503s (a rate limit below the load's
rate: its answers to the few probes, within its burst, look right; the error budget and the
goodput rule catch it, `not_cured`). The limit is a rate, not a cap on concurrent requests: on a
fast machine the fixed path answers before the next request arrives, and a cap is never reached.

Each replaces correlated_subquery's implementations with a file of its own, the way a student's attempt
is run, in a real lab run on the embedded server."""

from __future__ import annotations

from pathlib import Path

from conftest import embedded_only
from pglab.lab.trial.report import run_lab

DURATION = 6.0

DROPS_ROWS = '''
from pglab.lab.trial.service.paths.correlated_subquery import fixed as real_fixed, naive  # noqa: F401


async def fixed(conn, conversation_id):
    return (await real_fixed(conn, conversation_id))[:10]  # "only what fits on the screen"
'''

SHEDS_LOAD = '''
import time

from pglab.lab.trial.service.db import Unavailable
from pglab.lab.trial.service.paths.correlated_subquery import fixed as real_fixed, naive  # noqa: F401

RATE, BURST = 5.0, 5.0  # a rate limit at half the load's 10 requests a second, after a short burst
bucket = {"tokens": BURST, "at": time.monotonic()}


async def fixed(conn, conversation_id):
    now = time.monotonic()
    bucket["tokens"] = min(BURST, bucket["tokens"] + (now - bucket["at"]) * RATE)
    bucket["at"] = now
    if bucket["tokens"] < 1:  # over the limit: refuse rather than queue
        raise Unavailable("shedding load")
    bucket["tokens"] -= 1
    return await real_fixed(conn, conversation_id)
'''


def _run_with(tmp_path: Path, source: str) -> dict[str, object]:
    override = tmp_path / "attempt.py"
    override.write_text(source)
    return run_lab("correlated_subquery", "small", DURATION, overrides={"correlated_subquery": override})


@embedded_only("a full lab run on pglab's own server")
def test_a_fix_that_drops_rows_is_not_equivalent(tmp_path: Path) -> None:
    report = _run_with(tmp_path, DROPS_ROWS)
    assert report["verdict"] == "not_equivalent", report["reason"]
    assert report["equivalent"] is False
    assert "GET /conversations/1/tokens" in str(report["reason"])


@embedded_only("a full lab run on pglab's own server")
def test_a_fix_that_sheds_load_with_503s_is_not_cured(tmp_path: Path) -> None:
    report = _run_with(tmp_path, SHEDS_LOAD)
    assert report["equivalent"] is True  # one request at a time it answers right
    assert report["verdict"] == "not_cured", report["reason"]
    assert "error_rate_under_budget" in str(report["reason"]) or "successful req/s" in str(report["reason"])
