"""`pglab lab run ID`: one anti-pattern shown hurting the chat service under load, then cured.

A run seeds the chat data, starts the service with the anti-pattern's naive code path (every
other anti-pattern the lab knows runs fixed, with its migration applied, so that only this one is
on trial), runs its Locust profile, and judges the hold phase: invariants, and the ids the runtime
detectors report during the hold and at the end. Then it applies the reference fix (the `migrate`
block of `fixes/<id>.sql` and/or the fixed code path), repairs the account totals the naive run
broke, runs the same load again, and gives the verdict:

- `cured`: the naive run broke an invariant and tripped the anti-pattern's own detector, and the
  fixed run held every invariant with that detector quiet;
- `not_reproduced`: the naive run broke nothing, or its detector stayed silent;
- `not_cured`: reproduced, but the fixed run still breaks an invariant or still trips the detector.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pglast
import psycopg
from pglast.parser import fingerprint
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.errors import UserError
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.postgres.launcher import EmbeddedPostgres, connect, redact
from pglab.lab.runtime import diagnose
from pglab.lab.trial import invariants, seed
from pglab.lab.trial.loadrun import profile_constants, profile_path, run_load
from pglab.lab.trial.service import paths
from pglab.lab.trial.service.process import running_service, service_stats

LAB_SERVER_SETTINGS = {"max_connections": "40"}  # small, so pool_exhaustion's naive run can reach it
DETECT_EVERY = 1.0  # seconds between two looks of the detectors at the live server during the hold
LOCUST_START = 1.0  # seconds Locust takes at least to start before its load shape's clock runs
VERDICTS = ("cured", "not_reproduced", "not_cured")


@dataclass
class Side:
    """One run (naive or fixed): the hold phase's figures, invariants and detections."""

    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    lost_updates: int
    invariants: dict[str, invariants.Check]
    detections: list[str]
    notes: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    peak_backends: int = 0

    @property
    def broken(self) -> list[str]:
        return [name for name, check in self.invariants.items() if not check.held]

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "failures": self.failures, "rps": round(self.rps, 1),
                "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
                "lost_updates": self.lost_updates,
                "invariants": {name: check.as_json() for name, check in self.invariants.items()},
                "detections": self.detections}


def verdict(entry_id: str, naive: Side, fixed: Side) -> str:
    if not naive.broken or entry_id not in naive.detections:
        return "not_reproduced"
    if fixed.broken or entry_id in fixed.detections:
        return "not_cured"
    return "cured"


def lab_ids() -> list[str]:
    """The anti-patterns the lab can run: catalogue entries that have a load profile."""
    return [entry.id for entry in load_catalogue() if (resources.files("pglab.loads") / f"{entry.id}.py").is_file()]


def migration(entry_id: str) -> list[str]:
    """The statements of the reference fix's `migrate` block; none when the fix is in code alone."""
    if not (resources.files("pglab.fixes") / f"{entry_id}.sql").is_file():
        return []
    return list(pglast.split(fix_blocks(entry_id).get("migrate", "")))


def background_migrations(entry_id: str) -> list[str]:
    """The other lab anti-patterns' migrations, which put them in their fixed state, minus every
    statement of this one's own fix: fixes share statements (several create the same index on
    messages), and the naive run must lack its whole cure, whoever else brings part of it."""
    own = {fingerprint(statement) for statement in migration(entry_id)}
    statements: list[str] = []
    for other in lab_ids():
        if other != entry_id:
            statements += [s for s in migration(other) if fingerprint(s) not in own and s not in statements]
    return statements


def apply_statements(dsn: str, statements: list[str]) -> None:
    """One statement at a time, in autocommit: CREATE INDEX CONCURRENTLY refuses a transaction."""
    if not statements:
        return
    with connect(dsn) as conn:
        for statement in statements:
            conn.execute(statement)
        for table in seed.TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def enable_statement_statistics(dsn: str) -> None:
    """The statement-level detectors read pg_stat_statements; where the server preloads it, make
    sure the view exists in this database. Elsewhere the detectors say so in their notes."""
    with connect(dsn) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        if row and "pg_stat_statements" in row[0]:
            with suppress(psycopg.errors.InsufficientPrivilege):  # not ours to create: diagnose notes it
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")


