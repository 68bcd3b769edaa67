"""Deliberately broken "fixes" are not called cured: one that answers with fewer rows (caught by
the probes, `not_equivalent`), and one that sheds load with 503s under concurrency (its answers
to sequential probes look right; the error budget and the goodput rule catch it, `not_cured`).

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
from pglab.lab.trial.service.db import Unavailable
from pglab.lab.trial.service.paths.correlated_subquery import fixed as real_fixed, naive  # noqa: F401

in_flight = [0]


async def fixed(conn, conversation_id):
    if in_flight[0] >= 1:  # busy: refuse rather than queue
        raise Unavailable("shedding load")
    in_flight[0] += 1
    try:
        return await real_fixed(conn, conversation_id)
    finally:
        in_flight[0] -= 1
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
