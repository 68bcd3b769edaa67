"""The verdict of a lab run: did *this* anti-pattern cause *this* harm, and did *its* fix remove it?

`cured` needs all of, in every repeat:
- the naive side broke an invariant the entry predicts, and its own detector saw it;
- the fixed side held every invariant, with that detector quiet;
- the fixed side did the work it was offered (goodput: successful requests a second, within
  GOODPUT_TOLERANCE for the edges of the measured window), so a fix that sheds load or fails fast
  cannot pass for a cure; and it was offered the load the naive side was (both sides run the same
  schedule; the measured offered rates differ only by window edges and late slots, within
  OFFERED_TOLERANCE, and a larger gap means the sides are not comparable);
- both sides gave the same answers to the same probe requests, and left the same rows behind; or,
  for a path that declares its naive answer wrong (NAIVE_ANSWER_WRONG, e.g. NOT IN over NULLs),
  they differ only where an independent oracle refutes the naive answer and confirms the fixed one.

A profile that declares SHEDS_LOAD (a deliberate overload, and a fix that answers the excess
with 503 and Retry-After) cannot complete the work it was offered, by design; for it the 503s are
shed, not errors, and "the same work" becomes: the fixed side's goodput (successful answers
within the SLO per second, counted at its floor) is above the naive side's (counted at its
ceiling), and at least CAPACITY_SHARE of the service's capacity, measured in the same run as the
most successful answers per second either side completed, late or not, counted when they
arrived (the naive side, working flat out, shows it). So shedding must raise the useful work, not
merely turn slow answers into fast errors, and a limit that sheds what the service could have
served is not a cure.

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
# A shedding fix must keep this share of the measured capacity as goodput: an admission limit sits a
# little below the point where latency takes off (that is how it keeps answers in time), but one
# that wastes more than a fifth of what the service can do is shedding work it could have done.
CAPACITY_SHARE = 0.8


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
    achieved_rps: float = 0.0  # requests sent in the hold and answered without failure
    answered_rps: float = 0.0  # successful answers that arrived during the hold, however late: the throughput
    fixes_in_effect: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)  # the lab tables' index definitions during the side
    answers: list[Any] = field(default_factory=list)  # the probes' statuses and bodies, then the rows digest
    detector_evidence: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    detector_timeline: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    peak_backends: int = 0
    sheds_load: bool = False  # the profile's fix sheds an overload's excess (SHEDS_LOAD)
    shed: int = 0  # requests answered 503 (load shed) when it does; counted apart from errors
    goodput_range: tuple[float, float] = (0.0, 0.0)  # successful answers within the SLO per second: floor, ceiling
    endpoints: dict[str, dict[str, float]] = field(default_factory=dict)  # per endpoint: requests, p99 to the end
    stolen_cores: float = 0.0  # CPU the hypervisor took from the machine during the hold (machine.stolen_seconds)

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
                "answered_rps": round(self.answered_rps, 1),
                "detector_evidence": self.detector_evidence, "timeline": self.timeline,
                "detector_timeline": self.detector_timeline, "peak_backends": self.peak_backends,
                "errors": self.errors, "notes": self.notes, "shed": self.shed,
                "goodput_rps": [round(value, 1) for value in self.goodput_range], "endpoints": self.endpoints,
                "stolen_cores": self.stolen_cores}


def judge(entry_id: str, predicted: tuple[str, ...], naive: Side, fixed: Side,
          naive_answer_wrong: str = "") -> tuple[str, str]:
    """(verdict, reason) for one repeat. A fix that changes the answers is no fix, whatever else;
    unless the path declares its naive answer wrong (`naive_answer_wrong`, the path's
    NAIVE_ANSWER_WRONG) and an independent oracle agrees: see `answers_check`."""
    problem, corrected = answers_check(naive.answers, fixed.answers, naive_answer_wrong)
    if problem:
        return "not_equivalent", f"the fixed side answered differently: {problem}"
    outcome, reason = _judge_work(entry_id, predicted, naive, fixed)
    if not corrected:
        return outcome, reason
    return outcome, (reason.replace("same answers", "the answers the oracle gives")
                     + f"; the naive answer was wrong ({'; '.join(corrected)})")


def answers_check(naive: list[Any], fixed: list[Any], naive_answer_wrong: str = "") -> tuple[str, list[str]]:
    """("", corrections) when the fixed side's answers stand, else (what is wrong, []).

    They stand when they equal the naive side's; or when the path declares that its naive answer
    is wrong and every answer that differs is one where the naive side's disagrees with the
    probe's oracle (SQL in the fix file's `oracle` block that computes the right answer another
    way: never the fix itself, else any "fix" would pass) and the fixed side's agrees with it.
    A fixed answer that disagrees with its oracle never stands, differing or not."""
    for answer in fixed:
        oracle = answer.get("oracle") if isinstance(answer, dict) else None
        if oracle and not oracle.get("right"):
            return (f"{answer.get('probe', '?')}: {_describe(answer)} fixed, but its oracle says"
                    f" {oracle.get('expected')} items"), []
    if len(naive) != len(fixed):
        return f"{len(naive)} answers naive, {len(fixed)} fixed", []
    corrected = []
    for ours, theirs in zip(naive, fixed, strict=True):
        if ours == theirs:
            continue
        if not (naive_answer_wrong and _corrected(ours, theirs)):
            hint = (" (the oracle sides with the fixed answer, but the path does not declare NAIVE_ANSWER_WRONG)"
                    if _corrected(ours, theirs) else "")
            return f"{ours.get('probe', '?')}: {_describe(ours)} naive, {_describe(theirs)} fixed{hint}", []
        corrected.append(f"{ours.get('probe', '?')}: {_items(ours)} naive, {_items(theirs)} fixed = oracle")
    return "", corrected


def wrong_answers(naive: list[Side], fixed: list[Side], naive_answer_wrong: str) -> dict[str, Any] | None:
    """For the report: why the path says its naive answer is wrong, and the probes (of the first
    repeat where any) whose naive answer the oracle refuted and whose fixed answer it confirmed."""
    for ours, theirs in zip(naive, fixed, strict=True):
        problem, corrected = answers_check(ours.answers, theirs.answers, naive_answer_wrong)
        if corrected and not problem:
            return {"why": naive_answer_wrong, "probes": corrected}
    return None


def _corrected(naive: dict[str, Any], fixed: dict[str, Any]) -> bool:
    """The naive body refuted by the oracle and the fixed one confirmed, with the same status; or
    the naive side gave no answer at all (a server error: on big data NOT IN can run into the
    statement timeout) where the fixed one is confirmed. The oracle still judges the fixed answer,
    so a fix gains nothing from the naive side failing."""
    ours, theirs = naive.get("oracle"), fixed.get("oracle")
    same_or_failed = naive.get("status") == fixed.get("status") or _server_error(naive)
    return bool(ours and theirs and not ours.get("right") and theirs.get("right") and same_or_failed)


def _server_error(answer: dict[str, Any]) -> bool:
    status = answer.get("status")
    return isinstance(status, int) and status >= 500


def _items(answer: dict[str, Any]) -> str:
    body = answer.get("body")
    return f"{len(body)} items" if isinstance(body, list) else f"HTTP {answer.get('status')}"


def _judge_work(entry_id: str, predicted: tuple[str, ...], naive: Side, fixed: Side) -> tuple[str, str]:
    """The verdict's rules after the answers: the predicted harm, the cure, the same work."""
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
    if fixed.sheds_load:
        shortfall = shedding_shortfall(naive, fixed)
        if shortfall:
            return "not_cured", shortfall
    elif fixed.achieved_rps < offered * (1 - GOODPUT_TOLERANCE):
        return "not_cured", (f"the fixed side completed {fixed.achieved_rps:.1f} successful req/s of the"
                             f" {offered:.1f} req/s it was offered")
    if naive.offered_rps and offered < naive.offered_rps * (1 - OFFERED_TOLERANCE):
        return "not_cured", (f"the fixed side was offered {offered:.1f} req/s, less than the naive side's"
                             f" {naive.offered_rps:.1f}: the two sides did not carry the same load")
    if fixed.sheds_load:
        return "cured", (f"{', '.join(harm)} broken by the naive side, held by the fix; same answers; the overload's"
                         f" excess shed, goodput {naive.goodput_range[1]:.1f} -> {fixed.goodput_range[0]:.1f} req/s")
    return "cured", f"{', '.join(harm)} broken by the naive side, held by the fix; same answers, same work"


