"""The state file of the server `pglab db start` runs: where it is, reading and writing it.

Kept apart from the command line because other commands (advise-index, the lab) ask whether a
DSN points at pglab's own server.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def state_file() -> Path:
    root = Path(os.environ.get("PGLAB_STATE_DIR") or Path(tempfile.gettempdir()) / f"pglab-{os.getuid()}")
    return root / "db.json"


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
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state))
    partial.replace(path)  # never a half-written state file


def running_state() -> dict[str, Any] | None:
    state = read_state()
    if state and alive(int(state["pid"])):
        return state
    if state:
        state_file().unlink(missing_ok=True)  # stale: its process is gone
    return None
