"""Leftovers of dead owners: names that say who made them, and a sweep that removes the orphans.

Why: a process killed with SIGKILL runs no cleanup code, so whatever it made (a data directory,
a test database) stays. Its successor cannot tell an orphan from the live work of a neighbour
unless the name says who made it. So pglab names such things `<prefix><pid>-<start>...`: the
owner's pid and its start time (clock ticks since boot, from /proc), which together name one
process for the life of the machine even when the pid is reused. A sweep removes what belongs to
owners that are gone and leaves everything else, including names it does not understand.

`sweep_dead_owners` is generic: any subsystem that leaves directories or files in a shared place
can name them with `owner_tag()` and sweep them at its own start.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signum: int) -> None:
    """The kernel sends `signum` to this process when its parent exits, however the parent ends."""
    with suppress(OSError, AttributeError):  # not Linux: the parent's own stop path still applies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def process_start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return int(fields[19]) if fields[0] != "Z" else None  # field 22 overall; a zombie is gone


def owner_tag(pid: int | None = None) -> str:
    """`<pid>-<start>` for `pid` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{process_start_time(pid) or 0}"


def owner_alive(pid: int, start: int) -> bool:
    """Whether the process that made a leftover still runs (the same process, not a reused pid)."""
    return process_start_time(pid) == start


def tag_pattern(prefix: str, separator: str = "-") -> re.Pattern[str]:
    """Matches `<prefix><pid><sep><start>` and anything after a further separator."""
    sep = re.escape(separator)
    return re.compile(rf"^{re.escape(prefix)}(?P<pid>\d+){sep}(?P<start>\d+)(?:{sep}|$)")


def dead_owner(name: str, pattern: re.Pattern[str]) -> bool:
    """True only for a name in the pattern whose owner is gone; unknown names are never dead."""
    found = pattern.match(name)
    return found is not None and not owner_alive(int(found["pid"]), int(found["start"]))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_dead_owners(root: Path, prefix: str, remove: Callable[[Path], None] = _remove) -> list[Path]:
    """Remove the entries of `root` named `<prefix><pid>-<start>...` whose owner is gone."""
    pattern = tag_pattern(prefix)
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    swept = [entry for entry in entries if dead_owner(entry.name, pattern)]
    for entry in swept:
        remove(entry)
    return swept


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt like Ctrl-C, so the same cleanup runs
    (a plain SIGTERM would end the process without running `finally` blocks or fixtures)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
