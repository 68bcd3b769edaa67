"""The chat service's example suite (examples/chat_service) under the plugin: every naive code path
fails with the catalogue entry it embodies and the service line that sent the statement, every
fixed path passes. Run with `--runxfail` so the naive tests report their real outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pglab.lab.postgres.testdbs import TestServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chat_service"
SERVICE = Path(__file__).resolve().parents[1] / "lab" / "trial" / "service"


def test_naive_paths_fail_and_fixed_paths_pass(pg_server: TestServer, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--runxfail", "--pglab-report", str(report_path)],
        cwd=EXAMPLE, env={**os.environ, "PGLAB_TEST_DSN": pg_server.dsn},
        capture_output=True, text=True, timeout=300,
    )
    assert "5 failed, 5 passed" in done.stdout, done.stdout[-4000:]
    report = json.loads(report_path.read_text())
    found = {test["nodeid"].split("::")[1]: test["findings"] for test in report["tests"]}
    assert all(not findings for name, findings in found.items() if name.endswith("[fixed]")), found
    flagged = {name.split("[")[0]: {(f["id"], Path(f["path"]).name) for f in findings}
               for name, findings in found.items() if name.endswith("[naive]")}
    assert flagged == {
        "test_reading_a_conversation": {("n_plus_one", "n_plus_one.py")},
        "test_broadcast": {("fanout_loop", "fanout_loop.py")},
        "test_streamed_reply": {("streaming_txn", "streaming_txn.py")},
        "test_token_history": {("correlated_subquery", "correlated_subquery.py")},
        "test_listing_messages_at_production_scale": {("missing_index", "missing_index.py"),
                                                      ("sort_without_index", "missing_index.py")},
    }
    # the N+1 points at the line inside the loop that sends the per-row statement, then at its caller
    loop_line = _line(SERVICE / "paths" / "n_plus_one.py", "for ") + 1
    assert f"lab/trial/service/paths/n_plus_one.py:{loop_line} (in naive) <- " in done.stdout, done.stdout[-4000:]


def _line(path: Path, start: str) -> int:
    lines = path.read_text().splitlines()
    return next(number for number, text in enumerate(lines, 1) if text.strip().startswith(start))
