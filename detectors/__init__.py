"""Runtime detectors: EXPLAIN plan rules and pg_stat / catalog checks, one module per anti-pattern id.

A module `detectors/<id>.py` may define:

- `THRESHOLDS`: its tunable limits and their defaults (callers override them by id);
- `check_plan(view, limits)`: a plan rule over a `pglab.lab.plans.PlanView`;
- `check_stats(window, limits)`: a rule over two statistics snapshots (`pglab.lab.stats.Window`);
- `check_refusal(message, limits)`: what it means when the server refuses pglab's own connection;
- `SUPERSEDES`: ids whose findings about the same subject this module's findings replace.

Each returns `Finding`s whose evidence names a `subject` (a plan node, a table, a session...).
Discovery goes by catalogue id, so adding a detector is adding its file.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Mapping
from functools import cache
from types import ModuleType
from typing import Any

from pglab.lab.catalogue import find_entry, load_catalogue
from pglab.lab.errors import UserError
from pglab.lab.findings import Finding


@cache
def detector_modules() -> dict[str, ModuleType]:
    """id -> detector module, for every catalogue entry that has one, in catalogue order."""
    modules = {}
    for entry in load_catalogue():
        name = f"{__name__}.{entry.id}"
        if importlib.util.find_spec(name) is not None:
            modules[entry.id] = importlib.import_module(name)
    return modules


def limits(entry_id: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, float]:
    """A detector's thresholds: its defaults, with the caller's overrides for that id applied."""
    defaults = dict(getattr(detector_modules().get(entry_id), "THRESHOLDS", {}))
    wanted = dict((overrides or {}).get(entry_id, {}))
    unknown = sorted(set(wanted) - set(defaults))
    if unknown:
        raise UserError(f"{entry_id} has no threshold {', '.join(unknown)}; it has {', '.join(sorted(defaults))}")
    return {**defaults, **wanted}


def finding(entry_id: str, message: str, severity: str, subject: str, source: str | None = None,
            **evidence: Any) -> Finding:
    """A runtime finding with the catalogue's code and fix hint, and its evidence."""
    entry = find_entry(entry_id)
    return Finding(id=entry_id, code=entry.code, message=message, severity=severity, fix_hint=entry.fix_hint,
                   source=source, evidence={"subject": subject, **evidence})


def with_evidence(found: Finding, **extra: Any) -> Finding:
    return dataclasses.replace(found, evidence={**found.evidence, **extra})
