"""Grading a workspace by measurement: the lab run, with the student's code and DDL as the fixed side.

The grade is `pglab lab run`'s verdict under the same rules (isolation, the predicted harm, the same
work, the same answers), so the student cannot pass with a fix the lab itself would reject: deleting
rows changes the rows digest, an empty list or a 503 changes the probe answers, shedding load fails
the goodput rule, a cache is caught because the probes ask again after the data changed. The
student's code runs only inside the service process; every figure comes from Locust and Postgres.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pglab.lab.classroom.workspace import Workspace
from pglab.lab.trial import report as lab_report
from pglab.lab.trial.runner import Progress

MAX_SCORE = 10.0


def grade(workspace: Workspace, scale: str, duration: float, repeats: int,
          progress: Progress | None = None, dsn: str | None = None, allow_write: bool = False) -> dict[str, Any]:
    """The lab report of the student's attempt, plus the exercise, the feedback and the checks."""
    workspace.check_code()
    migration = workspace.migration_statements()
    report = lab_report.run_lab(workspace.entry_id, scale, duration, dsn=dsn, allow_write=allow_write,
                                progress=progress, repeats=repeats,
                                overrides={workspace.entry_id: workspace.code.resolve()}, fixed_migration=migration)
    report["exercise"] = {"workspace": str(workspace.root), "mystery": workspace.mystery,
                          "hints_used": workspace.hints_used, "changed_files": workspace.changed()}
    report["checks"] = checks(report)
    report["score"] = score(report)
    report["feedback"] = feedback(report)
    return report


def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdict's rules one by one, each with whether the attempt passed it and why."""
    fixed, entry_id = report["fixed"], report["id"]
    broken = [name for name, check in fixed["invariants"].items() if not check["held"]]
    predicted_held = [name for name in report["predicted"] if name not in broken]
    return [
        {"name": "same answers and rows as the original code", "passed": bool(report["equivalent"]),
         "output": "" if report["equivalent"] else report["reason"]},
        {"name": "the predicted harm is gone", "passed": len(predicted_held) == len(report["predicted"]),
         "output": ", ".join(_describe(name, fixed["invariants"][name]) for name in report["predicted"])},
        {"name": "every other invariant holds", "passed": not [n for n in broken if n not in report["predicted"]],
         "output": ", ".join(_describe(name, fixed["invariants"][name]) for name in broken) or "all held"},
        {"name": "the detector no longer sees it", "passed": entry_id not in fixed["detections"],
         "output": "; ".join(e["message"] for e in fixed["detector_evidence"] if e["id"] == entry_id) or "quiet"},
        {"name": "the verdict", "passed": report["verdict"] == "cured", "output": f"{report['verdict']}: "
                                                                                   f"{report['reason']}"},
    ]


def score(report: dict[str, Any]) -> float:
    """Full marks only for `cured`; an answer that differs earns nothing, whatever it did to latency."""
    if report["verdict"] == "cured":
        return MAX_SCORE
    if not report["equivalent"]:
        return 0.0
    passed = sum(check["passed"] for check in report["checks"][:-1])
    return round(MAX_SCORE * 0.2 * passed, 1)


def feedback(report: dict[str, Any]) -> list[str]:
    """What to tell the student, in words: the verdict, then each rule that failed."""
    lines = [f"verdict: {report['verdict']} ({report['reason']})"]
    effect = report.get("effect") or {}
    if effect.get("metric"):
        lines.append(f"{effect['metric']}: {effect['naive']:g} with the original code, {effect['fixed']:g} with yours")
    lines += [f"not yet: {check['name']}: {check['output']}" for check in report["checks"][:-1] if not check["passed"]]
    if not report["exercise"]["changed_files"]:
        lines.append("you have not changed solution.py or migration.sql yet")
    return lines


def gradescope(report: dict[str, Any]) -> dict[str, Any]:
    """The results.json a Gradescope autograder writes: a score and one test per rule."""
    share = MAX_SCORE / (len(report["checks"]) - 1)
    tests = [{"name": check["name"], "score": share if check["passed"] and report["equivalent"] else 0.0,
              "max_score": share, "output": check["output"]} for check in report["checks"][:-1]]
    return {"score": report["score"], "max_score": MAX_SCORE, "output": "\n".join(report["feedback"]),
            "tests": tests}


SUMMARY_COLUMNS = ("workspace", "id", "verdict", "score", "metric", "original", "yours", "hints_used", "reason")


def summary_rows(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"workspace": r["exercise"]["workspace"], "id": r["id"], "verdict": r["verdict"], "score": r["score"],
             "metric": r["effect"].get("metric", ""), "original": r["effect"].get("naive", ""),
             "yours": r["effect"].get("fixed", ""), "hints_used": r["exercise"]["hints_used"], "reason": r["reason"]}
            for r in reports]


def summary_text(reports: list[dict[str, Any]], markdown: bool) -> str:
    """The teacher's view of several grades: CSV, or a Markdown table."""
    rows = summary_rows(reports)
    if not markdown:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]).replace("|", "\\|") for c in SUMMARY_COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def workspaces_in(paths: list[Path]) -> list[Path]:
    """The workspaces named, or found one level down in a folder that is not one itself (a class)."""
    found: list[Path] = []
    for path in paths:
        if (path / ".pglab").is_dir() or not path.is_dir():
            found.append(path)
        else:
            found += sorted(child for child in path.iterdir() if (child / ".pglab").is_dir())
    return found


def _describe(name: str, check: dict[str, Any]) -> str:
    state = "held" if check["held"] else "broken"
    return f"{name} {state} ({check['value']:g}, limit {check['limit']:g})"
