"""The keeper: a small process that owns one throwaway PostgreSQL cluster.

Why a separate process: the cluster must be stopped and its data removed even when the process
that asked for it is killed with SIGKILL, which runs no cleanup code. The keeper reads its
standard input, a pipe whose only writer is the parent; when the parent exits for any reason
the kernel closes that pipe, the keeper sees end-of-file, and it stops the server and deletes
the data directory. The postmaster itself gets PR_SET_PDEATHSIG so that even a SIGKILLed keeper
takes the server with it, and a forked reaper removes the data directory in that case (and the
next start sweeps what a killed reaper left: see `pglab.lab.postgres.leftovers`).

Why it drops privileges: `initdb` and `postgres` refuse to run as root, and CI runs as root. A
keeper started as root runs the server as the OS account `pglab` (created as a system account
when missing), never `postgres` or `nobody`: an account shared with a system PostgreSQL or with
other daemons would give whoever controls the one the other's data.

Who can log in: the data directory, with the unix socket in it, is mode 0700 and owned by the
server's account, and local (socket) logins are trusted; TCP on 127.0.0.1 needs the random
password the launcher made (scram-sha-256), set after start-up from its SCRAM verifier so the
password itself never reaches the server's logs or statistics.

Protocol: the parent writes one JSON line of settings on standard input (see
`pglab.lab.postgres.launcher.EmbeddedPostgres`; stdin rather than argv, which `ps` shows to every
user, because it holds the password) and keeps the pipe open; the keeper prints one JSON line on
stdout, either `{"ready": true, ...}` or `{"ready": false, "error": "..."}`.
"""

from __future__ import annotations

import contextlib
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
from typing import Any

import psycopg  # imported before privileges are dropped: the venv may not be readable afterwards
from psycopg import sql

from pglab.lab.postgres.leftovers import owner_tag, process_start_time, set_parent_death_signal, sweep_dead_owners

SERVER_ACCOUNT = "pglab"
DATA_PREFIX = "pglab-pg-"


def _postmaster_preexec() -> None:
    os.setsid()
    set_parent_death_signal(signal.SIGQUIT)


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when the keeper is root (None: not root, run as ourselves)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVER_ACCOUNT)
    group = ["--gid", SERVER_ACCOUNT] if _group_exists(SERVER_ACCOUNT) else ["--user-group"]
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                           "--shell", "/usr/sbin/nologin", *group, SERVER_ACCOUNT],
                          capture_output=True, text=True)
    try:
        return pwd.getpwnam(SERVER_ACCOUNT)  # a concurrent keeper may have created it: as good
    except KeyError:
        raise RuntimeError(f"running as root and the OS account {SERVER_ACCOUNT!r} is missing and could not be "
                           f"created ({made.stderr.strip() or 'useradd failed'}); create it with "
                           f"`useradd --system {SERVER_ACCOUNT}`") from None


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _owned_private_dir(path: Path, account: pwd.struct_passwd | None) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(0o700)
    return path


def _drop_privileges(account: pwd.struct_passwd | None, base: Path) -> None:
    if account is None:
        return
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.environ["HOME"] = str(base)
    os.environ["USER"] = os.environ["LOGNAME"] = account.pw_name


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


