"""Run the real `pglab` command line in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys


def run_pglab(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pglab.lab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Bad input: a non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in expected:
        assert fragment in lines[0], lines[0]
