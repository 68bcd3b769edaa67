"""The machine a lab run ran on, because its verdicts depend on it.

The load profiles offer fixed rates. A naive path that costs ten times the fixed one hurts only
when the rate takes more of the machine than it has, so one profile can overload one machine and
barely load the next: on 2026-12-01 a 2-core machine about three times faster than the day before
kept up with most naive paths at small scale. Each report therefore names the machine: its CPU, the
cores the lab may use, and the time of two pieces of fixed work, measured once per run. One runs in
the lab's Postgres (a CPU-bound query) and one in Python, which the service and Locust run in.
These figures compare machines. They take no part in any verdict. Nor does the CPU steal
(`stolen_seconds`): on a virtual machine the hypervisor may hand the cores to other guests in the
middle of a side, and that side then ran on less machine than the other; each side records it.
The fixed work is small (a quarter of what it was before 2026-12-02, when it cost 1.8 s of every
run on a slow machine), so figures from older reports are about four times these.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pglab.lab.runtime.stats import MARKER
from pglab.lab.trial.server import lab_connect

POSTGRES_WORK = f"SELECT {MARKER} sum(i) FROM generate_series(1, 500000) AS i"  # reads no table, writes nothing
PYTHON_LOOPS = 250_000
TRIES = 3  # the best of a few: a busy moment makes a try slower, never faster


def describe(dsn: str) -> dict[str, Any]:
    """`cpu`, `cores`, `postgres_work_ms` and `python_work_ms` (the best of TRIES each)."""
    with lab_connect(dsn) as conn:
        postgres_ms = _best_ms(lambda: conn.execute(POSTGRES_WORK).fetchone())
    return {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1, "postgres_work_ms": postgres_ms, "python_work_ms": _best_ms(_python_work)}


def stolen_seconds() -> float:
    """CPU time this virtual machine's cores wanted but the hypervisor gave to others (the
    `steal` of /proc/stat's first line, summed over the cores) since boot; 0.0 where none is told."""
    try:
        with open("/proc/stat", "rb") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _python_work() -> int:
    total = 0
    for number in range(PYTHON_LOOPS):
        total += number * number % 7
    return total


def _best_ms(work: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(TRIES):
        began = time.perf_counter()
        work()
        best = min(best, (time.perf_counter() - began) * 1000)
    return round(best, 1)