def _wait_until_accepting(server: subprocess.Popen[bytes], config: dict, base: Path,
                          timeout: float) -> psycopg.Connection[Any]:
    """The socket exists before recovery ends; only a real login proves the server is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with code {server.returncode} during start-up")
        if (base / f".s.PGSQL.{config['port']}").exists():
            try:
                return psycopg.connect(host=str(base), port=config["port"], user=config["user"],
                                       dbname="postgres", connect_timeout=2, autocommit=True)
            except psycopg.OperationalError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"postgres did not accept connections within {timeout:.0f} s")


def _set_password(conn: psycopg.Connection[Any], user: str, password: str) -> None:
    """Until this runs, the role has no password and scram refuses every TCP login."""
    verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
    conn.execute("SET pg_stat_statements.track_utility = off")
    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier.decode())))


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
    _run([str(Path(config["bin_dir"]) / "initdb"), "-D", str(data), "-U", config["user"], "-E", "UTF8",
          "--no-locale", "--no-sync", "--no-instructions", "--auth-local=trust",
          f"--auth-host={config['host_auth']}"], log)


def _create_cluster(config: dict, initdb_dir: Path, data: Path, log: Path) -> None:
    """initdb once per binary set, role and host authentication, then copy: a copy of the 40 MB
    cluster is several times faster than initdb on a busy machine, and start-up time is what
    every command pays. The cache holds no secret: the password and the instance secret are
    added to each copy."""
    key = json.dumps([config["binary_key"], config["user"], config["host_auth"]])
    cache = initdb_dir / hashlib.sha256(key.encode()).hexdigest()[:12]
    if not (cache / "PG_VERSION").exists():
        sweep_dead_owners(initdb_dir, "staging-")
        staging = Path(tempfile.mkdtemp(prefix=f"staging-{owner_tag()}-", dir=initdb_dir))
        _initdb(config, staging / "data", log)
        # atomic: a concurrent start sees all or nothing; if another keeper won the race, its copy is as good
        with contextlib.suppress(OSError):
            os.rename(staging / "data", cache)
        shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cache, data, symlinks=True)
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"pglab.instance = '{config['instance']}'\n")  # hex: nothing to quote


def _server_args(config: dict, data: Path, base: Path) -> list[str]:
    bin_dir = Path(config["bin_dir"])
    args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(config["port"]), "-k", str(base)]
    settings = {"listen_addresses": "127.0.0.1", **config.get("settings", {})}
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    return args


def _start_reaper(base: Path) -> int:
    """Fork a process that removes `base` once the keeper is gone and the postmaster with it.
    The keeper's normal stop removes the data first; this covers a SIGKILLed keeper. Forked
    before privileges are dropped, so that it can remove `base` from a data root the server's
    account cannot write to. Returns the pipe end the keeper keeps open for its whole life and
    writes the postmaster's pid to."""
    read_end, write_end = os.pipe()
    if os.fork() != 0:
        os.close(read_end)
        return write_end
    try:  # the reaper: no output, no inherited handlers, no descriptors a caller might wait on
        os.close(write_end)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for descriptor in (0, 1, 2):
            os.dup2(null, descriptor)
        os.setsid()
        received = b""
        while chunk := os.read(read_end, 64):
            received += chunk
        server_pid = int(received or b"0")
        deadline = time.monotonic() + 30
        while server_pid and process_start_time(server_pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(base, ignore_errors=True)
    finally:
        os._exit(0)


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _prepare(config: dict) -> tuple[pwd.struct_passwd | None, Path, Path]:
    """As the invoking user: sweep orphans, make the data and cache directories, hand them over."""
    account = server_account()
    scratch = Path(config["scratch_root"])
    sweep_dead_owners(scratch, DATA_PREFIX)
    base = Path(tempfile.mkdtemp(prefix=f"{DATA_PREFIX}{owner_tag()}-", dir=scratch))
    _owned_private_dir(base, account)
    uid = account.pw_uid if account else os.getuid()
    initdb_dir = _owned_private_dir(Path(config["cache_dir"]) / f"initdb-{uid}", account)
    return account, base, initdb_dir


def main() -> int:
    config = json.loads(sys.stdin.readline())
    base: Path | None = None
    server: subprocess.Popen[bytes] | None = None
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        account, base, initdb_dir = _prepare(config)
        reaper = _start_reaper(base)
        _drop_privileges(account, base)
        data, log = base / "data", base / "postgres.log"
        _create_cluster(config, initdb_dir, data, log)
        with log.open("ab") as out:
            server = subprocess.Popen(_server_args(config, data, base), stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=_postmaster_preexec)
        with _wait_until_accepting(server, config, base, config.get("timeout", 30)) as conn:
            _set_password(conn, config["user"], config["password"])
        os.write(reaper, str(server.pid).encode())
        _emit({"ready": True, "pid": server.pid, "keeper_pid": os.getpid(), "base_dir": str(base)})
        while not stopping and server.poll() is None:
            readable, _, _ = select.select([sys.stdin], [], [], 0.5)
            if readable and not os.read(sys.stdin.fileno(), 4096):
                break  # parent closed the pipe or died
    except Exception as error:  # reported to the parent as data; the parent turns it into a UserError
        _emit({"ready": False, "error": str(error), "log_tail": _log_tail(base / "postgres.log") if base else ""})
        return 1
    finally:
        _stop(server)
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
