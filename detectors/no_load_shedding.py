"""no_load_shedding at run time: statements got much slower while throughput stayed flat.

By Little's law, latency rising at constant throughput means more requests are in flight, waiting
for a saturated resource: work is queueing instead of being refused. The rule compares the window
being judged with the one before it (snapshots chained with `previous=`), over the statements
that ran in both; with a single window there is no trend and it stays quiet.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_calls": 50,  # per window, over the statements compared
    "min_latency_ratio": 2.0,
    "max_throughput_ratio": 1.25,  # "flat": the later window's calls/s at most this times the earlier
}


def _totals(window: Window, queryids: set[int]) -> tuple[float, float]:
    """(calls, execution ms) of the given statements in a window."""
    rows = [s for s in window.statements() if s["queryid"] in queryids]
    return sum(s["calls"] for s in rows), sum(s["total_exec_time"] for s in rows)


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    earlier = window.preceding()
    if earlier is None or not window.seconds or not earlier.seconds:
        return []
    common = {s["queryid"] for s in window.statements()} & {s["queryid"] for s in earlier.statements()}
    calls, time_ms = _totals(window, common)
    calls_before, time_before = _totals(earlier, common)
    if calls < limits["min_calls"] or calls_before < limits["min_calls"]:
        return []
    latency, latency_before = time_ms / calls, time_before / calls_before
    rate, rate_before = calls / window.seconds, calls_before / earlier.seconds
    latency_ratio = latency / latency_before if latency_before else 0.0
    if latency_ratio < limits["min_latency_ratio"] or rate > limits["max_throughput_ratio"] * rate_before:
        return []
    return [finding(
        "no_load_shedding",
        f"statement latency rose {latency_ratio:.1f}x ({latency_before:,.1f} -> {latency:,.1f} ms) while throughput "
        f"stayed at {rate:,.0f}/s (was {rate_before:,.0f}/s): requests queue instead of being shed",
        "warning", subject=f"database {window.after.database}", latency_ms=round(latency, 2),
        latency_ms_before=round(latency_before, 2), calls_per_second=round(rate, 1),
        calls_per_second_before=round(rate_before, 1), latency_ratio=round(latency_ratio, 2),
    )]
