"""The state file of the server `pglab db start` runs: where it is, reading and writing it, and
the lock that makes "one `db start` at a time" true.

Kept apart from the command line because other commands (advise-index, the lab) ask whether a
DSN points at pglab's own server.

Why a lock: two `db start` at once used to both succeed, and the loser's state file replaced the
winner's. Now a running `db start` holds an exclusive `flock` on `db.lock` (beside `db.json`) for
its whole life; the kernel drops it when that process ends, however it ends, so "the lock is
free" means "no server is running" without trusting a pid. The lock file itself is never
deleted (deleting a lock file lets two processes lock two different files).

The directory is private (mode 0700, owned by the user): the state file holds the server's
password.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.leftovers import process_start_time


def state_dir() -> Path:
    return Path(os.environ.get("PGLAB_STATE_DIR") or Path(tempfile.gettempdir()) / f"pglab-{os.getuid()}")


def state_file() -> Path:
    return state_dir() / "db.json"


def private_dir(path: Path) -> Path:
    """Create `path` with mode 0700, or check that an existing one is ours and private. In a shared
    temp dir another user could have made it first, to read or replace what pglab writes there."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as error:
        raise UserError(f"cannot use {path} for pglab's state: {error.strerror}; set PGLAB_STATE_DIR") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UserError(f"{path} is not a directory owned by you; remove it or set PGLAB_STATE_DIR")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def read_state() -> dict[str, Any] | None:
    try:
        state = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(state: dict[str, Any]) -> None:
    path = private_dir(state_dir()) / "db.json"
    partial = path.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(json.dumps(state))
    partial.replace(path)  # never a half-written state file


def remove_state_of(pid: int) -> None:
    """Remove the state file only if it is still the one process `pid` wrote."""
    state = read_state()
    if state and state.get("pid") == pid:
        state_file().unlink(missing_ok=True)


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def acquire_server_lock(wait: float = 1.0) -> int | None:
    """The open, locked `db.lock` descriptor, or None when another `db start` holds it. Waits a
    little: a status check holds the lock for an instant while it clears a stale state file."""
    path = private_dir(state_dir()) / "db.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while not _try_lock(descriptor):
        if time.monotonic() >= deadline:
            os.close(descriptor)
            return None
        time.sleep(0.05)
    return descriptor


@contextlib.contextmanager
def _lock_if_free() -> Iterator[bool]:
    """Yields True while holding the lock if nobody held it, else False at once."""
    descriptor = acquire_server_lock(wait=0)
    try:
        yield descriptor is not None
    finally:
        if descriptor is not None:
            os.close(descriptor)


def running_state() -> dict[str, Any] | None:
    """The state of the running server, or None. A state file nobody holds the lock for is stale
    and removed (under the lock, so a server starting meanwhile cannot lose its fresh file)."""
    state = read_state()
    if state is None:
        return None
    with _lock_if_free() as free:
        if free:
            state_file().unlink(missing_ok=True)
            return None
    return state if is_db_start_process(state) else None


def is_db_start_process(state: dict[str, Any]) -> bool:
    """Whether the pid in `state` is still the `pglab db start` that wrote it: same start time
    (a reused pid has another) and a command line that is pglab's."""
    try:
        pid = int(state["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if state.get("pid_start") != process_start_time(pid):
        return False
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"pglab" in word for word in words) and b"db" in words and b"start" in words
