"""`pglab db start|stop|status`: a throwaway server that outlives one command.

`db start` stays in the foreground holding the server (its keeper watches it); `db stop` finds it
through a small state file and sends it SIGTERM. With `--detach`, `db start` re-runs itself in a
new session and returns once the server is ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.launcher import EmbeddedPostgres, connect, redact
from pglab.lab.postgres.state import alive, read_state, running_state, state_file, write_state


def parse_settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise UserError(f"--set takes NAME=VALUE, got {pair!r}")
        settings[name.strip()] = value
    return settings


def cmd_start(args: argparse.Namespace) -> int:
    existing = running_state()
    if existing:
        raise UserError(f"a pglab server is already running (pid {existing['pid']}): {existing['dsn']}")
    if args.detach:
        return _start_detached(args)
    settings = parse_settings(args.set or [])
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with EmbeddedPostgres(settings=settings) as server:
        state = {"pid": os.getpid(), "dsn": server.dsn(tcp=True), "socket_dsn": server.dsn(),
                 "port": server.port, "server_pid": server.server_pid, "data_dir": str(server.base_dir),
                 "startup_seconds": round(server.startup_seconds, 3)}
        write_state(state)
        try:
            print(f"pglab: PostgreSQL ready in {server.startup_seconds:.2f} s", flush=True)
            print(f"DSN={state['dsn']}", flush=True)
            print(f"SOCKET_DSN={state['socket_dsn']}", flush=True)
            print("pglab: stop with `pglab db stop` or Ctrl-C", file=sys.stderr, flush=True)
            while not stop_requested and server.running:
                time.sleep(0.2)
        finally:
            state_file().unlink(missing_ok=True)
    print("pglab: server stopped and its data removed", file=sys.stderr)
    return 0


def _start_detached(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "pglab.lab.cli", "db", "start"]
    for setting in args.set or []:
        command += ["--set", setting]
    log = state_file().with_name("db-start.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = read_state()
        if state and state.get("pid") == child.pid:
            print(f"DSN={state['dsn']}")
            print(f"SOCKET_DSN={state['socket_dsn']}")
            return 0
        if child.poll() is not None:
            raise UserError(f"server failed to start: {log.read_text().strip().splitlines()[-1:]}")
        time.sleep(0.1)
    child.terminate()
    raise UserError("server did not become ready within 60 s")


def cmd_stop(args: argparse.Namespace) -> int:
    state = running_state()
    if state is None:
        print("pglab: no pglab server is running", file=sys.stderr)
        return 1
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        raise UserError(f"server process {pid} did not stop within 30 s")
    print(f"pglab: stopped the server of pid {pid}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.dsn:
        return _describe_server(args.dsn)
    state = running_state()
    if state is None:
        print("pglab: no pglab server is running")
        return 1
    print(f"pglab: running (pid {state['pid']})")
    print(f"DSN={state['dsn']}")
    return _describe_server(state["socket_dsn"])


def _describe_server(dsn: str) -> int:
    with connect(dsn) as conn:
        version, max_conn, preload = conn.execute(
            "SELECT current_setting('server_version'), current_setting('max_connections'),"
            " current_setting('shared_preload_libraries')"
        ).fetchone() or ("?", "?", "")
    print(f"server {redact(dsn)}: PostgreSQL {version}, max_connections={max_conn}, "
          f"preloaded: {preload or 'nothing'}")
    return 0


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="start, stop or inspect a throwaway PostgreSQL server")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start a throwaway server and print its DSN; runs until stopped")
    start.add_argument("--detach", action="store_true", help="return once ready; stop later with `pglab db stop`")
    start.add_argument("--set", action="append", metavar="NAME=VALUE", help="a server setting (repeatable)")
    start.set_defaults(handler=cmd_start)
    stop = actions.add_parser("stop", help="stop the server `pglab db start` started and remove its data")
    stop.set_defaults(handler=cmd_stop)
    status = actions.add_parser("status", help="is a pglab server running? With --dsn: check that server")
    status.add_argument("--dsn", default=os.environ.get("PGLAB_DSN"), help="a server to check (or PGLAB_DSN)")
    status.set_defaults(handler=cmd_status)
