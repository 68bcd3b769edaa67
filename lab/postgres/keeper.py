"""The keeper: a small process that owns one throwaway PostgreSQL cluster.

Why a separate process: the cluster must be stopped and its data removed even when the process
that asked for it is killed with SIGKILL, which runs no cleanup code. The keeper reads its
standard input, a pipe whose only writer is the parent; when the parent exits for any reason
the kernel closes that pipe, the keeper sees end-of-file, and it stops the server and deletes
the data directory. The postmaster itself gets PR_SET_PDEATHSIG so that even a SIGKILLed keeper
takes the server with it.

Why it drops privileges: `initdb` and `postgres` refuse to run as root, and CI runs as root. A
keeper started as root gives the data directory to an unprivileged user and becomes that user
before it runs anything.

Protocol: started with one JSON argument (see `pglab.lab.postgres.launcher.EmbeddedPostgres`); prints one
JSON line on stdout, either `{"ready": true, ...}` or `{"ready": false, "error": "..."}`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg  # imported before privileges are dropped: the venv may not be readable afterwards

UNPRIVILEGED_USERS = ("pglab", "postgres", "nobody")
PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(signum: int) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except OSError:
        pass  # not Linux: the keeper's own stop path still applies


def _postmaster_preexec() -> None:
    os.setsid()
    _set_parent_death_signal(signal.SIGQUIT)


def _drop_privileges(base: Path) -> None:
    if os.geteuid() != 0:
        return
    for name in UNPRIVILEGED_USERS:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        break
    else:
        raise RuntimeError("running as root and no unprivileged user (pglab, postgres, nobody) exists")
    for path in [base, *base.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = str(base)
    os.environ["USER"] = os.environ["LOGNAME"] = user.pw_name


def _log_tail(log: Path, lines: int = 5) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _run(args: list[str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} exited with code {done.returncode}")


def _wait_until_accepting(server: subprocess.Popen[bytes], config: dict, base: Path, timeout: float) -> None:
    """The socket exists before recovery ends; only a real login proves the server is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with code {server.returncode} during start-up")
        if (base / f".s.PGSQL.{config['port']}").exists():
            try:
                psycopg.connect(host=str(base), port=config["port"], user=config["user"],
                                dbname="postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"postgres did not accept connections within {timeout:.0f} s")


def _stop(server: subprocess.Popen[bytes] | None) -> None:
    if server is None or server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)  # fast shutdown: roll back sessions, checkpoint, exit
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.send_signal(signal.SIGQUIT)  # immediate shutdown
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _initdb(config: dict, data: Path, log: Path) -> None:
    args = [str(Path(config["bin_dir"]) / "initdb"), "-D", str(data), "-U", config["user"], "-E", "UTF8",
            "--no-locale", "--no-sync", "--no-instructions", "--auth-local=trust",
            f"--auth-host={config.get('host_auth', 'trust')}"]
    if config.get("password"):
        pwfile = data.parent / "pwfile"
        pwfile.write_text(config["password"])
        args.append(f"--pwfile={pwfile}")
    _run(args, log)


def _create_cluster(config: dict, data: Path, log: Path) -> None:
    """initdb once per binary set and settings, then copy: a copy of the 40 MB cluster is several
    times faster than initdb on a busy machine, and start-up time is what every command pays."""
    if config.get("password"):
        _initdb(config, data, log)  # a password is test-only and must not be cached on disk
        return
    key = json.dumps([config["bin_dir"], config["user"], config.get("host_auth"), os.getuid()])
    cache = Path(config["cache_dir"]) / f"pglab-initdb-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not (cache / "PG_VERSION").exists():
        staging = Path(tempfile.mkdtemp(prefix="pglab-initdb-staging-", dir=config["cache_dir"]))
        _initdb(config, staging / "data", log)
        # atomic: a concurrent start sees all or nothing; if another keeper won the race, its copy is as good
        with contextlib.suppress(OSError):
            os.rename(staging / "data", cache)
        shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cache, data, symlinks=True)


def _server_args(config: dict, data: Path, base: Path) -> list[str]:
    bin_dir = Path(config["bin_dir"])
    args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(config["port"]), "-k", str(base)]
    settings = {"listen_addresses": "127.0.0.1", **config.get("settings", {})}
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    return args


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    config = json.loads(sys.argv[1])
    base = Path(config["base_dir"])
    data = base / "data"
    log = base / "postgres.log"
    server: subprocess.Popen[bytes] | None = None
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_stop)
    try:
        _drop_privileges(base)
        _create_cluster(config, data, log)
        with log.open("ab") as out:
            server = subprocess.Popen(_server_args(config, data, base), stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=_postmaster_preexec)
        _wait_until_accepting(server, config, base, config.get("timeout", 30))
        _emit({"ready": True, "pid": server.pid, "keeper_pid": os.getpid()})
        while not stopping and server.poll() is None:
            readable, _, _ = select.select([sys.stdin], [], [], 0.5)
            if readable and not os.read(sys.stdin.fileno(), 4096):
                break  # parent closed the pipe or died
    except Exception as error:  # reported to the parent as data; the parent turns it into a UserError
        _emit({"ready": False, "error": str(error), "log_tail": _log_tail(log)})
        return 1
    finally:
        _stop(server)
        if not config.get("keep_data"):
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
