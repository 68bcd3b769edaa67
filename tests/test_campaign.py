"""`pglab lab campaign`: plans, and short campaigns on pglab's own server (embedded pass only).

The short plan has three trials: missing_index's load, a trial whose label names the wrong
anti-pattern (its load is ilike_scan's), then missing_index's load again. With the auto operator the
first trial's fix must still be in effect in the third (the service and database are never reset),
and the mislabelled trial must be diagnosed from the signals, not from its label. With no operator
the same plan keeps breaking.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cli import assert_one_line_error, run_pglab
from conftest import embedded_only
from pglab.lab.campaign.attempt import Sighting
from pglab.lab.campaign.operator import rank
from pglab.lab.campaign.plan import load_plan
from pglab.lab.core.catalogue import find_entry
from pglab.lab.trial.service import paths

SHORT_PLAN = """
duration: 8
trials:
  - {name: first, ids: [missing_index]}
  - {name: mislabelled, ids: [correlated_subquery], load: ilike_scan}
  - {name: again, ids: [missing_index]}
"""
TRIAL_FIELDS = {"name", "ids", "violated", "diagnosis", "true_cause_rank", "fix", "detect_s", "recover_s", "result"}


def test_the_default_plan_replays_the_articles_trials_in_order() -> None:
    plan = load_plan(None)
    assert [trial.name for trial in plan.trials][:4] == ["missing_index", "pool_exhaustion", "streaming_txn",
                                                         "fulltext_search"]
    assert len(plan.trials) == 18 and plan.trials[-1].name == "notification_serialize"  # the article's 18
    assert all(find_entry(entry_id).id == entry_id for trial in plan.trials for entry_id in trial.ids)


@pytest.mark.parametrize(("text", "message"), [
    ("trials: [", "not valid YAML"),
    ("duration: 8\n", "non-empty list `trials`"),
    ("trials:\n  - {name: x, ids: [no_such_thing]}\n", "unknown anti-pattern"),
    ("duration: 2\ntrials:\n  - {ids: [missing_index]}\n", "at least 5 seconds"),
    ("trials:\n  - {ids: [missing_index], load: nowhere}\n", "no load profile"),
])
def test_bad_plans_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    assert_one_line_error(run_pglab("lab", "campaign", "--plan", str(plan)), message)


def test_a_missing_plan_and_a_misplaced_option_are_one_line_errors(tmp_path: Path) -> None:
    assert_one_line_error(run_pglab("lab", "campaign", "--plan", str(tmp_path / "none.yaml")), "cannot read it")
    assert_one_line_error(run_pglab("lab", "campaign", "--workspaces", str(tmp_path)), "for --operator manual")
    assert_one_line_error(run_pglab("lab", "campaign", "--operator", "manual"), "needs --workspaces")


def _campaign(tmp_path: Path, operator: str) -> dict[str, object]:
    plan, report = tmp_path / "plan.yaml", tmp_path / f"{operator}.json"
    plan.write_text(SHORT_PLAN)
    result = run_pglab("lab", "campaign", "--plan", str(plan), "--operator", operator, "--json", str(report),
                       "--html", str(tmp_path / "campaign.html"), timeout=900)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert set(data) >= {"plan", "operator", "scale", "trials", "summary"}
    assert all(set(trial) >= TRIAL_FIELDS for trial in data["trials"])
    assert (tmp_path / "campaign.html").read_text().count("<script") >= 1
    return data


@embedded_only("campaigns run on pglab's own server")
def test_the_auto_operator_fixes_from_signals_and_fixes_stay(tmp_path: Path) -> None:
    data = _campaign(tmp_path, "auto")
    first, mislabelled, again = data["trials"]
    assert first["violated"] and first["result"] == "resolved", first
    assert any(fix.startswith("missing_index:") for fix in first["fix"]), first["fix"]
    assert mislabelled["violated"] and mislabelled["diagnosis"][0] == "ilike_scan", mislabelled
    assert mislabelled["true_cause_rank"] != 1  # scored against the (wrong) label it was never told
    assert mislabelled["result"] == "resolved"
    assert again["result"] == "immune" and not again["violated"], again  # trial 1's fix still in effect


@pytest.mark.load
@embedded_only("campaigns run on pglab's own server")
def test_without_an_operator_the_damage_stays(tmp_path: Path) -> None:
    data = _campaign(tmp_path, "none")
    assert [bool(trial["violated"]) for trial in data["trials"]] == [True, True, True]
    assert all(trial["result"] == "failed" and not trial["fix"] for trial in data["trials"])


def test_the_manual_operator_ships_the_workspace_a_student_changed(tmp_path: Path) -> None:
    from pglab.lab.campaign.operator import WorkspaceWatch
    from pglab.lab.classroom import workspace

    workspace.create("missing_index", tmp_path / "class" / "a", mystery=True)
    workspace.create("ilike_scan", tmp_path / "class" / "b", mystery=True)
    watch = WorkspaceWatch.start(tmp_path / "class")
    assert watch.wait_for_change(timeout=0.5) is None  # nothing changed yet
    (tmp_path / "class" / "b" / "migration.sql").write_text("CREATE INDEX ON messages (user_id);\n")
    shipment = watch.wait_for_change(timeout=5)
    assert shipment is not None and shipment.entry_id == "ilike_scan"
    assert shipment.ddl == ["CREATE INDEX ON messages (user_id)"]
    assert shipment.code == (tmp_path / "class" / "b" / "solution.py").resolve()
    assert watch.wait_for_change(timeout=0.5) is None  # seen once, shipped once


def test_a_symptom_many_entries_predict_ranks_behind_the_detectors_findings() -> None:
    """A broken invariant that several entries predict (slow answers) says little about which one
    is the cause, so a detector's own finding, even a warning seen later, ranks before it; one that a
    single entry predicts (lost updates) is as telling as an error finding."""
    predicted_by = Counter(name for entry_id in paths.available() for name in paths.predicted(entry_id))
    shared = max(predicted_by, key=lambda name: predicted_by[name])
    single = next((name for name, count in predicted_by.items() if count == 1), None)
    if single is None:
        pytest.skip("no invariant is predicted by one entry alone")
    sightings = {
        "generic": Sighting("generic", f"the {shared} invariant broke", "error", 1.0, symptom=shared),
        "found": Sighting("found", "a plan the detector read", "warning", 9.0),
        "specific": Sighting("specific", f"the {single} invariant broke", "error", 5.0, symptom=single),
    }
    assert rank(sightings, standing=set()) == ["specific", "found", "generic"]
