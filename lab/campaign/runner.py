"""The campaign: trials back to back against one service and one database, never reset.

It seeds once and starts the service with every naive code path in place; a trial applies its
entries' `setup` blocks (a wide payload, redundant indexes) when it begins, as the chaos it brings.
Each trial runs its load over the steady background; when an invariant breaks, the operator acts
(see operator.py) and the trial's load runs again to verify, until it holds or the operator has
nothing more to try. What was shipped stays shipped: fixes accumulate, and a later trial
may find the service already immune, as in the seed article.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pglab.lab.campaign import operator
from pglab.lab.campaign.attempt import Attempt, Sighting, run_attempt
from pglab.lab.campaign.plan import Plan, Trial
from pglab.lab.core.errors import UserError
from pglab.lab.postgres.leftovers import terminate_as_interrupt
from pglab.lab.runtime import diagnose
from pglab.lab.trial import baseline, invariants, seed
from pglab.lab.trial.runner import apply_statements, load_sample
from pglab.lab.trial.server import (
    Footprint,
    RunIdentity,
    enable_statement_statistics,
    lab_server,
    safe_dsn,
    sweep_scratch,
)
from pglab.lab.trial.service import paths
from pglab.lab.trial.service.process import running_service, ship_fix

Say = Callable[[str], None]
MANUAL_WAIT = 1800.0  # seconds a manual operator has to change a workspace before the trial fails


@dataclass
class Campaign:
    plan: Plan
    operator_name: str
    scale: seed.Scale
    say: Say = print
    workspaces: Path | None = None  # the manual operator's course pack
    identity: RunIdentity = field(default_factory=RunIdentity)
    footprint: Footprint = field(default_factory=Footprint)
    shipped: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)  # trial starts and fixes, by second
    began: float = 0.0
    set_up: set[str] = field(default_factory=set)  # ids whose `setup` block a trial has applied

    def run(self, dsn: str | None, allow_write: bool) -> list[dict[str, Any]]:
        if self.operator_name == "manual" and self.workspaces is None:
            raise UserError("--operator manual needs --workspaces DIR (the student's course pack)")
        watch = operator.WorkspaceWatch.start(self.workspaces) if self.workspaces else None
        sweep_scratch()
        with terminate_as_interrupt(), lab_server(dsn, allow_write) as server_dsn:
            data = seed.lab_dsn(server_dsn)
            try:
                enable_statement_statistics(data, self.footprint)
                return self._trials(data, watch)
            finally:
                self.footprint.remove(data)

    def _trials(self, dsn: str, watch: operator.WorkspaceWatch | None) -> list[dict[str, Any]]:
        self.say(f"seeding {self.scale.name} data")
        seed.seed(safe_dsn(dsn), self.scale)
        standing = {found.id for found in diagnose.run_detectors(dsn)[0]}
        token = secrets.token_hex(16)
        naive = frozenset(paths.available())
        with running_service(dsn, naive, application_name=self.identity.application_name,
                             control_token=token) as url, \
                invariants.ActivitySampler(dsn, self.identity.application_name) as sampler:
            self.began = time.time()
            sample = self._sample(dsn)
            return [self._trial(number, trial, url, dsn, token, sample, sampler, standing, watch)
                    for number, trial in enumerate(self.plan.trials, start=1)]

    def _trial(self, number: int, trial: Trial, url: str, dsn: str, token: str, sample: dict[str, Any],
               sampler: invariants.ActivitySampler, standing: set[str],
               watch: operator.WorkspaceWatch | None) -> dict[str, Any]:
        self._apply(dsn, [statement for entry_id in trial.ids if entry_id not in self.set_up
                          for statement in baseline.setup(entry_id)])
        self.set_up.update(trial.ids)
        began = time.time()
        self.markers.append({"t": round(began - self.began, 1), "kind": "trial", "label": trial.name})
        self.say(f"trial {number}/{len(self.plan.trials)} {trial.name}: load {trial.load}, {trial.duration:g} s")
        first = self._attempt(url, dsn, trial, sample, sampler, began)
        diagnosis = operator.rank(first.sightings, standing)
        record: dict[str, Any] = {
            "name": trial.name, "ids": list(trial.ids), "violated": first.violated,
            "diagnosis": diagnosis, "true_cause_rank": _rank_of(trial.ids, diagnosis) if first.violated else None,
            "fix": [], "detect_s": _detect_s(first.sightings, diagnosis), "recover_s": None,
            "invariants": {name: check.as_json() for name, check in first.checks.items()},
            "evidence": {seen.id: seen.message for seen in first.sightings.values()},
            "background_p99_ms": first.background_p99_ms, "attempts": 1}
        if not first.violated:
            record["result"] = "immune"
            self.say(f"  immune: every invariant held (p99 {first.load.hold().p(0.99):,.0f} ms)")
            return record
        self.say(f"  broken: {', '.join(_broken(first))}; suspects: {', '.join(diagnosis[:5]) or 'none'}")
        attempts = [first]
        for shipment in self._shipments(record, standing, watch, attempts):
            self._ship(url, dsn, token, shipment)
            record["fix"].append(shipment.describe())
            latest = self._attempt(url, dsn, trial, sample, sampler, began)
            attempts.append(latest)
            record["attempts"] += 1
            if not latest.violated:
                record["recover_s"] = round(time.time() - began, 1)
                record["result"] = "resolved"
                self.say(f"  resolved by {shipment.entry_id} after {record['recover_s']:g} s")
                return record
            self.say(f"  {shipment.entry_id} did not help: still {', '.join(_broken(latest))}")
        record["result"] = "failed"
        return record

    def _shipments(self, record: dict[str, Any], standing: set[str], watch: operator.WorkspaceWatch | None,
                   attempts: list[Attempt]) -> Iterator[operator.Shipment]:
        """What the operator ships, one at a time, until a verification holds. The auto operator
        ranks again after each attempt: a fix can uncover the next cause (a server out of
        connections hides a seq scan from the detectors); new suspects join the diagnosis after
        the ones already there, so the rank of the true cause counts the detours. When the latest
        attempt names no suspect left to fix (its symptom has no detector of its own, say), the
        next one of the diagnosis so far is tried."""
        if self.operator_name == "auto":
            for _ in range(operator.MAX_SUSPECTS):
                ranked = operator.rank(attempts[-1].sightings, standing)
                record["diagnosis"] += [entry_id for entry_id in ranked if entry_id not in record["diagnosis"]]
                record["true_cause_rank"] = _rank_of(tuple(record["ids"]), record["diagnosis"])
                suspects = [i for i in dict.fromkeys([*ranked, *record["diagnosis"]])
                            if i not in self.shipped and operator.fixable(i)]
                if not suspects:
                    return
                yield operator.reference_fix(suspects[0])
        elif self.operator_name == "manual" and watch is not None:
            self.say(f"  waiting for a change in a workspace under {watch.folder} (Ctrl-C ends the campaign)")
            shipment = watch.wait_for_change(MANUAL_WAIT)
            if shipment is not None:
                yield shipment

    def _ship(self, url: str, dsn: str, token: str, shipment: operator.Shipment) -> None:
        self._apply(dsn, shipment.ddl)
        if shipment.entry_id in paths.available():
            ship_fix(url, token, shipment.entry_id, shipment.code)
        self.shipped.append(shipment.entry_id)
        self.markers.append({"t": round(time.time() - self.began, 1), "kind": "fix", "label": shipment.entry_id})
        self.say(f"  shipped {shipment.describe()}")

    def _apply(self, dsn: str, statements: list[str]) -> None:
        apply_statements(dsn, statements, self.footprint)

    def _attempt(self, url: str, dsn: str, trial: Trial, sample: dict[str, Any],
                 sampler: invariants.ActivitySampler, began: float) -> Attempt:
        attempt = run_attempt(url, dsn, trial.load, trial.duration, sample, sampler, began)
        offset = attempt.started - self.began
        for point in attempt.load.timeline(1.0):
            self.timeline.append({"t": round(point["t"] + offset, 1), "trial": trial.name, "rps": point["rps"],
                                  "p99_ms": point["p99_ms"], "errors": point.get("errors", 0)})
        return attempt

    def _sample(self, dsn: str) -> dict[str, Any]:
        return {**load_sample(dsn, self.scale), "background_rate": self.plan.background_rate}


def _rank_of(ids: tuple[str, ...], diagnosis: list[str]) -> int | None:
    """1 for the first suspect; None when no id of the trial is among them."""
    ranks = [diagnosis.index(entry_id) + 1 for entry_id in ids if entry_id in diagnosis]
    return min(ranks) if ranks else None


def _detect_s(sightings: dict[str, Sighting], diagnosis: list[str]) -> float | None:
    return sightings[diagnosis[0]].first_s if diagnosis else None


def _broken(attempt: Attempt) -> list[str]:
    return [f"{name} ({attempt.checks[name].value:g}, limit {attempt.checks[name].limit:g})"
            for name in attempt.violated]
