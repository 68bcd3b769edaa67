"""Issue 9, the embedded server's part: pglab knows its own servers by a secret they carry, other
local users cannot log in to them, and nothing is left behind or stopped by mistake when starts
race or processes are killed."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from conftest import embedded_only
from pglab.lab.postgres.identity import is_pglab_server
from pglab.lab.postgres.launcher import EmbeddedPostgres, cache_root, redact, resolve_bin_dir, usable_by_others
from pglab.lab.postgres.leftovers import owner_alive, owner_tag, process_start_time
from pglab.lab.postgres.state import acquire_server_lock, write_state
from pglab.lab.postgres.testdbs import TestServer, drop_dead_sessions_databases

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another OS account")
PSQL = "/usr/bin/psql"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PGLAB_STATE_DIR": str(tmp_path / "state"), **extra}


def _cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pglab.lab.cli", *args], capture_output=True, text=True,
                          env=_env(tmp_path, **extra), timeout=90)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pglab: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _wait(predicate: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _db_start_processes(state_dir: Path) -> list[int]:
    """Live `pglab db start` processes using `state_dir` (read from /proc: we are their parent's user)."""
    found = []
    marker = f"PGLAB_STATE_DIR={state_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"db" in words and b"start" in words and marker in environment \
                and process_start_time(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the server's OS account can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pglab-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cli_state(tmp_path: Path) -> Iterator[Path]:
    """A state directory of its own; whatever `db start` it ran is stopped afterwards."""
    yield tmp_path
    _cli(tmp_path, "db", "stop")
    for pid in _db_start_processes(tmp_path / "state"):
        os.kill(pid, signal.SIGTERM)


# --- point 3: identity -------------------------------------------------------------------------

FOREIGN = textwrap.dedent(
    """
    import json, sys, time
    from pglab.lab.postgres.launcher import EmbeddedPostgres
    server = EmbeddedPostgres(port=int(sys.argv[1]), settings={"listen_addresses": "127.0.0.2"}).start()
    print(json.dumps({"password": server.password}), flush=True)
    time.sleep(600)
    """
)


@embedded_only("starts servers of its own")
def test_another_server_on_the_same_port_is_not_pglabs() -> None:
    """Same port, another address, another cluster (started by another process, so its secret is
    not ours): not pglab's. The old port rule said it was."""
    with EmbeddedPostgres() as ours:
        foreign = subprocess.Popen([sys.executable, "-c", FOREIGN, str(ours.port)], stdout=subprocess.PIPE, text=True)
        try:
            assert foreign.stdout is not None
            password = json.loads(foreign.stdout.readline())["password"]
            with psycopg.connect(f"postgresql://postgres:{password}@127.0.0.2:{ours.port}/postgres") as other, \
                    psycopg.connect(ours.dsn(tcp=True)) as mine:
                assert other.info.port == mine.info.port
                assert is_pglab_server(mine)
                assert not is_pglab_server(other)
        finally:
            foreign.kill()
            foreign.wait()


def test_the_test_server_is_pglabs_only_when_pglab_started_it(pg_server: TestServer, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A state file naming the test server's port does not make an existing server pglab's."""
    port = int(pg_server.params.get("port") or 5432)
    monkeypatch.setenv("PGLAB_STATE_DIR", str(tmp_path))
    write_state({"pid": os.getpid(), "port": port, "instance": "0" * 32, "dsn": pg_server.dsn})
    with psycopg.connect(pg_server.dsn) as conn:
        assert is_pglab_server(conn) == (pg_server.embedded is not None)


@embedded_only("starts a server of its own")
def test_db_start_records_the_secret_so_other_processes_know_its_server(cli_state: Path) -> None:
    started = _cli(cli_state, "db", "start", "--detach")
    assert started.returncode == 0, started.stderr
    dsn = started.stdout.splitlines()[0].removeprefix("DSN=")
    state_file = cli_state / "state" / "db.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600, "the state file holds the password"
    assert stat.S_IMODE(state_file.parent.stat().st_mode) == 0o700
    os.environ["PGLAB_STATE_DIR"] = str(cli_state / "state")
    try:
        with psycopg.connect(dsn) as conn:
            assert is_pglab_server(conn)
    finally:
        del os.environ["PGLAB_STATE_DIR"]
    with psycopg.connect(dsn) as conn:
        assert not is_pglab_server(conn), "without the state file this process cannot know it"


# --- point 4: who can reach the embedded server ------------------------------------------------

def _psql_as_nobody(dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "nobody", "--", PSQL, "-w", "-X", "-At", "-c", "SELECT 1", dsn],
                          capture_output=True, text=True, timeout=30, cwd="/")


@embedded_only("starts a server of its own")
@as_root
@pytest.mark.skipif(not Path(PSQL).exists(), reason="needs psql for the other user")
def test_another_local_user_cannot_log_in_without_the_password() -> None:
    with EmbeddedPostgres() as server:
        over_tcp = _psql_as_nobody(f"postgresql://postgres@127.0.0.1:{server.port}/postgres")
        over_socket = _psql_as_nobody(f"postgresql://postgres@/postgres?host={server.socket_dir}&port={server.port}")
        with_password = _psql_as_nobody(server.dsn(tcp=True))
    assert over_tcp.returncode != 0 and "password" in over_tcp.stderr, over_tcp
    assert over_socket.returncode != 0 and "Permission denied" in over_socket.stderr, over_socket
    assert with_password.returncode == 0 and with_password.stdout.strip() == "1", with_password.stderr


@embedded_only("starts a server of its own")
@as_root
def test_root_runs_the_server_as_its_own_account_in_private_directories() -> None:
    with EmbeddedPostgres() as server:
        assert server.server_pid and server.base_dir
        uid = Path(f"/proc/{server.server_pid}").stat().st_uid
        account = pwd.getpwuid(uid).pw_name
        base_mode = stat.S_IMODE(server.base_dir.stat().st_mode)
        writable = [path for root in (server.base_dir, cache_root()) for path in [root, *root.rglob("*")]
                    if not path.is_symlink() and not stat.S_ISSOCK(path.lstat().st_mode)
                    and path.lstat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
    assert account == "pglab", f"the server runs as {account!r}, an account it may share"
    assert base_mode == 0o700
    assert writable == [], f"writable by others: {writable[:5]}"


@embedded_only("starts a server of its own")
def test_the_password_is_random_hidden_from_ps_and_redacted() -> None:
    with EmbeddedPostgres(password="a-very-visible-secret") as server:
        assert server.server_pid and server.keeper_pid
        command_lines = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in (server.keeper_pid, server.server_pid)]
        assert all(b"a-very-visible-secret" not in line for line in command_lines)
        assert all(server.instance.encode() not in line for line in command_lines)
        assert "a-very-visible-secret" not in redact(server.dsn(tcp=True))
    with EmbeddedPostgres() as first, EmbeddedPostgres() as second:
        assert first.password and second.password and first.password != second.password
        assert len(first.password) >= 24


# --- point 7: races, verified stops, leftovers -------------------------------------------------

@embedded_only("starts servers of its own")
def test_two_concurrent_detached_starts_exactly_one_wins(cli_state: Path) -> None:
    command = [sys.executable, "-m", "pglab.lab.cli", "db", "start", "--detach"]
    racers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env(cli_state)) for _ in range(2)]
    results = [(racer.wait(timeout=90), *racer.communicate()) for racer in racers]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser_stderr = next(err for code, _, err in results if code == 2)
    assert loser_stderr.count("\n") == 1 and ("already running" in loser_stderr or "starting" in loser_stderr)
    assert "['" not in loser_stderr
    assert _wait(lambda: len(_db_start_processes(cli_state / "state")) == 1), "exactly one server runs"
    assert _cli(cli_state, "db", "stop").returncode == 0
    assert _wait(lambda: _db_start_processes(cli_state / "state") == []), "nothing orphaned"


def test_db_stop_does_not_signal_a_pid_that_is_not_pglabs(tmp_path: Path) -> None:
    """A state file (ours, lock held) that names another process: `db stop` refuses."""
    victim = subprocess.Popen(["sleep", "60"])
    os.environ["PGLAB_STATE_DIR"] = str(tmp_path / "state")
    lock = acquire_server_lock()
    try:
        assert lock is not None
        write_state({"pid": victim.pid, "pid_start": process_start_time(victim.pid), "dsn": "postgresql://x@/y",
                     "socket_dsn": "postgresql://x@/y"})
        result = _cli(tmp_path, "db", "stop")
        time.sleep(0.3)
        assert victim.poll() is None, "db stop killed a process that is not pglab's"
        assert result.returncode in (1, 2)
    finally:
        del os.environ["PGLAB_STATE_DIR"]
        if lock is not None:
            os.close(lock)
        victim.kill()
        victim.wait()


@embedded_only("starts a server of its own")
def test_db_start_never_removes_a_newer_servers_state_file(cli_state: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "pglab.lab.cli", "db", "start"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env(cli_state))
    assert process.stdout is not None
    assert process.stdout.readline().startswith("pglab: PostgreSQL ready")
    state_file = cli_state / "state" / "db.json"
    newer = {"pid": 1, "dsn": "postgresql://newer@/x", "socket_dsn": "postgresql://newer@/x"}
    state_file.write_text(json.dumps(newer))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM, "SIGTERM is handled like Ctrl-C"
    assert json.loads(state_file.read_text()) == newer


@embedded_only("starts a server of its own")
def test_sigkill_of_the_keeper_leaves_no_data_directory(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a data root of its own, where no other start sweeps: the keeper's reaper removes it."""
    monkeypatch.setenv("PGLAB_DATA_ROOT", str(shared_dir))
    server = EmbeddedPostgres().start()
    try:
        assert server.keeper_pid and server.server_pid and server.base_dir
        base, postmaster = server.base_dir, server.server_pid
        os.kill(server.keeper_pid, signal.SIGKILL)
        assert _wait(lambda: process_start_time(postmaster) is None), "the postmaster outlived its keeper"
        assert _wait(lambda: not base.exists()), f"{base} left behind"
    finally:
        server.stop()


@embedded_only("starts a server of its own")
def test_start_sweeps_only_the_leftovers_of_dead_owners(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen(["sleep", "0.2"])
    dead_tag = owner_tag(dead.pid)
    dead.wait()
    assert not owner_alive(*map(int, dead_tag.split("-")))
    orphan = shared_dir / f"pglab-pg-{dead_tag}-abc"
    alive = shared_dir / f"pglab-pg-{owner_tag()}-abc"
    unknown = shared_dir / "pglab-pg-oldstyle"
    for path in (orphan, alive, unknown):
        (path / "data").mkdir(parents=True)
    monkeypatch.setenv("PGLAB_DATA_ROOT", str(shared_dir))
    with EmbeddedPostgres():
        pass
    assert not orphan.exists()
    assert alive.exists() and unknown.exists()


@embedded_only("starts servers of its own")
@as_root
def test_one_binary_copy_and_one_initdb_cache_per_binary_set(tmp_path: Path, shared_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = shared_dir / "cache"
    monkeypatch.setenv("PGLAB_CACHE_DIR", str(cache))
    for _ in range(3):
        with EmbeddedPostgres():
            pass
    entries = sorted(path.name.split("-")[0] for path in cache.iterdir())
    # The binaries are copied only when the server's account cannot reach them where they are.
    expected = ["initdb"] if usable_by_others(resolve_bin_dir(None)) else ["initdb", "pginstall"]
    assert entries == expected, entries
    assert len(list(next(cache.glob("initdb-*")).iterdir())) == 1
    (shared_dir / "data").mkdir()
    cleaned = _cli(tmp_path, "db", "clean", PGLAB_CACHE_DIR=str(cache), PGLAB_DATA_ROOT=str(shared_dir / "data"))
    assert cleaned.returncode == 0, cleaned.stderr
    assert not cache.exists()


KILLED_SESSION = textwrap.dedent(
    """
    import os, time
    from psycopg.conninfo import conninfo_to_dict
    from pglab.lab.postgres.testdbs import TestServer, cloned_database, template_database
    server = TestServer(dsn=os.environ["PGLAB_TEST_DSN"], embedded=None)
    with template_database(server) as template, cloned_database(server, template) as dsn:
        print(template, conninfo_to_dict(dsn)["dbname"], flush=True)
        time.sleep(600)
    """
)


def _database_exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (1,)


def test_a_killed_sessions_databases_are_swept_and_live_ones_kept(pg_server: TestServer, pg_template: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED_SESSION], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PGLAB_TEST_DSN": pg_server.dsn})
    assert child.stdout is not None
    template, clone = child.stdout.readline().split()
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert _database_exists(pg_server.dsn, template) and _database_exists(pg_server.dsn, clone)
    drop_dead_sessions_databases(pg_server.dsn)  # another session starting now may sweep them first: as good
    assert not _database_exists(pg_server.dsn, template) and not _database_exists(pg_server.dsn, clone)
    assert _database_exists(pg_server.dsn, pg_template), "a live session's template is kept"


TERMINATED_TEST = textwrap.dedent(
    """
    import time

    def test_waits(pg_dsn):
        print("DSN", pg_dsn, flush=True)
        time.sleep(600)
    """
)


def test_sigterm_of_a_test_session_drops_its_databases(pg_server: TestServer, tmp_path: Path) -> None:
    (tmp_path / "test_waits.py").write_text(TERMINATED_TEST)
    tests_dir = Path(__file__).parent
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_waits.py")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PGLAB_TEST_DSN": pg_server.dsn,
             "PYTHONPATH": os.pathsep.join(filter(None, [str(tests_dir), os.environ.get("PYTHONPATH")]))})
    assert child.stdout is not None
    line = ""
    while not line.startswith("DSN"):
        line = child.stdout.readline()
        assert line, "the child session ended before its test ran"
    clone = str(conninfo_to_dict(line.split(maxsplit=1)[1].strip())["dbname"])
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
    template = next(name for name in names if name.startswith("pglab_tmpl_") and f"_{child.pid}_" in name)
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=60)
    assert not _database_exists(pg_server.dsn, clone)
    assert not _database_exists(pg_server.dsn, template)


# --- slips of `db start` -----------------------------------------------------------------------

def test_bad_set_is_refused_before_anything_is_spawned(tmp_path: Path) -> None:
    """The state directory is unusable, so anything that went as far as spawning a server would
    complain about it first; the bad `--set` must be what is reported."""
    (tmp_path / "a-file").write_text("")
    result = _cli(tmp_path, "db", "start", "--detach", "--set", "no_equals_sign",
                  PGLAB_STATE_DIR=str(tmp_path / "a-file" / "state"))
    assert result.returncode == 2
    assert "NAME=VALUE" in _one_line_error(result)


@embedded_only("starts a server of its own")
def test_detached_start_up_error_is_one_plain_line(cli_state: Path) -> None:
    result = _cli(cli_state, "db", "start", "--detach", "--set", "shared_buffers=banana")
    assert result.returncode == 2
    line = _one_line_error(result)
    assert "['" not in line and "pglab: error: pglab: error:" not in line
    assert "shared_buffers" in line
