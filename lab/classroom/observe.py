"""`pglab lab observe`: the student's current code under the exercise's load, one side, no verdict.

The same data, baseline, load and detectors as a grade, so what a student sees here is what the
grade will measure; only the comparison with the original code is left out, to keep it quick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pglab.lab.classroom.workspace import Workspace
from pglab.lab.postgres.leftovers import terminate_as_interrupt
from pglab.lab.trial import seed
from pglab.lab.trial.runner import LabRun, Progress
from pglab.lab.trial.server import enable_statement_statistics, lab_server, sweep_scratch
from pglab.lab.trial.verdict import Side


def observe(workspace: Workspace, scale: str, duration: float, progress: Progress | None = None,
            on_server: Callable[[str], None] | None = None, dsn: str | None = None,
            allow_write: bool = False) -> Side:
    """One run of the student's code and migration; `on_server(dsn)` is told where the data is
    before the load starts, so the student can point `pglab diagnose` or psql at it meanwhile."""
    workspace.check_code()
    run = LabRun(workspace.entry_id, seed.get_scale(scale), duration, progress=progress,
                 overrides={workspace.entry_id: workspace.code.resolve()},
                 fixed_migration=workspace.migration_statements())
    sweep_scratch()
    with terminate_as_interrupt(), lab_server(dsn, allow_write) as server_dsn:
        data = seed.lab_dsn(server_dsn)
        try:
            enable_statement_statistics(data, run.footprint)
            run.prepare(data)
            run.reset(data)
            run.apply_own_migration(data)
            if on_server:
                on_server(data)
            return run.run_side(data, "your code", fixed=True)
        finally:
            run.footprint.remove(data)


def symptoms(side: Side) -> list[tuple[str, str]]:
    """The side's figures as (label, value) rows for the terminal."""
    rows = [("requests (hold)", f"{side.requests:,}"),
            ("offered / achieved req/s", f"{side.offered_rps:,.1f} / {side.achieved_rps:,.1f}"),
            ("p50 / p95 / p99 ms", f"{side.p50_ms:,.0f} / {side.p95_ms:,.0f} / {side.p99_ms:,.0f}"),
            ("failures", f"{side.failures:,}" + (f" ({_errors(side.errors)})" if side.errors else "")),
            ("peak server connections", f"{side.peak_backends}")]
    rows += [(f"invariant {name}", f"{'held' if check.held else 'BROKEN'} ({check.value:g}, limit {check.limit:g})")
             for name, check in side.invariants.items()]
    return rows


def _errors(errors: dict[str, Any]) -> str:
    return ", ".join(f"{count}x {kind}" for kind, count in sorted(errors.items(), key=lambda item: -item[1])[:3])

