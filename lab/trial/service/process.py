"""Starting the service as its own process for one lab run, and stopping it afterwards."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.launcher import free_port
from pglab.lab.postgres.leftovers import owner_tag
from pglab.lab.trial.loadrun import last_lines, spawn, stop
from pglab.lab.trial.service.config import DSN_VARIABLE, TOKEN_VARIABLE

START_TIMEOUT = 30.0


@contextmanager
def running_service(dsn: str, naive: frozenset[str], pool_size: int | None = None,
                    application_name: str | None = None, overrides: dict[str, Path] | None = None,
                    control_token: str = "", port: int | None = None,
                    while_starting: Callable[[], None] | None = None) -> Iterator[str]:
    """The service on 127.0.0.1 with `naive` code paths (and `overrides`: id -> a file whose
    naive/fixed replace that path's); yields its base URL. `while_starting()` runs while the
    service imports (a second of CPU in its own process), before it is asked whether it is up.
    Its scratch directory is named after this process, so a later run can sweep it if this one is
    killed."""
    port = port or free_port()
    # The DSN carries the server's password: in the environment, which only this user can read,
    # not on the command line, which every local user sees in `ps`.
    args = ["--port", str(port)]
    for entry_id in sorted(naive):
        args += ["--naive", entry_id]
    for entry_id, path in sorted((overrides or {}).items()):
        args += ["--override", f"{entry_id}={path}"]
    if pool_size is not None:
        args += ["--pool-size", str(pool_size)]
    if application_name:
        args += ["--application-name", application_name]
    with tempfile.TemporaryDirectory(prefix=f"pglab-service-{owner_tag()}-") as scratch:
        log = Path(scratch) / "service.log"
        process = spawn("pglab.lab.trial.service", args, log, env={DSN_VARIABLE: dsn, TOKEN_VARIABLE: control_token})
        url = f"http://127.0.0.1:{port}"
        try:
            if while_starting:
                while_starting()
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


def ship_fix(url: str, token: str, entry_id: str, file: Path | None = None) -> None:
    """Tell the running service to run `entry_id`'s fixed path (or `file`'s code) from now on."""
    body = json.dumps({"file": str(file)} if file else {}).encode()
    request = urllib.request.Request(f"{url}/_lab/fix/{entry_id}", data=body, method="POST",
                                     headers={"x-pglab-token": token, "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def service_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_lab/stats", timeout=10) as response:
        return dict(json.loads(response.read()))