def shedding_shortfall(naive: Side, fixed: Side) -> str:
    """Why a shedding fix did not raise the useful work, or "" when it did (see the module's rules)."""
    fixed_floor, naive_ceiling = fixed.goodput_range[0], naive.goodput_range[1]
    if fixed_floor <= naive_ceiling:
        return (f"the fixed side answered {fixed_floor:.1f} req/s within the SLO, no more than the naive side's"
                f" {naive_ceiling:.1f}: shedding did not raise the useful work")
    capacity = max(naive.answered_rps, fixed.answered_rps)
    if fixed_floor < CAPACITY_SHARE * capacity:
        return (f"the fixed side answered {fixed_floor:.1f} req/s within the SLO, less than {CAPACITY_SHARE:.0%} of"
                f" the {capacity:.1f} req/s the service completed in this run: it sheds work it could do")
    return ""


def overall(verdicts: list[tuple[str, str]]) -> tuple[str, str]:
    """`cured` only when every repeat is; else the first repeat that is not, with its number."""
    for index, (verdict, reason) in enumerate(verdicts, start=1):
        if verdict != "cured":
            where = f"repeat {index} of {len(verdicts)}: " if len(verdicts) > 1 else ""
            return verdict, where + reason
    return verdicts[0][0], verdicts[0][1] + (f" (in each of {len(verdicts)} repeats)" if len(verdicts) > 1 else "")


