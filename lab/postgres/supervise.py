"""The server `pglab db start` holds until `pglab db stop`: starting it (in the foreground or
detached), stopping it, describing a server, and cleaning pglab's caches.

A `db start` stays in the foreground holding the server (its keeper watches it) and the state lock
(see `pglab.lab.postgres.state`), so only one runs at a time; `db stop` finds it through the state
file, checks that the pid there is still that `db start` and sends it SIGTERM. Detached, `db start`
re-runs itself in a new session and returns once the server is ready.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.keeper import DATA_PREFIX
from pglab.lab.postgres.launcher import EmbeddedPostgres, cache_root, connect, redact, scratch_root
from pglab.lab.postgres.leftovers import owner_alive, process_start_time, sweep_dead_owners, tag_pattern
from pglab.lab.postgres.state import (
    acquire_server_lock,
    is_db_start_process,
    private_dir,
    read_state,
    remove_state_of,
    running_state,
    state_dir,
    write_state,
)


def _already_running(state: dict[str, Any]) -> UserError:
    return UserError(f"a pglab server is already running (pid {state['pid']}): {redact(state['dsn'])}")


def start(settings: dict[str, str], settings_given: list[str], detach: bool) -> int:
    """Start a server with `settings` and hold it, or, with `detach`, start a `db start` in a new
    session (passing it `settings_given`, the NAME=VALUE pairs as typed) and return once it is ready."""
    existing = running_state()
    if existing:
        raise _already_running(existing)
    if detach:
        return _start_detached(settings_given)
    lock = acquire_server_lock()
    if lock is None:
        existing = running_state()
        if existing:
            raise _already_running(existing)
        raise UserError("another `pglab db start` is starting a server; see `pglab db status`")
    try:
        return _serve(settings)
    finally:
        os.close(lock)


def _serve(settings: dict[str, str]) -> int:
    """Run the server until SIGINT (Ctrl-C) or SIGTERM (`pglab db stop`); exit 128 + the signal."""
    received: list[int] = []

    def request_stop(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with EmbeddedPostgres(settings=settings) as server:
            _hold(server, received)
            died = not received and not server.running
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if died:
        raise UserError("the server stopped unexpectedly; its data was removed")
    print("pglab: server stopped and its data removed", file=sys.stderr)
    return 128 + received[0] if received else 0


def _hold(server: EmbeddedPostgres, received: list[int]) -> None:
    state = {"pid": os.getpid(), "pid_start": process_start_time(os.getpid()), "dsn": server.dsn(tcp=True),
             "socket_dsn": server.dsn(), "port": server.port, "server_pid": server.server_pid,
             "data_dir": str(server.base_dir), "instance": server.instance,
             "startup_seconds": round(server.startup_seconds, 3)}
    write_state(state)
    try:
        print(f"pglab: PostgreSQL ready in {server.startup_seconds:.2f} s", flush=True)
        print(f"DSN={state['dsn']}", flush=True)
        print(f"SOCKET_DSN={state['socket_dsn']}", flush=True)
        print("pglab: stop with `pglab db stop` or Ctrl-C", file=sys.stderr, flush=True)
        while not received and server.running:
            time.sleep(0.2)
    finally:
        remove_state_of(os.getpid())  # never a newer server's file


def _start_detached(settings_given: list[str]) -> int:
    command = [sys.executable, "-m", "pglab.lab.cli", "db", "start"]
    for setting in settings_given:
        command += ["--set", setting]
    # A log of its own per attempt (two racing starts must not read each other's lines); the
    # winner's becomes `db-start.log`.
    descriptor, name = tempfile.mkstemp(prefix="db-start-", suffix=".log", dir=private_dir(state_dir()))
    log = Path(name)
    with os.fdopen(descriptor, "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = read_state()
        if state and state.get("pid") == child.pid:
            log.replace(log.with_name("db-start.log"))
            print(f"DSN={state['dsn']}")
            print(f"SOCKET_DSN={state['socket_dsn']}")
            return 0
        if child.poll() is not None:
            error = _last_error(log)
            log.unlink(missing_ok=True)
            raise UserError(error or f"the server failed to start (exit {child.returncode})")
        time.sleep(0.1)
    child.terminate()
    raise UserError(f"server did not become ready within 60 s; see {log}")


def _last_error(log: Path) -> str:
    """The child's own one-line error, without its `pglab: error: ` prefix."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].removeprefix("pglab: error: ").strip() if lines else ""


def stop() -> int:
    """Stop the running `db start` and wait (up to 30 s) for it to remove its server; 1 if none runs."""
    state = running_state()
    if state is None:
        print("pglab: no pglab server is running", file=sys.stderr)
        return 1
    pid = int(state["pid"])
    _signal_verified(state, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while owner_alive(pid, state["pid_start"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if owner_alive(pid, state["pid_start"]):
        raise UserError(f"server process {pid} did not stop within 30 s")
    print(f"pglab: stopped the server of pid {pid}")
    return 0


def _signal_verified(state: dict[str, Any], signum: int) -> None:
    """Signal the `db start` of `state`, and only it: the pid is pinned with a pidfd first, then
    checked, so a pid reused in between cannot receive the signal."""
    pid = int(state["pid"])
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        if not is_db_start_process(state):
            raise UserError(f"pid {pid} in {state_dir()} is no longer pglab's `db start`; nothing was stopped")
        signal.pidfd_send_signal(handle, signum)
    finally:
        os.close(handle)


def status(dsn: str | None) -> int:
    """Describe the server at `dsn`, or else the running `db start`'s; 1 if there is none."""
    if dsn:
        return describe_server(dsn)
    state = running_state()
    if state is None:
        print("pglab: no pglab server is running")
        return 1
    print(f"pglab: running (pid {state['pid']})")
    print(f"DSN={state['dsn']}")
    return describe_server(state["socket_dsn"])


def describe_server(dsn: str) -> int:
    with connect(dsn) as conn:
        version, max_conn, preload = conn.execute(
            "SELECT current_setting('server_version'), current_setting('max_connections'),"
            " current_setting('shared_preload_libraries')"
        ).fetchone() or ("?", "?", "")
    print(f"server {redact(dsn)}: PostgreSQL {version}, max_connections={max_conn}, "
          f"preloaded: {preload or 'nothing'}")
    return 0


def clean() -> int:
    """Remove the caches (binary copies, initdb results) and data left by killed servers. Refuses
    while a pglab server runs: it may still load extension libraries from the cached binaries."""
    scratch = scratch_root()
    pattern = tag_pattern(DATA_PREFIX)
    swept = sweep_dead_owners(scratch, DATA_PREFIX)
    live = [entry.name for entry in scratch.glob(f"{DATA_PREFIX}*") if pattern.match(entry.name)]
    if live:
        raise UserError(f"{len(live)} pglab server(s) still running (data in {scratch}); stop them first")
    cache = cache_root()
    shutil.rmtree(cache)
    print(f"pglab: removed {cache} and {len(swept)} leftover data director{'y' if len(swept) == 1 else 'ies'}")
    return 0
