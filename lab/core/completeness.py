"""What an anti-pattern needs besides its lesson, found by its id in each folder.

The parts of an entry live in different folders (`antipatterns/`, `detectors/`, `fixes/`, `loads/`,
the lab service's `paths/`), joined only by the id. Nothing lists them, so nothing but this check
notices when one is missing; the completeness test runs it over the whole catalogue and names the
id and the part. A part that cannot exist is opted out of in the entry's own module, with the reason
(`NOT_STATIC_REASON`, or `RUNTIME_INVARIANT` for an anti-pattern that no statistic shows).
"""

from __future__ import annotations

import importlib.util
from importlib import resources

from pglab.lab.core.catalogue import Entry, lesson_problems
from pglab.lab.core.fixes import fix_blocks

FIX_BLOCKS = ("setup", "naive", "migrate", "fixed")
DETECTORS = "pglab.detectors"
LOADS = "pglab.loads"
LAB_PATHS = "pglab.lab.trial.service.paths"


def _has_module(package: str, name: str) -> bool:
    return importlib.util.find_spec(f"{package}.{name}") is not None


def static_hooks(entry: Entry) -> list[str]:
    module = entry.module
    return sorted(name for name in dir(module) if name.startswith("check_") and callable(getattr(module, name)))


def in_lab(entry_id: str) -> bool:
    """Whether `pglab lab run ID` works: the entry has a load profile (and then a service path that
    declares its routes and the invariants it predicts)."""
    return _has_module(LOADS, entry_id)


def has_service_path(entry_id: str) -> bool:
    return resources.files(LAB_PATHS).joinpath(f"{entry_id}.py").is_file()


def missing_parts(entry: Entry) -> list[str]:
    """Every part the entry lacks, as readable complaints; empty when it is complete."""
    problems = [f"lesson: {problem}" for problem in lesson_problems(entry)]
    if not static_hooks(entry) and not entry.not_static_reason:
        problems.append(f"static rule: no check_* hook in antipatterns/{entry.id}.py and no NOT_STATIC_REASON")
    if not _has_module(DETECTORS, entry.id) and not getattr(entry.module, "RUNTIME_INVARIANT", None):
        problems.append(f"detector: no detectors/{entry.id}.py and no RUNTIME_INVARIANT in its catalogue module")
    try:
        blocks = fix_blocks(entry.id)
    except Exception as error:  # a missing or unreadable fix file is a missing part, said as such
        problems.append(f"fix: {error}")
    else:
        problems += [f"fix: fixes/{entry.id}.sql has no '{name}' block" for name in FIX_BLOCKS if name not in blocks]
    if not has_service_path(entry.id):
        problems.append(f"lab: no service path lab/trial/service/paths/{entry.id}.py (naive, fixed, routes, PREDICTED)")
    elif "PREDICTED" not in path_source(entry.id):
        problems.append(f"lab: lab/trial/service/paths/{entry.id}.py declares no PREDICTED invariants")
    if not in_lab(entry.id):
        problems.append(f"lab: no load profile loads/{entry.id}.py, so no live test proves it "
                        "(tests/test_lab_run.py runs every entry that has one)")
    return problems


def path_source(entry_id: str) -> str:
    return resources.files(LAB_PATHS).joinpath(f"{entry_id}.py").read_text(encoding="utf-8")
