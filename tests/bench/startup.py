"""Benchmark: time from `EmbeddedPostgres.start()` to a server accepting logins.

    python tests/bench/startup.py [RUNS]

Prints a cold start first (an empty cache directory: the binary copy, when root needs one, and
initdb), then RUNS warm starts (the cached initdb result is copied) and their median. The warm
figure is what every command pays; the cold one is paid once per binary set.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

from pglab.lab.postgres.launcher import EmbeddedPostgres


def timed_start() -> tuple[float, float]:
    began = time.perf_counter()
    with EmbeddedPostgres():
        ready = time.perf_counter() - began
    return ready, time.perf_counter() - began - ready


def cold_start() -> tuple[float, float]:
    cold_cache = tempfile.mkdtemp(prefix="pglab-bench-cache-")
    os.chmod(cold_cache, 0o755)  # as root, the server's account must reach it
    previous = os.environ.get("PGLAB_CACHE_DIR")
    os.environ["PGLAB_CACHE_DIR"] = cold_cache
    try:
        return timed_start()
    finally:
        if previous is None:
            del os.environ["PGLAB_CACHE_DIR"]
        else:
            os.environ["PGLAB_CACHE_DIR"] = previous
        shutil.rmtree(cold_cache, ignore_errors=True)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    ready, stopped = cold_start()
    print(f"cold (empty cache): ready in {ready:.3f} s, stopped and removed in {stopped:.3f} s")
    timed_start()  # fill the real cache if this binary set has never run
    timings = []
    for run in range(runs):
        ready, stopped = timed_start()
        timings.append(ready)
        print(f"run {run + 1}: ready in {ready:.3f} s, stopped and removed in {stopped:.3f} s")
    print(f"median start-up to accepting connections: {statistics.median(timings):.3f} s over {runs} runs "
          f"(range {min(timings):.3f}-{max(timings):.3f} s)")


if __name__ == "__main__":
    main()
