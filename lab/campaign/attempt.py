"""One attempt of a trial: its load on top of the background load, the invariants, what the detectors saw.

A trial is judged like a side of a lab run (the hold phase's invariants, the detectors every
DETECT_EVERY seconds of the hold), but on a service and a database that carry everything earlier
trials did to them. The two loads run at once, each Locust in its own process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.runtime import diagnose
from pglab.lab.trial import invariants
from pglab.lab.trial.loadrun import LoadResult, profile_path, run_load
from pglab.lab.trial.runner import DETECT_EVERY, hold_checks, invariant_detections, profile_limits
from pglab.lab.trial.server import lab_connect
from pglab.lab.trial.service.process import service_stats

BACKGROUND = "background"  # the profile in loads/ that runs under every trial


@dataclass
class Sighting:
    """A detector's finding during an attempt: when it was first seen, how often, how bad."""

    id: str
    message: str
    severity: str
    first_s: float  # seconds since the trial began
    count: int = 1
    symptom: str = ""  # the lab invariant it was inferred from, when no detector saw it directly


@dataclass
class Attempt:
    checks: dict[str, invariants.Check]
    sightings: dict[str, Sighting]
    load: LoadResult
    started: float  # time.time() when its load began
    background_p99_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def violated(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check.held]


def run_attempt(url: str, dsn: str, load: str, duration: float, sample: dict[str, Any],
                sampler: invariants.ActivitySampler, trial_began: float,
                progress: Any = None) -> Attempt:
    """The trial's load and the background for `duration` seconds; detectors through the hold."""
    snapshot = diagnose.take_snapshot(dsn)
    sightings: dict[str, Sighting] = {}
    notes: list[str] = []
    background: list[LoadResult] = []
    thread = threading.Thread(target=lambda: background.append(
        run_load(profile_path(BACKGROUND), url, duration, sample)), name="pglab-background", daemon=True)
    before = service_stats(url)
    with lab_connect(dsn) as conn:  # the service is never reset: only this attempt's losses are its own
        lost_before = invariants.lost_updates(conn)
    hold_from = duration * 0.3  # `during` counts from the start of the load's shape
    last = [0.0]

    def during(elapsed: float) -> None:
        if progress:
            progress(elapsed, duration)
        if elapsed >= hold_from and elapsed - last[0] >= DETECT_EVERY:
            last[0] = elapsed
            _look(dsn, snapshot, sightings, notes, time.time() - trial_began)

    began = time.time()
    thread.start()
    result = run_load(profile_path(load), url, duration, sample, 0, during)
    thread.join(timeout=duration + 60)
    _look(dsn, snapshot, sightings, notes, time.time() - trial_began)
    start, end = result.phase("hold")
    with lab_connect(dsn) as conn:
        lost = max(0, invariants.lost_updates(conn) - lost_before)
    refused = service_stats(url)["refused_connections"] - before["refused_connections"]
    checks = hold_checks(result, lost, sampler.longest_idle_in_transaction(start, end), refused,
                         profile_limits(load), None)
    for entry_id, name in invariant_detections(checks).items():
        sightings.setdefault(entry_id, Sighting(entry_id, f"the {name} invariant broke", "error",
                                                time.time() - trial_began, symptom=name))
    p99 = background[0].hold().p(0.99) if background else 0.0
    return Attempt(checks, sightings, result, began, p99, notes)


def _look(dsn: str, snapshot: Any, sightings: dict[str, Sighting], notes: list[str], at: float) -> None:
    try:
        findings, found_notes = diagnose.run_detectors(dsn, before=snapshot)
    except UserError as error:
        notes.append(f"detectors: {error}")
        return
    for found in findings:
        seen = sightings.get(found.id)
        if seen is None:
            sightings[found.id] = Sighting(found.id, found.message, found.severity, round(at, 1))
        else:
            seen.count += 1
    notes.extend(note for note in found_notes if note not in notes)
