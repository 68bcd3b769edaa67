"""Starting the service as its own process for one lab run, and stopping it afterwards."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.launcher import free_port
from pglab.lab.trial.loadrun import last_lines, spawn, stop

START_TIMEOUT = 30.0


@contextmanager
def running_service(dsn: str, naive: frozenset[str], pool_size: int | None = None) -> Iterator[str]:
    """The service on 127.0.0.1 with `naive` code paths; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "pglab.lab.trial.service", "--dsn", dsn, "--port", str(port)]
    for entry_id in sorted(naive):
        command += ["--naive", entry_id]
    if pool_size is not None:
        command += ["--pool-size", str(pool_size)]
    with tempfile.TemporaryDirectory(prefix="pglab-service-") as scratch:
        log = Path(scratch) / "service.log"
        process = spawn(command, log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, url, log)
            yield url
        finally:
            stop(process)


def _wait_ready(process: Any, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"the lab service exited at start-up: {last_lines(log)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise UserError(f"the lab service did not answer within {START_TIMEOUT:.0f} s: {last_lines(log)}")


def service_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_lab/stats", timeout=10) as response:
        return dict(json.loads(response.read()))
