"""`run_lab`: a whole lab run, and the report it returns (the same dict `--json FILE` writes).

The report keeps the first version's fields (`id`, `scale`, `naive`, `fixed`, `verdict`) and adds
what the renderers need to explain the run: the predicted invariants, the effect as a ratio,
whether the answers were equivalent (and, for a path whose naive answer is wrong, how the oracle
refuted it: `naive_answer_wrong`), the repeats and each repeat's figures, the reason for the
verdict, the fix (its DDL and the diff between the naive and fixed code), the lesson's summary,
and the other anti-patterns the detectors saw on the way ("also present").
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

from pglab.lab.core.catalogue import find_entry
from pglab.lab.core.errors import UserError
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.postgres.leftovers import terminate_as_interrupt
from pglab.lab.trial import baseline, machine, seed, verdict
from pglab.lab.trial.runner import LabRun, Progress
from pglab.lab.trial.server import enable_statement_statistics, lab_server, sweep_scratch
from pglab.lab.trial.service import paths
from pglab.lab.trial.verdict import Side


def validated_request(entry_id: str, duration: float, workers: int, repeats: int = 1) -> str:
    """The canonical id of a lab run's target, or a UserError before anything starts."""
    entry_id = find_entry(entry_id).id  # a code such as PGL001 works too
    if entry_id not in baseline.lab_ids():
        raise UserError(f"the lab has no load profile for {entry_id} yet; it runs {', '.join(baseline.lab_ids())}")
    if duration < 5:
        raise UserError("--duration must be at least 5 seconds (warm-up, ramp and hold share it)")
    if workers < 0:
        raise UserError("--workers must be 0 or more")
    if repeats < 1:
        raise UserError("--repeat must be 1 or more")
    return entry_id


def check_output_path(path: str | None, flag: str) -> None:
    """A report file must be writable before the run starts, not after minutes of load."""
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{flag} {path}: is a directory")
    if not target.parent.is_dir():
        raise UserError(f"{flag} {path}: no such directory {str(target.parent)!r}")
    existed = target.exists()
    try:
        with target.open("a"):
            pass
    except OSError as error:
        raise UserError(f"{flag} {path}: cannot write ({error.strerror})") from None
    if not existed:
        target.unlink()


def run_lab(entry_id: str, scale: str, duration: float, workers: int = 0, dsn: str | None = None,
            allow_write: bool = False, progress: Progress | None = None, repeats: int = 1, keep: bool = False,
            overrides: dict[str, Path] | None = None, fixed_migration: list[str] | None = None) -> dict[str, Any]:
    """The whole lab run; returns the report. SIGTERM stops it like Ctrl-C, with the same cleanup.
    `overrides` and `fixed_migration` put other code and DDL on the fixed side (a student's)."""
    entry_id = validated_request(entry_id, duration, workers, repeats)
    run = LabRun(entry_id, seed.get_scale(scale), duration, workers, progress, dict(overrides or {}),
                 fixed_migration=fixed_migration)
    sweep_scratch()
    notes: list[str] = []
    with terminate_as_interrupt(), lab_server(dsn, allow_write) as server_dsn:
        data = seed.lab_dsn(server_dsn)
        try:
            enable_statement_statistics(data, run.footprint)
            computer = machine.describe(data)
            naive, fixed = run.run(data, repeats)
        finally:
            if not keep:
                notes = run.footprint.remove(data)
    return build_report(run, naive, fixed, notes, computer)


def build_report(run: LabRun, naive: list[Side], fixed: list[Side], notes: list[str],
                 computer: dict[str, Any]) -> dict[str, Any]:
    entry_id = run.entry_id
    predicted = paths.predicted(entry_id) if entry_id in paths.available() else ()
    wrong = str(getattr(paths.module(entry_id), "NAIVE_ANSWER_WRONG", "")) if entry_id in paths.available() else ""
    judged = [verdict.judge(entry_id, predicted, a, b, wrong) for a, b in zip(naive, fixed, strict=True)]
    outcome, reason = verdict.overall(judged)
    runs = [{"side": label, "repeat": index, **side.as_json()}
            for index, (a, b) in enumerate(zip(naive, fixed, strict=True), start=1)
            for label, side in (("naive", a), ("fixed", b))]
    return {"id": entry_id, "scale": run.scale.name, "naive": verdict.median_side(naive),
            "fixed": verdict.median_side(fixed), "verdict": outcome, "predicted": list(predicted),
            "effect": verdict.effect(predicted, naive, fixed),
            "equivalent": all(not verdict.answers_check(a.answers, b.answers, wrong)[0]
                              for a, b in zip(naive, fixed, strict=True)),
            "naive_answer_wrong": verdict.wrong_answers(naive, fixed, wrong),
            "repeats": len(naive), "reason": reason, "fix": fix_of(entry_id, run.overrides.get(entry_id),
                                                                           run.own_migration()),
            "lesson": find_entry(entry_id).summary, "also_present": also_present(entry_id, naive, fixed),
            "runs": runs, "notes": notes, "machine": computer, **({"load": run.load} if run.load else {})}


def fix_of(entry_id: str, override: Path | None = None, ddl: list[str] | None = None) -> dict[str, Any]:
    """The fix that was applied: its DDL, and what changed between the naive and fixed code (the
    path's functions, and its SQL where the two blocks differ); "" when the fix is DDL alone."""
    diff: list[str] = []
    if entry_id in paths.available():
        source = paths.load_file(entry_id, override) if override else paths.module(entry_id)
        before, after = inspect.getsource(source.naive), inspect.getsource(source.fixed)
        if before.replace("naive", "fixed") != after:
            diff += difflib.unified_diff(before.splitlines(), after.splitlines(), "naive", "fixed", lineterm="")
    blocks = fix_blocks(entry_id)
    if blocks.get("naive", "").strip() != blocks.get("fixed", "").strip():
        diff += difflib.unified_diff(blocks.get("naive", "").splitlines(), blocks.get("fixed", "").splitlines(),
                                     f"fixes/{entry_id}.sql naive", f"fixes/{entry_id}.sql fixed", lineterm="")
    return {"ddl": baseline.migration(entry_id) if ddl is None else ddl, "code_diff": "\n".join(diff)}


def also_present(entry_id: str, naive: list[Side], fixed: list[Side]) -> list[dict[str, str]]:
    """Other ids the detectors saw, once per id and side, with their own one-line reason."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for label, sides in (("naive", naive), ("fixed", fixed)):
        for side in sides:
            for evidence in side.detector_evidence:
                if evidence["id"] != entry_id:
                    seen.setdefault((evidence["id"], label), {"id": evidence["id"], "side": label,
                                                               "message": evidence["message"]})
    return list(seen.values())
