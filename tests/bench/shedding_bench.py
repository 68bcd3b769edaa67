"""Benchmark: load shedding measured three ways, under the no_load_shedding lab's overload.

    python tests/bench/shedding_bench.py [--duration 8] [--variants adaptive fixed_limit]

Each variant is one `pglab lab run no_load_shedding` (under the shared lab lock), whose naive side
is "no limit" (requests wait in the pool's queue) and whose fixed side is the variant:
`adaptive` is the path's own fix (an AIMD concurrency limit with a short bounded wait, then 503),
`fixed_limit` replaces it with a fixed limit: the pool's 10 connections and a short acquire
timeout, then 503, no adaptation. Printed per side: offered and successful req/s, goodput (answers
within the SLO per second, floor-ceiling), p99 and the shed share. Every figure is measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

# One load run at a time on the machine: other benches and people's runs may take the same lock.
LOCK = str(Path(tempfile.gettempdir()) / "pglab-load.lock")
FIXED_LIMIT = '''
from pglab.lab.trial.service.db import Unavailable
from pglab.lab.trial.service.paths import no_load_shedding as reference
from pglab.lab.trial.service.paths import statements

naive = reference.naive


async def fixed(service, conversation_id):
    (query,) = statements(reference.__name__, "fixed")
    try:
        async with service.db.pooled(timeout=reference.ACQUIRE_TIMEOUT_S) as conn:
            cursor = await conn.execute(query, {"conversation_id": conversation_id})
            return service.respond(reference._rows(await cursor.fetchall()))
    except Unavailable as error:
        response = service.respond({"error": f"overloaded, retry later: {error}"}, status=503)
        response.headers["Retry-After"] = str(reference.RETRY_AFTER_S)
        return response
'''


def run(variant: str, duration: float, scratch: Path) -> dict:
    report = scratch / f"{variant}.json"
    command = ["flock", LOCK, "pglab", "lab", "run", "no_load_shedding",
               "--duration", str(duration), "--json", str(report)]
    if variant == "fixed_limit":
        override = scratch / "fixed_limit.py"
        override.write_text(FIXED_LIMIT)
        command += ["--override", f"no_load_shedding={override}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(report.read_text())


def row(label: str, side: dict) -> str:
    shed = side.get("shed", 0) / side["requests"] if side["requests"] else 0.0
    low, high = side.get("goodput_rps", [0, 0])
    return (f"| {label} | {side['offered_rps']:.1f} | {side['achieved_rps']:.1f} | {low:.1f}-{high:.1f} |"
            f" {side['p99_ms']:,.0f} | {shed:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--variants", nargs="+", default=["adaptive", "fixed_limit"],
                        choices=["adaptive", "fixed_limit"])
    args = parser.parse_args()
    print("| side | offered req/s | successful req/s | goodput req/s (floor-ceiling) | p99 ms | shed |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="pglab-shedding-bench-") as directory:
        for variant in args.variants:
            report = run(variant, args.duration, Path(directory))
            print(row(f"no limit (naive, run of {variant})", report["naive"]))
            print(row(variant, report["fixed"]))
            print(f"|  | verdict: {report['verdict']}: {report['reason']} | | | | |")


if __name__ == "__main__":
    main()
