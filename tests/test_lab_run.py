"""`pglab lab run`: the verdict's rules, bad input, Ctrl-C and SIGTERM, and every anti-pattern of the
catalogue cured live under the lab's rules (isolation, predicted harm, same work, same answers); an
entry whose path declares a measured KNOWN_FINDING xfails with it when its verdict is the one the
finding explains (KNOWN_VERDICT, by default not_reproduced), and fails on any other. A run that is
not cured is measured again in repeats before the test says so (MEASURED_AGAIN says why).

Every live run is in the load tier (`pytest -m load`, the lab tier: all 24 took 19 minutes on a
2-core machine) but a handful: one per catalogue category, the first in catalogue order that the
lab can show cured at small scale. With 22 of them, the default tier's embedded pass took 30
minutes on that machine, over the 25 it has. A known finding can only confirm what the benchmark
measures, and a run that seeds more than the small scale (a LIVE_SCALE, a notification backlog)
takes half as long again: neither is ever in the handful.

The live runs use pglab's own embedded server (a deliberately small max_connections, and
pg_stat_statements preloaded for the detectors), so they run in the embedded pass only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from cli import assert_one_line_error, run_pglab
from conftest import embedded_only
from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.runtime.registry import detector_modules
from pglab.lab.trial.baseline import lab_ids
from pglab.lab.trial.invariants import Check
from pglab.lab.trial.loadrun import profile_constants
from pglab.lab.trial.seed import get_scale
from pglab.lab.trial.server import sweep_scratch
from pglab.lab.trial.service import paths
from pglab.lab.trial.verdict import Side, effect, judge, overall

LIVE_DURATION = "8"  # seconds of load per side: warm-up, ramp and a hold of 5.6 s
# One run is one measurement on a shared machine. In CI on 2026-12-02 correlated_subquery's fix, offered
# half of a capacity measured minutes before, answered at p50 28 ms / p99 320 ms against the 250 ms SLO
# where this machine measures 4-8 / 57-160 ms. A run that is not cured is measured again, and the
# lab's own rule then decides: cured in every one of CONFIRMING_REPEATS repeats, or the test fails;
# the first run's verdict is kept as a warning in the summary, never dropped.
MEASURED_AGAIN = ("not_cured", "not_reproduced")  # what a slow or a fast moment can make of a run
CONFIRMING_REPEATS = 2
SIDE_FIELDS = {"requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "lost_updates", "invariants",
               "detections", "fixes_in_effect", "offered_rps", "achieved_rps", "spread", "detector_evidence",
               "timeline", "detector_timeline", "endpoints", "stolen_cores"}
REPORT_FIELDS = {"id", "scale", "naive", "fixed", "verdict", "predicted", "effect", "equivalent", "repeats", "reason",
                 "fix", "lesson", "also_present", "runs"}
TIMELINE_FIELDS = {"t", "rps", "offered_rps", "requests", "p50_ms", "p95_ms", "p99_ms", "errors", "active",
                   "idle_in_transaction", "waiting_on_locks"}


def _side(broken: str | None = None, detections: tuple[str, ...] = (), achieved: float = 100.0,
          answers: tuple[str, ...] = ("same",), offered: float = 100.0) -> Side:
    checks = {name: Check(name != broken, 900 if name == broken else 0, 250)
              for name in ("p99_under_slo", "no_lost_updates", "error_rate_under_budget")}
    return Side(requests=1000, failures=0, rps=achieved, p50_ms=1, p95_ms=2, p99_ms=3, lost_updates=0,
                invariants=checks, detections=list(detections), offered_rps=offered, achieved_rps=achieved,
                answers=[{"probe": "GET /x", "status": 200, "body": answer} for answer in answers])


PREDICTED = ("p99_under_slo",)


@pytest.mark.parametrize(("naive", "fixed", "expected"), [
    (_side("p99_under_slo", ("missing_index",)), _side(), "cured"),
    (_side("p99_under_slo", ("missing_index",)), _side(detections=("missing_fk_index",)), "cured"),  # others' ids
    (_side("p99_under_slo"), _side(), "not_reproduced"),  # broken, but the detector is silent
    (_side(None, ("missing_index",)), _side(), "not_reproduced"),  # detected, but nothing broke
    (_side("no_lost_updates", ("missing_index",)), _side(), "not_reproduced"),  # broke what it does not predict
    (_side("p99_under_slo", ("missing_index",)), _side("p99_under_slo"), "not_cured"),
    (_side("p99_under_slo", ("missing_index",)), _side(detections=("missing_index",)), "not_cured"),
    (_side("p99_under_slo", ("missing_index",)), _side(achieved=60.0), "not_cured"),  # sheds: less work done
    (_side("p99_under_slo", ("missing_index",)), _side(offered=93.0, achieved=92.0), "cured"),  # window edges
    (_side("p99_under_slo", ("missing_index",)), _side(offered=60.0, achieved=60.0), "not_cured"),  # less load
    (_side("p99_under_slo", ("missing_index",)), _side(answers=("fewer",)), "not_equivalent"),
])
def test_verdict(naive: Side, fixed: Side, expected: str) -> None:
    outcome, reason = judge("missing_index", PREDICTED, naive, fixed)
    assert outcome == expected
    assert reason  # always in words


def _with(metric: str, value: float, higher_is_better: bool = False) -> Side:
    side = _side()
    side.invariants[metric] = Check(True, value, 0, higher_is_better=higher_is_better)
    return side


@pytest.mark.parametrize(("metric", "naive", "fixed", "rises", "better", "ratio"), [
    ("p99_under_slo", 4800, 320, False, "lower", 15.0),  # a ceiling: naive / fixed
    ("goodput_within_slo", 5.6, 33.2, True, "higher", 5.9),  # a floor: fixed / naive, never 0.2x
    ("goodput_within_slo", 33.2, 5.6, True, "higher", 0.2),  # a fix that lost goodput reads as worse
    ("goodput_within_slo", 0, 127, True, "higher", None),  # risen from nothing
    ("no_lost_updates", 1044, 0, False, "lower", None),  # gone to nothing
])
def test_the_effect_counts_in_the_metrics_direction(metric: str, naive: float, fixed: float, rises: bool,
                                                     better: str, ratio: float | None) -> None:
    found = effect((metric,), [_with(metric, naive, rises)], [_with(metric, fixed, rises)])
    assert found == {"metric": metric, "naive": naive, "fixed": fixed, "better": better, "ratio": ratio}


def test_the_effect_is_needed_in_every_repeat() -> None:
    cured = ("cured", "p99 broken by the naive side, held by the fix")
    assert overall([cured, cured])[0] == "cured"
    outcome, reason = overall([cured, ("not_reproduced", "it broke no invariant")])
    assert outcome == "not_reproduced" and reason.startswith("repeat 2 of 2")


def test_bad_input_is_one_line_and_immediate(tmp_path: Path) -> None:
    assert_one_line_error(run_pglab("lab", "run", "no_such_thing"), "unknown anti-pattern")
    assert_one_line_error(run_pglab("lab", "run", "missing_index", "--duration", "2"), "at least 5 seconds")
    assert_one_line_error(run_pglab("lab", "run", "missing_index", "--scale", "huge"), "invalid choice")
    assert_one_line_error(run_pglab("lab", "run", "missing_index", "--repeat", "0"), "--repeat")
    result = run_pglab("lab", "run", "missing_index", "--dsn", "postgresql://postgres@127.0.0.1:1/postgres")
    assert_one_line_error(result, "127.0.0.1")
    for flag in ("--json", "--html"):
        began = time.monotonic()
        result = run_pglab("lab", "run", "missing_index", flag, str(tmp_path / "no" / "such" / "report"))
        assert_one_line_error(result, flag, "no such directory")
        assert result.returncode == 2
        assert time.monotonic() - began < 15  # checked before any server, seeding or load
        assert_one_line_error(run_pglab("lab", "run", "missing_index", flag, str(tmp_path)), "is a directory")


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _as_from_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a job started in the background of a shell without job
    control (as a CI runner may start the suite) inherits SIGINT ignored, and Python keeps it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _scratch_of(pid: int) -> list[Path]:
    root = Path(tempfile.gettempdir())
    return [*root.glob(f"pglab-service-{pid}-*"), *root.glob(f"pglab-load-{pid}-*")]


def _lab_under_load(marker: str) -> tuple[subprocess.Popen[str], list[Path]]:
    """A `pglab lab run` whose processes carry `marker`, once its service and Locust are up; and
    their scratch directories."""
    name, value = marker.split("=")
    run = subprocess.Popen([sys.executable, "-m", "pglab.lab.cli", "lab", "run", "pool_exhaustion", "--duration", "60"],
                           env={**os.environ, name: value}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + 120
    while len(_processes_with(marker)) < 4 and time.monotonic() < deadline:  # lab, keeper, service, locust
        time.sleep(0.5)
    assert len(_processes_with(marker)) >= 4, run.communicate(timeout=60)
    # Locust's directory is made first, the service's just after, once Locust is spawned: wait for both.
    deadline = time.monotonic() + 30
    while len(scratch := _scratch_of(run.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(scratch) == 2, "the service's and the load's scratch directories are named after the lab run"
    return run, scratch


@embedded_only("starts its own embedded server")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_service_locust_and_postgres_and_leaves_no_scratch(stop_signal: int) -> None:
    marker = f"PGLAB_TEST_MARKER={uuid.uuid4().hex}"
    run, scratch = _lab_under_load(marker)
    run.send_signal(stop_signal)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr  # an interrupt Python swallowed, as in a fork handler
    time.sleep(1)
    assert _processes_with(marker) == []  # the keeper and the server it started included
    assert not any(path.exists() for path in scratch)


@embedded_only("starts its own embedded server")
def test_a_killed_lab_takes_service_locust_and_postgres_with_it() -> None:
    marker = f"PGLAB_TEST_MARKER={uuid.uuid4().hex}"
    run, scratch = _lab_under_load(marker)
    run.kill()  # SIGKILL: the lab runs no cleanup at all
    run.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = _processes_with(marker)
    for pid in survivors:  # ours by the marker: a failing run must not leave load running
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
    assert set(scratch) <= set(sweep_scratch()), "the next run sweeps what the killed one left"


def _long_or_known(entry_id: str) -> bool:
    """A known finding, or a run that seeds more than the small scale (50-80 s against 35-45)."""
    if entry_id not in paths.available():
        return False
    small = get_scale("small")
    return (hasattr(paths.module(entry_id), "KNOWN_FINDING") or paths.live_scale(entry_id) != "small"
            or paths.data_scale(entry_id, small) != small)


def _default_tier() -> set[str]:
    """The handful of live runs the default tier keeps: per catalogue category, the first entry
    (in catalogue order) the lab runs that is neither long nor a known finding."""
    lab = set(lab_ids())
    chosen: dict[str, str] = {}
    for entry in load_catalogue():
        if entry.id in lab and not _long_or_known(entry.id):
            chosen.setdefault(entry.category, entry.id)
    return set(chosen.values())


def _live_run(entry_id: str, tmp_path: Path, repeats: int) -> tuple[dict[str, Any], str]:
    """`pglab lab run` at the entry's live scale and duration; its report, checked for shape, and its output."""
    report_path = tmp_path / f"report-{repeats}.json"
    # no --scale: the run takes the one the entry's path says its harm needs
    duration = paths.live_duration(entry_id, float(LIVE_DURATION))  # longer where the path says why
    result = run_pglab("lab", "run", entry_id, "--duration", f"{duration:g}", "--repeat", str(repeats),
                       "--json", str(report_path), timeout=400 * repeats)
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["scale"] == paths.live_scale(entry_id)
    if "CAPACITY_PROBE" in profile_constants(entry_id):  # a multiple of a capacity measured before the run
        load = report["load"]
        factor = load["overload"] if load["measured"] == "naive" else load["share"]
        assert load["capacity_rps"] > 0
        assert load["offered_rps"] == pytest.approx(factor * load["capacity_rps"], abs=0.2)
        assert report["naive"]["offered_rps"] == pytest.approx(load["offered_rps"], rel=0.1)
    assert set(report) >= REPORT_FIELDS
    for side in ("naive", "fixed"):
        assert set(report[side]) >= SIDE_FIELDS
        assert report[side]["timeline"] and set(report[side]["timeline"][0]) >= TIMELINE_FIELDS
    assert entry_id not in report["naive"]["fixes_in_effect"] and entry_id in report["fixed"]["fixes_in_effect"]
    assert set(report["naive"]["fixes_in_effect"]) == set(lab_ids()) - {entry_id}  # every other fix, both sides
    return report, result.stdout