@dataclass
class LabRun:
    entry_id: str
    scale: seed.Scale
    duration: float
    workers: int = 0
    progress: Progress | None = None

    def sample(self, dsn: str) -> dict[str, Any]:
        with connect(dsn) as conn:
            row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
        return {"users": self.scale.users, "conversations": self.scale.conversations,
                "hot_conversations": self.scale.hot_conversations, "search_terms": seed.rare_words(50),
                "max_connections": int(row[0]) if row else 100}

    def limits(self) -> invariants.Limits:
        constants = profile_constants(self.entry_id)
        return invariants.Limits(slo_p99_ms=float(constants.get("SLO_P99_MS", invariants.Limits.slo_p99_ms)),
                                 error_budget=float(constants.get("ERROR_BUDGET", invariants.Limits.error_budget)))

    def prepare(self, dsn: str) -> None:
        """Seed, then put every other anti-pattern the lab knows in its fixed state."""
        task = self._task("seeding", total=1)
        seed.seed(dsn, self.scale, progress=lambda label, done, total: self._update(
            task, f"seeding {self.scale.name}: {label}", done, total))
        apply_statements(dsn, background_migrations(self.entry_id))
        enable_statement_statistics(dsn)

    def run_side(self, dsn: str, label: str, naive: frozenset[str]) -> Side:
        task = self._task(f"{label}: starting", total=LOCUST_START + self.duration)
        sample = self.sample(dsn)
        detections: set[str] = set()
        notes: list[str] = []
        with running_service(dsn, naive) as url, invariants.ActivitySampler(dsn) as sampler:
            before_stats = service_stats(url)
            snapshot = diagnose.take_snapshot(dsn)
            hold = (LOCUST_START + self.duration * 0.3, LOCUST_START + self.duration)
            last_look = [0.0]

            def during(elapsed: float) -> None:
                """Progress, and the detectors every DETECT_EVERY seconds of the hold: the gauges
                (sessions idle in transaction, connections in use) are only seen while they last."""
                phase = "hold" if elapsed >= hold[0] else "warm-up and ramp"
                backends = sampler.samples[-1][3] if sampler.samples else 0
                self._update(task, f"{label}: {phase}, {backends} backends", min(elapsed, hold[1]), hold[1])
                if elapsed >= hold[0] and elapsed - last_look[0] >= DETECT_EVERY:
                    last_look[0] = elapsed
                    _detect(dsn, snapshot, detections, notes)

            load = run_load(profile_path(self.entry_id), url, self.duration, sample, self.workers, during)
            _detect(dsn, snapshot, detections, notes)
            after_stats = service_stats(url)
            start, end = load.phase("hold")
            idle = sampler.longest_idle_in_transaction(start, end)
            backends = sampler.peak_backends(start, end)
        with connect(dsn) as conn:
            invariants.end_service_sessions(conn)
            lost = invariants.lost_updates(conn)
        hold_summary = load.hold()
        refused = after_stats["refused_connections"] - before_stats["refused_connections"]
        checks = invariants.evaluate(hold_summary, lost, idle, refused, self.limits())
        detections |= invariant_detections(checks)
        self._update(task, f"{label}: done", 1, 1)
        return Side(requests=hold_summary.requests, failures=hold_summary.failures, rps=hold_summary.rps,
                    p50_ms=hold_summary.p(0.5), p95_ms=hold_summary.p(0.95), p99_ms=hold_summary.p(0.99),
                    lost_updates=lost, invariants=checks, detections=sorted(detections), notes=notes,
                    errors=hold_summary.errors, peak_backends=backends)

    def run(self, dsn: str) -> tuple[Side, Side]:
        data = seed.lab_dsn(dsn)
        self.prepare(data)
        naive = self.run_side(data, "naive", frozenset({self.entry_id}) & frozenset(paths.available()))
        with connect(data) as conn:
            invariants.repair_accounts(conn)
        apply_statements(data, migration(self.entry_id))
        fixed = self.run_side(data, "fixed", frozenset())
        return naive, fixed

    def _task(self, description: str, total: float) -> TaskID | None:
        return self.progress.add_task(description, total=total) if self.progress else None

    def _update(self, task: TaskID | None, description: str, completed: float, total: float) -> None:
        if self.progress and task is not None:
            self.progress.update(task, description=description, completed=completed, total=total)


def invariant_detections(checks: dict[str, invariants.Check]) -> set[str]:
    """Entries whose runtime detector is a lab invariant (`RUNTIME_INVARIANT` in the entry's module,
    e.g. counter_race: no statistic sees a lost update) are detected when that invariant broke."""
    return {entry.id for entry in load_catalogue()
            if (name := getattr(entry.module, "RUNTIME_INVARIANT", None)) in checks and not checks[name].held}


def _detect(dsn: str, snapshot: Any, detections: set[str], notes: list[str]) -> bool:
    """Run the detectors once; False when they could not connect (a server out of connections)."""
    try:
        findings, found_notes = diagnose.run_detectors(dsn, before=snapshot)
    except UserError as error:
        if f"detectors: {error}" not in notes:
            notes.append(f"detectors: {error}")
        return False
    detections.update(found.id for found in findings)
    notes.extend(note for note in found_notes if note not in notes)
    return True


