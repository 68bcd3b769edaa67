"""The verdict of a lab run: did *this* anti-pattern cause *this* harm, and did *its* fix remove it?

`cured` needs all of, in every repeat:
- the naive side broke an invariant the entry predicts, and its own detector saw it;
- the fixed side held every invariant, with that detector quiet;
- the fixed side did the work it was offered (goodput: successful requests a second, within
  GOODPUT_TOLERANCE for the edges of the measured window), so a fix that sheds load or fails fast
  cannot pass for a cure; and it was offered the load the naive side was (both sides run the same
  schedule; the measured offered rates differ only by window edges and late slots, within
  OFFERED_TOLERANCE, and a larger gap means the sides are not comparable);
- both sides gave the same answers to the same probe requests, and left the same rows behind.

Otherwise `not_reproduced` (the naive side did not show the predicted harm, or its detector stayed
silent), `not_equivalent` (the answers differ), or `not_cured`; the reason says which rule failed,
in words.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from pglab.lab.trial import invariants

VERDICTS = ("cured", "not_reproduced", "not_cured", "not_equivalent")
GOODPUT_TOLERANCE = 0.05  # the hold window's edges cut a few requests either way
# The same schedule, measured on two runs: the naive side's backlog of late slots and the window
# edges moved its measured offered rate by up to 8 % from the fixed side's on an idle machine.
OFFERED_TOLERANCE = 0.10


@dataclass
class Side:
    """One run of one side: the hold phase's figures, invariants, detections, and what it answered."""

    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float  # of the entry's predicted endpoints (all endpoints when it names none)
    lost_updates: int
    invariants: dict[str, invariants.Check]
    detections: list[str]
    offered_rps: float = 0.0  # what the load's schedule asked for
    achieved_rps: float = 0.0  # answered without failure: the goodput
    fixes_in_effect: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)  # the lab tables' index definitions during the side
    answers: list[Any] = field(default_factory=list)  # the probes' statuses and bodies, then the rows digest
    detector_evidence: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    detector_timeline: list[dict[str, Any]] = field(default_factory=list)
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
                "detections": self.detections, "fixes_in_effect": self.fixes_in_effect, "indexes": self.indexes,
                "offered_rps": round(self.offered_rps, 1), "achieved_rps": round(self.achieved_rps, 1),
                "detector_evidence": self.detector_evidence, "timeline": self.timeline,
                "detector_timeline": self.detector_timeline, "peak_backends": self.peak_backends,
                "errors": self.errors, "notes": self.notes}


def judge(entry_id: str, predicted: tuple[str, ...], naive: Side, fixed: Side) -> tuple[str, str]:
    """(verdict, reason) for one repeat. A fix that changes the answers is no fix, whatever else."""
    if naive.answers != fixed.answers:
        difference = _first_difference(naive.answers, fixed.answers)
        return "not_equivalent", f"the fixed side answered differently: {difference}"
    harm = [name for name in predicted if name in naive.broken]
    if not harm:
        broke = f"it broke {', '.join(naive.broken)} instead" if naive.broken else "it broke no invariant"
        return "not_reproduced", f"the naive side did not break a predicted invariant ({', '.join(predicted)}): {broke}"
    if entry_id not in naive.detections:
        return "not_reproduced", f"the naive side broke {', '.join(harm)} but {entry_id}'s detector stayed silent"
    if fixed.broken:
        checks = fixed.invariants
        return "not_cured", "the fixed side still breaks " + ", ".join(
            f"{name} ({checks[name].value:g}, limit {checks[name].limit:g})" for name in fixed.broken)
    if entry_id in fixed.detections:
        return "not_cured", f"{entry_id}'s detector still fires on the fixed side"
    offered = fixed.offered_rps or naive.offered_rps or naive.achieved_rps
    if fixed.achieved_rps < offered * (1 - GOODPUT_TOLERANCE):
        return "not_cured", (f"the fixed side completed {fixed.achieved_rps:.1f} successful req/s of the"
                             f" {offered:.1f} req/s it was offered")
    if naive.offered_rps and offered < naive.offered_rps * (1 - OFFERED_TOLERANCE):
        return "not_cured", (f"the fixed side was offered {offered:.1f} req/s, less than the naive side's"
                             f" {naive.offered_rps:.1f}: the two sides did not carry the same load")
    return "cured", f"{', '.join(harm)} broken by the naive side, held by the fix; same answers, same work"


def overall(verdicts: list[tuple[str, str]]) -> tuple[str, str]:
    """`cured` only when every repeat is; else the first repeat that is not, with its number."""
    for index, (verdict, reason) in enumerate(verdicts, start=1):
        if verdict != "cured":
            where = f"repeat {index} of {len(verdicts)}: " if len(verdicts) > 1 else ""
            return verdict, where + reason
    return verdicts[0][0], verdicts[0][1] + (f" (in each of {len(verdicts)} repeats)" if len(verdicts) > 1 else "")


def effect(predicted: tuple[str, ...], naive: list[Side], fixed: list[Side]) -> dict[str, Any]:
    """The predicted invariant the naive side broke most often, as medians naive -> fixed."""
    def broken_count(name: str) -> int:
        return sum(name in side.broken for side in naive)

    metric = max(predicted, key=broken_count) if predicted else "p99_under_slo"
    before = statistics.median(side.invariants[metric].value for side in naive)
    after = statistics.median(side.invariants[metric].value for side in fixed)
    return {"metric": metric, "naive": before, "fixed": after, "ratio": round(before / after, 1) if after else None}


def median_side(runs: list[Side]) -> dict[str, Any]:
    """The sides of every repeat as one: medians of the figures, [min, max] spreads, an invariant
    held only if it held in every repeat; the timelines are the first repeat's."""
    summary = runs[0].as_json()
    numbers = ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "lost_updates", "offered_rps",
               "achieved_rps", "peak_backends")
    spread: dict[str, list[float]] = {}
    for name in numbers:
        values = [float(run.as_json()[name]) for run in runs]
        summary[name] = statistics.median(values)
        spread[name] = [min(values), max(values)]
    summary["spread"] = spread
    for name in summary["invariants"]:
        checks = [run.invariants[name] for run in runs]
        summary["invariants"][name] = {"held": all(check.held for check in checks),
                                       "value": statistics.median(check.value for check in checks),
                                       "limit": checks[0].limit}
    summary["detections"] = sorted({found for run in runs for found in run.detections})
    return summary


def _first_difference(naive: list[Any], fixed: list[Any]) -> str:
    if len(naive) != len(fixed):
        return f"{len(naive)} answers naive, {len(fixed)} fixed"
    for ours, theirs in zip(naive, fixed, strict=True):
        if ours != theirs:
            return f"{ours.get('probe', '?')}: {_describe(ours)} naive, {_describe(theirs)} fixed"
    return "no difference"


def _describe(answer: dict[str, Any]) -> str:
    if "rows" in answer:
        return f"rows {answer['rows']}"
    body = answer.get("body")
    size = f", {len(body)} items" if isinstance(body, list) else ""
    return f"HTTP {answer.get('status')}{size}"
