"""`pglab diagnose` says what its counters cover in every text result, not only the clean one (a
finding over totals since the last statistics reset may be long fixed), and its --help explains
the baseline it keeps between runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_diagnose import seed_naive

from cli import run_pglab


@pytest.fixture(autouse=True)
def own_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def last_lines(stdout: str) -> list[str]:
    return stdout.strip().splitlines()[-2:]


def test_text_output_with_findings_states_the_window(pg_dsn: str) -> None:
    seed_naive(pg_dsn)
    first = run_pglab("diagnose", "--dsn", pg_dsn, "--no-explain")
    assert first.returncode == 1, first.stderr
    window, summary = last_lines(first.stdout)
    assert window.startswith("window: since the statistics began, ") and window.endswith(" s"), first.stdout
    assert summary.startswith("Found ")
    second = run_pglab("diagnose", "--dsn", pg_dsn, "--no-explain")  # the first run's baseline
    window, _ = last_lines(second.stdout)
    assert window.startswith("window: since pglab's previous run, "), second.stdout
    watched = run_pglab("diagnose", "--dsn", pg_dsn, "--no-explain", "--watch", "0.5")
    assert "window: over 0.5 s" in watched.stdout.splitlines(), watched.stdout


def test_help_explains_the_baseline_kept_between_runs() -> None:
    result = run_pglab("diagnose", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "$XDG_STATE_HOME/pglab/baseline-*.json" in text
    assert "deltas since pglab's previous run" in text and "the first run" in text
