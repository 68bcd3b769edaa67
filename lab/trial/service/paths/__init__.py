"""The anti-patterns the service carries, one module per id, discovered by module name.

Each module is what a student gets in the classroom, so it stays small and readable:

- `naive` and `fixed`: two implementations with the same signature;
- `routes(router, impl)`: the HTTP route(s) it serves, calling `impl` (naive or fixed, as the run
  says); a module whose code is used by other routes (how a request gets its connection, how a
  post charges its author) declares `ROLE` instead, and the service asks for that role;
- `PREDICTED`: the invariants its naive path is expected to break, `ENDPOINTS`: the Locust names
  of the requests whose latency shows it, and `PROBES`: deterministic requests whose answers (and
  resulting rows) must be the same on both sides;
- its SQL comes from `fixes/<id>.sql` (`statements(__name__, "naive")`), so the fix that is taught
  is the fix that is measured;
- `NAIVE_ANSWER_WRONG` (why) and `ORACLE_PARAMS` (probe path -> the fix file's `oracle` block's
  parameters), only where the naive code answers wrongly (NOT IN over NULLs): the two sides may then
  answer differently, as long as an independent oracle refutes the naive answer and confirms the fix;
- `LIVE_SCALE` (with its reason), only where the harm needs more data than the small scale holds:
  the live test runs the entry at that scale; `KNOWN_FINDING` (and `KNOWN_VERDICT`, one verdict or
  a tuple of them), only where a measured run does not show what the catalogue predicts: the live
  test then expects that verdict;
- `NOTIFICATION_BACKLOG_DAYS`, only where the harm needs a table that was never purged: the run
  seeds that much more notification history, older than the rest (`seed.Scale.with_backlog`);
- `LIVE_DURATION` (with its reason), only where the live test's 8 s of load per side would start
  its hold inside the load's start-up, on both sides: the live test runs the entry that long.

Adding an anti-pattern to the service is adding a module here, never editing a list.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pglab.lab.core.fixes import fix_blocks

_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)
Probe = tuple[str, str, dict[str, Any] | None]  # method, path, JSON body


def available() -> tuple[str, ...]:
    """The ids that have a code path in the service."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__)))


@cache
def module(entry_id: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{entry_id}")


def entry_of(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1]


@cache
def statements(module_name: str, block: str) -> tuple[str, ...]:
    """The statements of a block of the path's fix file (comment lines dropped), in order."""
    text = fix_blocks(entry_of(module_name)).get(block, "")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return tuple(part.strip() for part in _STATEMENT_END.split(text) if part.strip())


def predicted(entry_id: str) -> tuple[str, ...]:
    return tuple(getattr(module(entry_id), "PREDICTED", ()))


def endpoints(entry_id: str) -> tuple[str, ...]:
    return tuple(getattr(module(entry_id), "ENDPOINTS", ()))


def probes(entry_id: str) -> tuple[Probe, ...]:
    return tuple(getattr(module(entry_id), "PROBES", ()))


def live_scale(entry_id: str) -> str:
    """The scale the path says its harm needs to be seen (small unless it says otherwise, or for an
    entry with no path)."""
    return str(getattr(module(entry_id), "LIVE_SCALE", "small")) if entry_id in available() else "small"


def live_duration(entry_id: str, default: float) -> float:
    """Seconds of load per side the live test gives this entry: `default`, or more where the path
    says (`LIVE_DURATION`, with its reason) that the hold of a shorter run starts inside its load's
    start-up on both sides, before the harm it predicts."""
    return max(default, float(getattr(module(entry_id), "LIVE_DURATION", 0))) if entry_id in available() else default


def data_scale(entry_id: str, scale: Any) -> Any:
    """The seed.Scale a run of this entry fills: `scale`, with the notification history its path
    asks for (`NOTIFICATION_BACKLOG_DAYS`) when its harm needs a table that was never purged."""
    days = getattr(module(entry_id), "NOTIFICATION_BACKLOG_DAYS", 0) if entry_id in available() else 0
    return scale.with_backlog(days) if days else scale


def known_verdicts(entry_id: str) -> tuple[str, ...]:
    """The verdicts a path's KNOWN_FINDING explains (not_reproduced unless it says otherwise)."""
    declared = getattr(module(entry_id), "KNOWN_VERDICT", "not_reproduced")
    return (declared,) if isinstance(declared, str) else tuple(declared)


def by_role() -> dict[str, str]:
    """role -> id, for the modules whose code other routes use."""
    return {role: entry_id for entry_id in available() if (role := getattr(module(entry_id), "ROLE", None))}


def load_file(entry_id: str, path: str | Path) -> ModuleType:
    """A file standing in for `entry_id`'s module (a student's attempt, a deliberately broken fix):
    its `naive` and `fixed` replace the module's; routes and predictions stay the module's. A
    classroom file defines only `handler`: it is the fixed side, and the naive side stays the
    module's own, so a grade compares the student's code with the reference naive code."""
    spec = importlib.util.spec_from_file_location(f"pglab_override_{entry_id}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path} for {entry_id}")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    if hasattr(loaded, "handler"):
        setattr(loaded, "fixed", loaded.handler)  # noqa: B010 (a module's attributes are not declared)
        setattr(loaded, "naive", getattr(loaded, "naive", module(entry_id).naive))  # noqa: B010
    return loaded