def effect(predicted: tuple[str, ...], naive: list[Side], fixed: list[Side]) -> dict[str, Any]:
    """The predicted invariant the naive side broke most often, as medians naive -> fixed, and the
    improvement: how many times better the fixed side did, in the direction the invariant counts
    (naive / fixed for a ceiling such as p99, fixed / naive for a floor such as goodput); None
    when the naive side's figure is divided by a zero (a ceiling's value gone to 0, a floor's risen from 0)."""
    def broken_count(name: str) -> int:
        return sum(name in side.broken for side in naive)

    metric = max(predicted, key=broken_count) if predicted else "p99_under_slo"
    before = statistics.median(side.invariants[metric].value for side in naive)
    after = statistics.median(side.invariants[metric].value for side in fixed)
    rises = naive[0].invariants[metric].higher_is_better
    worse, better = (before, after) if rises else (after, before)
    return {"metric": metric, "naive": before, "fixed": after, "better": "higher" if rises else "lower",
            "ratio": round(better / worse, 1) if worse else None}


def median_side(runs: list[Side]) -> dict[str, Any]:
    """The sides of every repeat as one: medians of the figures, [min, max] spreads, an invariant
    held only if it held in every repeat; the timelines are the first repeat's."""
    summary = runs[0].as_json()
    numbers = ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "lost_updates", "offered_rps",
               "achieved_rps", "peak_backends", "stolen_cores")
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


def _describe(answer: dict[str, Any]) -> str:
    if "rows" in answer:
        return f"rows {answer['rows']}"
    body = answer.get("body")
    size = f", {len(body)} items" if isinstance(body, list) else ""
    return f"HTTP {answer.get('status')}{size}"
