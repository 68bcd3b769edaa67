"""One lab run: for each repeat, the naive side then the fixed side (ABAB), each from the same data.

The run seeds the chat data once, applies the entry's own `setup` block and the baseline (every
other entry's fix). Each side
restores the seeded rows (VACUUM ANALYZE included) and, on the fixed side only, applies the
entry's own migration; it starts the service with the entry's naive or fixed code path, asks the
probe requests, and runs the entry's Locust profile. Locust and the service start while the data
is restored (their imports take a core each for a second, the restore is the database's), and
Locust waits at its gate until the probes are answered. It judges the hold phase: invariants, and
what the runtime detectors report every DETECT_EVERY seconds of the hold and at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pglab.lab.core.catalogue import load_catalogue
from pglab.lab.core.errors import UserError
from pglab.lab.postgres.launcher import free_port
from pglab.lab.runtime import diagnose
from pglab.lab.trial import baseline, capacity, invariants, labschema, probes, seed
from pglab.lab.trial.loadrun import NEVER_SENT, LoadResult, Summary, profile_constants, profile_path, run_load
from pglab.lab.trial.server import (
    Footprint,
    RunIdentity,
    end_sessions,
    installed_extensions,
    lab_connect,
    safe_dsn,
)
from pglab.lab.trial.service import paths
from pglab.lab.trial.service.process import running_service, service_stats
from pglab.lab.trial.verdict import Side

DETECT_EVERY = 1.0  # seconds between two looks of the detectors at the live server during the hold
# A side's notes say when the hypervisor took this much CPU from the machine during its hold, on
# average: a tenth of a core on a 2-core machine is a twentieth of what the run measured it has.
STEAL_NOTED = 0.1
Progress = Callable[[str, float, float], None]  # (what, done, total)


@dataclass
class LabRun:
    entry_id: str
    scale: seed.Scale
    duration: float
    workers: int = 0
    progress: Progress | None = None
    overrides: dict[str, Path] = field(default_factory=dict)  # id -> a file replacing that path's code
    identity: RunIdentity = field(default_factory=RunIdentity)
    footprint: Footprint = field(default_factory=Footprint)
    fixed_migration: list[str] | None = None  # in place of the entry's own `migrate` block (a student's)
    load: dict[str, Any] = field(default_factory=dict)  # a measured load: the capacity and the offer
    _baseline_objects: labschema.Objects = field(default_factory=dict)
    _baseline_definitions: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.scale = paths.data_scale(self.entry_id, self.scale)

    def prepare(self, dsn: str) -> None:
        """Seed, apply the baseline (every other entry's fix) and, for a profile with a
        CAPACITY_PROBE, measure the load to offer: what every run of this entry starts from,
        graded or observed, each side after a `reset` (the probe leaves its fix and its writes)."""

        def seeded() -> None:
            seed.seed(safe_dsn(dsn), self.scale, progress=lambda label, done, total: self._say(
                f"seeding {self.scale.name}: {label}", done, total))
            self.apply(dsn, baseline.setup(self.entry_id) + baseline.background_migrations(self.entry_id))
            with lab_connect(dsn) as conn:
                self._baseline_objects = labschema.objects(conn)
                self._baseline_definitions = set(labschema.index_definitions(conn))

        self.load = self.measure_load(dsn, before=seeded)

    def reset(self, dsn: str) -> None:
        """Back to what `prepare` left: what a fixed side added to the schema (indexes, tables,
        triggers, functions) dropped, the seeded data restored and the baseline's indexes put back
        (a fix that drops indexes)."""
        with lab_connect(dsn) as conn:
            labschema.drop_added(conn, self._baseline_objects)
        seed.restore(safe_dsn(dsn), self.scale)
        with lab_connect(dsn) as conn:
            for definition in self._baseline_definitions - set(labschema.index_definitions(conn)):
                conn.execute(definition)

    def run(self, dsn: str, repeats: int) -> tuple[list[Side], list[Side]]:
        """Prepare once; then naive, fixed, naive, fixed... each side from the prepared state,
        and with the entry's own migration on the fixed side only."""
        self.prepare(dsn)
        naive: list[Side] = []
        fixed: list[Side] = []
        for repeat in range(1, repeats + 1):
            for label, sides, is_fixed in (("naive", naive, False), ("fixed", fixed, True)):
                sides.append(self.run_side(dsn, f"{label} {repeat}/{repeats}", fixed=is_fixed,
                                           restore=partial(self.restore_side, dsn, is_fixed)))
        return naive, fixed

    def restore_side(self, dsn: str, fixed: bool) -> None:
        """A side's starting point: the prepared state, and on the fixed side its own migration."""
        self.reset(dsn)
        if fixed:
            self.apply_own_migration(dsn)

    def own_migration(self) -> list[str]:
        """The fixed side's DDL: the reference fix's, or the one a grade was given."""
        return baseline.migration(self.entry_id) if self.fixed_migration is None else self.fixed_migration

    def apply_own_migration(self, dsn: str) -> None:
        """The fixed side's DDL. A given one (a student's) that fails is the student's error, said in
        one line, not the lab's."""
        try:
            self.apply(dsn, self.own_migration())
        except psycopg.Error as error:
            if self.fixed_migration is None:
                raise
            raise UserError(f"the migration failed: {str(error).strip().splitlines()[0]}") from None

    def apply(self, dsn: str, statements: list[str]) -> None:
        apply_statements(dsn, statements, self.footprint)

    def run_side(self, dsn: str, label: str, fixed: bool, restore: Callable[[], None] | None = None) -> Side:
        """One side under load. `restore()` (the side's data and DDL) runs while Locust and the
        service start, each a second of imports on a core of its own, so the three overlap; the
        service's sessions touch no table until the probes, which wait for all three."""
        naive_paths = frozenset() if fixed else self.naive_paths()
        detections: dict[str, dict[str, Any]] = {}
        notes: list[str] = []
        detector_timeline: list[dict[str, Any]] = []
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with ExitStack() as service, invariants.ActivitySampler(dsn, self.identity.application_name) as sampler:
            seen: dict[str, Any] = {}

            def before_load() -> None:
                """While Locust starts: the service started and the side restored, then the probes'
                answers, the service's counters and the statistics the detectors compare with."""
                if restore:
                    self._say(f"{label}: restoring the data", 0, 1)
                service.enter_context(running_service(
                    dsn, naive_paths, application_name=self.identity.application_name, overrides=self.overrides,
                    port=port, while_starting=restore))
                seen["indexes"] = index_definitions(dsn)
                seen["answers"] = probes.answers(url, dsn, self.entry_id) if self.entry_id in paths.available() else []
                seen["stats"] = service_stats(url)
                seen["snapshot"] = diagnose.take_snapshot(dsn)

            hold = (self.duration * 0.3, self.duration)  # in seconds of the load's shape
            last_look = [0.0]
            wal = invariants.WalMeter(dsn) if self.limits().wal_bytes_per_write is not None else None

            def during(elapsed: float) -> None:
                """Progress, and the detectors every DETECT_EVERY seconds of the hold: the gauges
                (sessions idle in transaction, connections in use) are only seen while they last."""
                if wal:
                    wal.sample()
                phase = "hold" if elapsed >= hold[0] else "warm-up and ramp"
                self._say(f"{label}: {phase}", min(elapsed, hold[1]), hold[1])
                if elapsed >= hold[0] and elapsed - last_look[0] >= DETECT_EVERY:
                    last_look[0] = elapsed
                    for found in _detect(dsn, seen["snapshot"], detections, notes):
                        detector_timeline.append({"t": round(elapsed, 1), "id": found})

            load = run_load(profile_path(self.entry_id), url, self.duration, self.sample(dsn), self.workers, during,
                            before=before_load)
            answers, before_stats, snapshot, indexes = seen["answers"], seen["stats"], seen["snapshot"], seen["indexes"]
            if wal:
                wal.sample()
            _detect(dsn, snapshot, detections, notes)
            after_stats = service_stats(url)
            start, end = load.phase("hold")
            idle = sampler.longest_idle_in_transaction(start, end)
            backends = sampler.peak_backends(start, end)
            stolen = sampler.stolen_cores(start, end)
        end_sessions(dsn, self.identity.application_name)
        with lab_connect(dsn) as conn:
            lost = invariants.lost_updates(conn)
        hold_summary = load.hold()
        refused = after_stats["refused_connections"] - before_stats["refused_connections"]
        limits = self.limits()
        checks = hold_checks(load, lost, idle, refused, limits, wal)
        if wal and wal.unavailable:
            notes.append("WAL per write not measured: this server's pg_stat_statements has no wal_bytes"
                         " (PostgreSQL 13+, preloaded and created in the database)")
        if stolen >= STEAL_NOTED:
            notes.append(f"the hypervisor took {stolen:.2f} cores from this machine during the hold (CPU"
                         " steal): this side ran on less machine than the run measured")
        for found, name in invariant_detections(checks).items():
            detections.setdefault(found, {"id": found, "subject": f"invariant {name}", "message":
                                          f"the lab's {name} invariant broke ({checks[name].value:g})"})
        self._say(f"{label}: done", 1, 1)
        return Side(requests=hold_summary.requests, failures=hold_summary.failures, rps=hold_summary.rps,
                    p50_ms=hold_summary.p(0.5), p95_ms=hold_summary.p(0.95),
                    p99_ms=predicted_p99(hold_summary, paths.endpoints(self.entry_id)),
                    lost_updates=lost, invariants=checks, detections=sorted(detections),
                    offered_rps=hold_summary.offered_rps, achieved_rps=hold_summary.achieved_rps,
                    answered_rps=hold_summary.answered_rps,
                    fixes_in_effect=baseline.fixes_in_effect(self.entry_id, fixed), indexes=indexes,
                    answers=answers,
                    detector_evidence=list(detections.values()), timeline=timeline(load, sampler),
                    detector_timeline=detector_timeline, notes=notes, errors=hold_summary.errors,
                    peak_backends=backends, sheds_load=limits.sheds_load,
                    shed=invariants.shed_requests(hold_summary, limits),
                    goodput_range=invariants.goodput_bounds(hold_summary, limits.slo_p99_ms),
                    endpoints=endpoint_figures(hold_summary), stolen_cores=stolen)

    def sample(self, dsn: str) -> dict[str, Any]:
        offered = {"offered_rps": self.load["offered_rps"]} if self.load else {}
        return {**load_sample(dsn, self.scale), **offered}

    def naive_paths(self) -> frozenset[str]:
        """The service's code paths to run naive on a naive side: this entry's, if it has one."""
        return frozenset({self.entry_id}) & frozenset(paths.available())

    def measure_load(self, dsn: str, before: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """For a profile that declares CAPACITY_PROBE (`capacity`): what the naive service (with
        OVERLOAD) or the reference fix (without) completes flat out here, and the rate both sides
        are then offered. The reference fix, not a student's: slow code must not lower its own load.
        The fix and what the probe wrote stay: every side starts with a `reset`. `before()` (the
        seeding) runs first, while the probe's service starts: it touches no table until asked."""
        constants = profile_constants(self.entry_id)
        probe, overload = constants.get("CAPACITY_PROBE"), constants.get("OVERLOAD")
        if not probe:
            before()
            return {}
        measured = "naive" if overload else "fixed"

        def ready() -> None:
            before()
            self._say(f"measuring the {measured} service's capacity", 0, 1)
            if not overload:
                self.apply(dsn, baseline.migration(self.entry_id))

        with running_service(dsn, self.naive_paths() if overload else frozenset(),
                             application_name=self.identity.application_name,
                             overrides=self.overrides if overload else {}, while_starting=ready) as url:
            requests = capacity.probe_requests(probe)
            rate = capacity.closed_loop_rate(url, requests)
        end_sessions(dsn, self.identity.application_name)
        if rate <= 0:  # offered as a share of nothing, the load would be a single user
            asked = ", ".join(sorted({f"{method} {path}" for method, path, _ in requests}))
            raise UserError(f"the {measured} service answered none of its capacity probe's requests ({asked})"
                            f" in {capacity.SECONDS:g} s, so the load to offer cannot be measured")
        factor = float(overload or capacity.FIXED_SHARE)
        return {"capacity_rps": round(rate, 1), "measured": measured,
                ("overload" if overload else "share"): factor, "offered_rps": round(factor * rate, 1)}

    def limits(self) -> invariants.Limits:
        return profile_limits(self.entry_id)

    def _say(self, what: str, done: float, total: float) -> None:
        if self.progress:
            self.progress(what, done, total)


def apply_statements(dsn: str, statements: list[str], footprint: Footprint) -> None:
    """Migrations one statement at a time (CREATE INDEX CONCURRENTLY refuses a transaction),
    noting the extensions they create, then ANALYZE."""
    with lab_connect(dsn) as conn:
        before = installed_extensions(conn)
        for statement in statements:
            conn.execute(statement)
        footprint.note_extensions(conn, before)
        for table in seed.TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def load_sample(dsn: str, scale: seed.Scale) -> dict[str, Any]:
    """What a load profile needs to know about the data and the server."""
    with lab_connect(dsn) as conn:
        row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
    return {"users": scale.users, "conversations": scale.conversations,
            "hot_conversations": scale.hot_conversations, "search_terms": seed.rare_words(50),
            "max_connections": int(row[0]) if row else 100}


def profile_limits(profile: str) -> invariants.Limits:
    """The invariants' limits a load profile declares (its SLO, error budget, ...)."""
    constants = profile_constants(profile)
    return invariants.Limits(slo_p99_ms=float(constants.get("SLO_P99_MS", invariants.Limits.slo_p99_ms)),
                             error_budget=float(constants.get("ERROR_BUDGET", invariants.Limits.error_budget)),
                             sheds_load=bool(constants.get("SHEDS_LOAD", False)),
                             wal_bytes_per_write=float(constants["WAL_BUDGET_PER_WRITE"])
                             if "WAL_BUDGET_PER_WRITE" in constants else None)


def hold_checks(load: LoadResult, lost: int, idle: float, refused: int, limits: invariants.Limits,
                wal: invariants.WalMeter | None) -> dict[str, invariants.Check]:
    """Every invariant, judged on the load's hold phase."""
    hold = load.hold()
    checks = invariants.evaluate(hold, lost, idle, refused, limits)
    if wal:
        checks.update(invariants.wal_per_write(hold, wal, *load.phase("hold"), limits))
    checks["goodput_within_slo"] = invariants.goodput(hold, limits)
    return checks


def index_definitions(dsn: str) -> list[str]:
    with lab_connect(dsn) as conn:
        return labschema.index_definitions(conn)


def predicted_p99(summary: Summary, names: tuple[str, ...]) -> float:
    """The worst p99 among the endpoints that run the entry's code (all of them when it names none),
    and the slots never sent, which were that code's requests too."""
    chosen = [name for name in (*(names or tuple(summary.endpoints)), NEVER_SENT) if name in summary.endpoints]
    if not chosen:
        return summary.p(0.99)
    return max(summary.endpoint_p(name, 0.99) for name in chosen)


def endpoint_figures(summary: Summary) -> dict[str, dict[str, float]]:
    """Per endpoint: its requests, its p99 to the end of the answer (a stream's last chunk) and to
    the first chunk (the same figure for answers that are not streamed)."""
    return {name: {"requests": endpoint["requests"], "p99_ms": summary.endpoint_p(name, 0.99),
                   "first_chunk_p99_ms": summary.endpoint_first_chunk_p(name, 0.99)}
            for name, endpoint in sorted(summary.endpoints.items())}


def timeline(load: LoadResult, sampler: invariants.ActivitySampler) -> list[dict[str, Any]]:
    """Per second: the load's figures, and the service's sessions by state."""
    states = sampler.per_second(load.started_at)
    points = []
    for row in load.timeline(1.0):
        second = int(row["t"])
        points.append({"t": row["t"], "rps": row["rps"], "offered_rps": row["offered_rps"], "requests": row["requests"],
                       "p50_ms": row["p50_ms"], "p95_ms": row["p95_ms"], "p99_ms": row["p99_ms"],
                       "errors": row.get("errors", row.get("failures", 0)),
                       **states.get(second, {"active": 0, "idle_in_transaction": 0, "waiting_on_locks": 0})})
    return points


def invariant_detections(checks: dict[str, invariants.Check]) -> dict[str, str]:
    """Entries whose runtime detector is a lab invariant (`RUNTIME_INVARIANT` in the entry's module:
    no statistic sees a lost update) are detected when that invariant broke: id -> invariant."""
    return {entry.id: name for entry in load_catalogue()
            if (name := getattr(entry.module, "RUNTIME_INVARIANT", None)) in checks and not checks[name].held}


def _detect(dsn: str, snapshot: Any, detections: dict[str, dict[str, Any]], notes: list[str]) -> list[str]:
    """Run the detectors once; returns the ids seen for the first time. A failure to connect (a
    server out of connections) becomes a note."""
    try:
        findings, found_notes = diagnose.run_detectors(dsn, before=snapshot)
    except UserError as error:
        if f"detectors: {error}" not in notes:
            notes.append(f"detectors: {error}")
        return []
    new = []
    for found in findings:
        if found.id not in detections:
            new.append(found.id)
            detections[found.id] = {"id": found.id, "message": found.message,
                                    "subject": str(found.evidence.get("subject", ""))}
    notes.extend(note for note in found_notes if note not in notes)
    return new