@contextmanager
def lab_server(dsn: str | None, allow_write: bool) -> Iterator[str]:
    if dsn:
        if not allow_write:
            raise UserError("the lab writes to the database it runs on (schema pglab_lab): "
                            "pass --allow-write to let it use " + redact(dsn))
        with connect(dsn):
            pass  # one clear line now if the server cannot be reached
        yield dsn
        return
    with EmbeddedPostgres(settings=LAB_SERVER_SETTINGS) as server:
        yield server.dsn()


def validated_request(entry_id: str, duration: float, workers: int) -> str:
    """The canonical id of a lab run's target, or a UserError before anything starts."""
    entry_id = find_entry(entry_id).id  # a code such as PGL001 works too
    if entry_id not in lab_ids():
        raise UserError(f"the lab has no load profile for {entry_id} yet; it runs {', '.join(lab_ids())}")
    if duration < 5:
        raise UserError("--duration must be at least 5 seconds (warm-up, ramp and hold share it)")
    if workers < 0:
        raise UserError("--workers must be 0 or more")
    return entry_id


def run_lab(entry_id: str, scale: str, duration: float, workers: int = 0, dsn: str | None = None,
            allow_write: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """The whole lab run; returns the JSON report, with the two `Side`s under "_sides"."""
    entry_id = validated_request(entry_id, duration, workers)
    run = LabRun(entry_id, seed.get_scale(scale), duration, workers, progress)
    with lab_server(dsn, allow_write) as server_dsn:
        naive, fixed = run.run(server_dsn)
    return {"id": entry_id, "scale": scale, "naive": naive.as_json(), "fixed": fixed.as_json(),
            "verdict": verdict(entry_id, naive, fixed), "_sides": (naive, fixed)}


def render(report: dict[str, Any], console: Console) -> None:
    naive, fixed = report["_sides"]
    table = Table(title=f"pglab lab run {report['id']} ({report['scale']})")
    for column in ("", "naive", "fixed"):
        table.add_column(column, justify="right" if column else "left")
    rows: list[tuple[str, Callable[[Side], str]]] = [
        ("requests (hold)", lambda s: f"{s.requests:,}"),
        ("throughput", lambda s: f"{s.rps:,.1f} req/s"),
        ("p50 / p95 / p99", lambda s: f"{s.p50_ms:,.0f} / {s.p95_ms:,.0f} / {s.p99_ms:,.0f} ms"),
        ("errors", lambda s: f"{s.failures:,} ({s.failures / s.requests:.1%})" if s.requests else "0"),
        ("lost updates (tokens)", lambda s: f"{s.lost_updates:,}"),
        ("peak backends", lambda s: str(s.peak_backends)),
    ]
    for name, cell in rows:
        table.add_row(name, cell(naive), cell(fixed))
    for name in naive.invariants:
        table.add_row(name, _check(naive.invariants[name]), _check(fixed.invariants[name]))
    table.add_row("detections", ", ".join(naive.detections) or "none", ", ".join(fixed.detections) or "none")
    console.print(table)
    colour = {"cured": "green", "not_reproduced": "yellow", "not_cured": "red"}[report["verdict"]]
    console.print(f"verdict: [bold {colour}]{report['verdict']}[/]")
    for label, side in (("naive", naive), ("fixed", fixed)):
        for message, count in sorted(side.errors.items(), key=lambda item: -item[1])[:3]:
            console.print(f"[dim]{label} error x{count}: {message}[/]")
        for note in side.notes[:3]:
            console.print(f"[dim]{label} note: {note}[/]")


def _check(check: invariants.Check) -> str:
    return f"{'[green]held' if check.held else '[red]broken'}[/] {check.value:g} (limit {check.limit:g})"


def cmd_run(args: argparse.Namespace) -> int:
    console = Console()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    began = time.perf_counter()
    validated_request(args.id, args.duration, args.workers)  # bad input fails before the progress display
    with progress:
        report = run_lab(args.id, args.scale, args.duration, args.workers, args.dsn, args.allow_write, progress)
    render(report, console)
    console.print(f"[dim]lab run took {time.perf_counter() - began:.0f} s[/]")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in report.items() if k != "_sides"}, indent=2) + "\n")
    return 0


def add_parser(commands: Any) -> None:
    lab = commands.add_parser("lab", help="show an anti-pattern hurting a service under load, then cured")
    actions = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="naive run, fix, fixed run, verdict")
    run.add_argument("id", metavar="ID", help="an anti-pattern id with a load profile, e.g. missing_index")
    run.add_argument("--scale", default="small", choices=tuple(seed.SCALES), help="data size (default small)")
    run.add_argument("--duration", type=float, default=30.0, help="seconds of load per run (default 30)")
    run.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    run.add_argument("--workers", type=int, default=0, help="Locust worker processes (default 0: one process)")
    run.add_argument("--dsn", default=os.environ.get("PGLAB_DSN"), help="use this server instead of the embedded one")
    run.add_argument("--allow-write", action="store_true", help="let the lab create schema pglab_lab on --dsn")
    run.set_defaults(handler=cmd_run)
