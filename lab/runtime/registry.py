"""Discovery of the runtime detectors in `detectors/`, and the helpers every detector builds its findings with."""


from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pglab import detectors
from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.errors import UserError
from pglab.lab.core.findings import Finding

if TYPE_CHECKING:  # plans and stats import this module: their classes are named for mypy only
    from pglab.lab.runtime.plans import PlanView
    from pglab.lab.runtime.stats import Window

# The hooks a detector may define (see `pglab.detectors`); a misspelt one would never run.
HOOKS = frozenset({"check_plan", "check_stats", "check_refusal", "check_captured", "check_captured_transactions"})

# Their types. Every hook gets the detector's thresholds (`limits`) and returns its findings.
Limits = dict[str, float]
PlanHook = Callable[["PlanView", Limits], list[Finding]]  # check_plan
StatsHook = Callable[["Window", Limits], list[Finding]]  # check_stats
RefusalHook = Callable[[str, Limits], list[Finding]]  # check_refusal: the server's refusal message
# check_captured / check_captured_transactions read the pytest plugin's own types (statement groups
# or transactions, and its settings): the plugin depends on runtime, never the reverse, so they are
# not named here.
CapturedHook = Callable[[Sequence[Any], Any], list[Finding]]


@cache
def detector_modules() -> dict[str, ModuleType]:
    """id -> detector module, for every catalogue entry that has one, in catalogue order."""
    modules = {}
    for entry in load_catalogue():
        name = f"{detectors.__name__}.{entry.id}"
        if importlib.util.find_spec(name) is not None:
            modules[entry.id] = _validated(entry.id, importlib.import_module(name))
    return modules


def _validated(entry_id: str, module: ModuleType) -> ModuleType:
    unknown = sorted(name for name in vars(module) if name.startswith("check_") and name not in HOOKS
                     and callable(getattr(module, name)))
    if unknown:
        raise UserError(f"detectors/{entry_id}.py: {', '.join(unknown)} is not a detector hook "
                        f"({', '.join(sorted(HOOKS))})")
    return module


def hooks_named(name: str) -> dict[str, Callable[..., list[Finding]]]:
    """id -> the function called `name` in that id's detector module, for every detector that
    defines one (e.g. the pytest plugin's `check_captured`)."""
    return {entry_id: getattr(module, name) for entry_id, module in detector_modules().items()
            if callable(getattr(module, name, None))}


def limits(entry_id: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> Limits:
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
