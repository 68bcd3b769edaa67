"""`pglab lab run`: the verdict's rules, bad input, Ctrl-C, and the eight anti-patterns cured live.

The live runs use pglab's own embedded server (a deliberately small max_connections, and
pg_stat_statements preloaded for the detectors), so they run in the embedded pass only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cli import assert_one_line_error, run_pglab
from conftest import embedded_only
from pglab.lab.cli import labcommand
from pglab.lab.cli.labcommand import Side, lab_ids, verdict
from pglab.lab.core.catalogue import find_entry
from pglab.lab.runtime.registry import detector_modules
from pglab.lab.trial.invariants import Check

LIVE_DURATION = "8"  # seconds of load per side: warm-up, ramp and a hold of 5.6 s


def _side(broken: bool, detections: list[str]) -> Side:
    checks = {"p99_under_slo": Check(not broken, 900 if broken else 20, 250), "no_lost_updates": Check(True, 0, 0)}
    return Side(requests=100, failures=0, rps=10, p50_ms=1, p95_ms=2, p99_ms=3, lost_updates=0,
                invariants=checks, detections=detections)


@pytest.mark.parametrize(("naive", "fixed", "expected"), [
    (_side(True, ["missing_index"]), _side(False, []), "cured"),
    (_side(True, ["missing_index"]), _side(False, ["missing_fk_index"]), "cured"),  # other ids do not count
    (_side(True, []), _side(False, []), "not_reproduced"),  # broken but the detector is silent
    (_side(False, ["missing_index"]), _side(False, []), "not_reproduced"),  # detected but nothing broke
    (_side(True, ["missing_index"]), _side(True, []), "not_cured"),
    (_side(True, ["missing_index"]), _side(False, ["missing_index"]), "not_cured"),
])
def test_verdict(naive: Side, fixed: Side, expected: str) -> None:
    assert verdict("missing_index", naive, fixed) == expected


def test_the_naive_run_lacks_its_whole_fix_even_where_other_fixes_share_it() -> None:
    own = labcommand.migration("missing_index")
    assert own, "missing_index's fix is a migration"
    background = labcommand.background_migrations("missing_index")
    assert not {statement.split()[-1] for statement in own} & {s.split()[-1] for s in background}
    assert labcommand.background_migrations("ilike_scan")  # the other fixes are applied


def test_bad_input_is_one_line() -> None:
    assert_one_line_error(run_pglab("lab", "run", "no_such_thing"), "unknown anti-pattern")
    assert_one_line_error(run_pglab("lab", "run", "missing_index", "--duration", "2"), "at least 5 seconds")
    assert_one_line_error(run_pglab("lab", "run", "missing_index", "--scale", "huge"), "invalid choice")
    result = run_pglab("lab", "run", "missing_index", "--dsn", "postgresql://postgres@127.0.0.1:1/postgres")
    assert_one_line_error(result, "--allow-write")


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@embedded_only("starts its own embedded server")
def test_ctrl_c_stops_service_locust_and_postgres() -> None:
    marker = f"PGLAB_TEST_MARKER={uuid.uuid4().hex}"
    name, value = marker.split("=")
    env = {**os.environ, name: value}
    run = subprocess.Popen([sys.executable, "-m", "pglab.lab.cli", "lab", "run", "pool_exhaustion", "--duration", "60"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_processes_with(marker)) < 4 and time.monotonic() < deadline:  # lab, keeper, service, locust
        time.sleep(0.5)
    assert len(_processes_with(marker)) >= 4, run.communicate(timeout=60)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    time.sleep(1)
    assert _processes_with(marker) == []  # the keeper and the server it started included


@embedded_only("needs pg_stat_statements preloaded and a small max_connections")
@pytest.mark.parametrize("entry_id", lab_ids())
def test_the_lab_cures(entry_id: str, tmp_path: Path) -> None:
    if entry_id not in detector_modules() and not hasattr(find_entry(entry_id).module, "RUNTIME_INVARIANT"):
        pytest.xfail(f"no runtime detector for {entry_id} yet: its verdict cannot be `cured`")
    report_path = tmp_path / "report.json"
    result = run_pglab("lab", "run", entry_id, "--duration", LIVE_DURATION, "--json", str(report_path), timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert set(report) == {"id", "scale", "naive", "fixed", "verdict"}
    assert set(report["naive"]) == {"requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "lost_updates",
                                    "invariants", "detections"}
    assert report["verdict"] == "cured", result.stdout
