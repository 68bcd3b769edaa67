"""Benchmark: time from `EmbeddedPostgres.start()` to a server accepting logins.

    python tests/bench/startup.py [RUNS]

Prints each run and the median. The first run of a new binary set includes initdb (cached after).
"""

from __future__ import annotations

import statistics
import sys
import time

from pglab.lab.postgres.launcher import EmbeddedPostgres


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    timings = []
    for run in range(runs):
        began = time.perf_counter()
        with EmbeddedPostgres():
            ready = time.perf_counter() - began
        stopped = time.perf_counter() - began - ready
        timings.append(ready)
        print(f"run {run + 1}: ready in {ready:.3f} s, stopped and removed in {stopped:.3f} s")
    print(f"median start-up to accepting connections: {statistics.median(timings):.3f} s over {runs} runs")


if __name__ == "__main__":
    main()