DEFAULT_TIER = _default_tier()


@embedded_only("needs pg_stat_statements preloaded and a small max_connections")
@pytest.mark.parametrize("entry_id", [
    pytest.param(entry_id, marks=[] if entry_id in DEFAULT_TIER else [pytest.mark.load]) for entry_id in lab_ids()])
def test_the_lab_cures(entry_id: str, tmp_path: Path) -> None:
    if entry_id not in detector_modules() and not hasattr(find_entry(entry_id).module, "RUNTIME_INVARIANT"):
        pytest.xfail(f"no runtime detector for {entry_id} yet: its verdict cannot be `cured`")
    module = paths.module(entry_id) if entry_id in paths.available() else None
    finding = getattr(module, "KNOWN_FINDING", None)
    report, stdout = _live_run(entry_id, tmp_path, repeats=1)
    if finding and report["verdict"] in paths.known_verdicts(entry_id):
        # A finding is about the harm's size: the anti-pattern itself must still have happened (a
        # load whose naive side never ran the path, say, would pass for one). That its fix ran is
        # `_live_run`'s `fixes_in_effect` check; where a detector module watches, it must also be quiet (an entry
        # detected by its own invariant breaks it whenever the fix falls short: that is the finding).
        assert entry_id in report["naive"]["detections"], f"the naive side's detector stayed quiet\n{stdout}"
        if entry_id in detector_modules():
            assert entry_id not in report["fixed"]["detections"], f"the fix did not run: detector fired\n{stdout}"
        pytest.xfail(f"{entry_id}: {finding} ({report['reason']})")  # the path's own measured finding
    if report["verdict"] in MEASURED_AGAIN:
        first = f"{report['verdict']} ({report['reason']})"
        report, stdout = _live_run(entry_id, tmp_path, repeats=CONFIRMING_REPEATS)
        warnings.warn(f"{entry_id}: one run was {first}; measured again in {CONFIRMING_REPEATS} repeats:"
                      f" {report['verdict']} ({report['reason']})", stacklevel=1)
    assert report["verdict"] == "cured", f"{report['reason']}\n{stdout}"
    assert report["equivalent"] is True and report["repeats"] in (1, CONFIRMING_REPEATS)
    assert report["effect"]["metric"] in report["predicted"]
