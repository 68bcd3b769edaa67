"""An exercise workspace: what a student gets, and what the grader needs to know about it.

A workspace is a folder with the incident (`README.md`), the code under exercise (`solution.py`,
starting as the naive implementation), an empty `migration.sql`, and `.pglab/exercise.json`: the
id, whether it is a mystery, the pglab version, the checksums of the starting files and the hints
used. Everything the student may change is in the two files; the grader reads nothing else of
theirs, and it never imports their code in its own process (only the service runs it).
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pglast

from pglab.lab.classroom.studentcode import student_source
from pglab.lab.core.catalogue import find_entry
from pglab.lab.core.errors import UserError
from pglab.lab.trial import baseline, capacity
from pglab.lab.trial.loadrun import profile_constants, profile_path
from pglab.lab.trial.service import paths

CODE_FILE = "solution.py"
MIGRATION_FILE = "migration.sql"
METADATA = Path(".pglab") / "exercise.json"
FORMAT = 1
SYMPTOMS = {  # invariant -> what the incident report says when it breaks
    "p99_under_slo": "the p99 latency of {endpoints} is far above its SLO of {slo:g} ms",
    "error_rate_under_budget": "more than {budget:.0%} of the requests fail",
    "no_lost_updates": "account totals no longer match the tokens of the messages they were charged for",
    "no_idle_in_transaction": "sessions sit idle in transaction for seconds",
    "no_refused_connections": "the database refuses new connections (\"too many clients\")",
}


@dataclass(frozen=True)
class Workspace:
    root: Path
    entry_id: str
    mystery: bool
    checksums: dict[str, str]
    hints_used: int

    @property
    def code(self) -> Path:
        return self.root / CODE_FILE

    @property
    def migration(self) -> Path:
        return self.root / MIGRATION_FILE

    def changed(self) -> list[str]:
        """The student's files that differ from how the exercise started."""
        return [name for name, digest in self.checksums.items()
                if not (self.root / name).is_file() or _digest(self.root / name) != digest]

    def migration_statements(self) -> list[str]:
        """The student's DDL, one statement each; a UserError naming the file when it does not parse."""
        try:
            return list(pglast.split(self.migration.read_text(encoding="utf-8")))
        except pglast.parser.ParseError as error:
            raise UserError(f"{self.migration}: not valid SQL ({error})") from None

    def check_code(self) -> None:
        """Syntax only: the grader never runs the student's code in its own process."""
        try:
            ast.parse(self.code.read_text(encoding="utf-8"), str(self.code))
        except SyntaxError as error:
            raise UserError(f"{self.code}:{error.lineno}: {error.msg}") from None
        if "def handler(" not in self.code.read_text(encoding="utf-8"):
            raise UserError(f"{self.code}: the service calls a function named `handler`; keep its name")

    def record_hint(self) -> None:
        data = json.loads((self.root / METADATA).read_text(encoding="utf-8"))
        data["hints_used"] = self.hints_used + 1
        _write_json(self.root / METADATA, data)


def exercise_ids() -> list[str]:
    """The catalogue entries a student can be given: those the lab runs with a code path."""
    return [entry_id for entry_id in baseline.lab_ids() if entry_id in paths.available()]


def create(entry_id: str, root: Path, mystery: bool) -> Workspace:
    """Write a new workspace for `entry_id` into `root` (new, or an empty folder)."""
    entry_id = find_entry(entry_id).id
    if entry_id not in exercise_ids():
        raise UserError(f"no exercise for {entry_id}: the lab runs {', '.join(exercise_ids())}")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"{root} exists and is not an empty folder; choose a new one")
    files = {"README.md": incident(entry_id, mystery), CODE_FILE: student_source(entry_id, _code_docstring(mystery)),
             MIGRATION_FILE: "-- DDL for your fix (CREATE INDEX ...), applied before your code runs.\n"}
    (root / METADATA).parent.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    checksums = {name: _digest(root / name) for name in (CODE_FILE, MIGRATION_FILE)}
    _write_json(root / METADATA, {"format": FORMAT, "id": entry_id, "mystery": mystery,
                                  "pglab_version": version("pglab"), "checksums": checksums, "hints_used": 0})
    return load(root)


def load(root: Path) -> Workspace:
    """The workspace at `root`, or a UserError saying what is wrong with it."""
    metadata = root / METADATA
    if not metadata.is_file():
        raise UserError(f"{root} is not a pglab exercise (no {METADATA}); create one with `pglab lab exercise ID DIR`")
    try:
        data = json.loads(metadata.read_text(encoding="utf-8"))
        workspace = Workspace(root, find_entry(str(data["id"])).id, bool(data["mystery"]),
                              {str(k): str(v) for k, v in data["checksums"].items()}, int(data.get("hints_used", 0)))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{metadata}: damaged exercise metadata ({error})") from None
    if data.get("format") != FORMAT:
        raise UserError(f"{metadata}: written by another pglab version; create the exercise again")
    for path in (workspace.code, workspace.migration):
        if not path.is_file():
            raise UserError(f"{path} is missing; the exercise needs it (see README.md)")
    return workspace


def incident(entry_id: str, mystery: bool) -> str:
    """The task told as an incident: symptoms in numbers, what may change, how to work. The
    mystery version leaves out the name, and with it the lesson."""
    entry = find_entry(entry_id)
    constants = profile_constants(entry_id)
    endpoints = " and ".join(f"`{name}`" for name in paths.endpoints(entry_id)) or "every endpoint"
    words = {"endpoints": endpoints, "slo": float(constants.get("SLO_P99_MS", 250)),
             "budget": float(constants.get("ERROR_BUDGET", 0.01))}
    symptoms = [SYMPTOMS.get(name, f"the lab's `{name}` check fails").format(**words)
                for name in paths.predicted(entry_id)]
    crowd = (f"a crowd asking for {constants['OVERLOAD']:g} times what the chat service can answer"
             if "OVERLOAD" in constants else
             f"a load that a well-written chat service carries at {capacity.FIXED_SHARE:.0%} of its capacity"
             if "CAPACITY_PROBE" in constants
             else f"{_profile_users(entry_id, constants)} concurrent users of the chat service")
    title = "Incident" if mystery else f"Incident: {entry.title.lower()}"
    cause = ("Nobody knows yet why. Find the cause with `pglab diagnose`, `EXPLAIN (ANALYZE, BUFFERS)` and the "
             "service's statistics before you change anything." if mystery else
             f"The on-call engineer suspects **{entry_id}** ({entry.code}); `pglab explain {entry_id}` has the lesson.")
    return f"""# {title}

Under {crowd}, {"; ".join(symptoms)}.

{cause}

## What you may change

- `{CODE_FILE}`: the code the service runs for this part of the API (`handler`; keep its name and
  signature). The service calls it exactly as it called the original.
- `{MIGRATION_FILE}`: DDL applied to the database before your code runs (indexes, columns, ...).

The answers must stay the same: the grader asks the service the same questions before and after
the data changes, and compares the rows left behind. Caching, dropping rows or refusing work is not
a fix.

## How to work

    pglab lab observe .     # your current code under the exercise's load: latency, errors, connections, detectors
    pglab lab hint .        # one more hint each time (the grade records how many you used)
    pglab lab grade .       # the verdict, measured: the original code against yours, same load, same data
"""


def _code_docstring(mystery: bool) -> str:
    return ("The code under exercise. The service calls `handler` with the same arguments as before;\n"
            "change what it does, keep its name and signature." +
            ("" if mystery else "\n\nSee README.md for the incident."))


def _profile_users(entry_id: str, constants: dict[str, Any]) -> int:
    """The load's concurrent users (its `Shape.users`, a number or one of the profile's constants),
    read without importing Locust."""
    tree = ast.parse(profile_path(entry_id).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Shape":
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name) \
                        and item.targets[0].id == "users":
                    value = item.value.value if isinstance(item.value, ast.Constant) else \
                        constants.get(item.value.id) if isinstance(item.value, ast.Name) else None
                    if isinstance(value, int):
                        return value
    return 20


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all: a Ctrl-C never leaves half a metadata file."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def create_pack(root: Path, mystery: bool) -> list[Workspace]:
    """One workspace per exercise under `root`, and TEACHER.md: which is which, and how to grade
    them all. Mystery workspaces are numbered, so their folder names give nothing away."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"{root} exists and is not an empty folder; choose a new one")
    created = []
    rows = ["| workspace | id | code | title |", "|---|---|---|---|"]
    for number, entry_id in enumerate(exercise_ids(), start=1):
        name = f"exercise-{number:02d}" if mystery else entry_id
        created.append(create(entry_id, root / name, mystery))
        entry = find_entry(entry_id)
        rows.append(f"| `{name}` | {entry_id} | {entry.code} | {entry.title} |")
    (root / "TEACHER.md").write_text(
        "# Course pack (for the teacher: do not hand this file out)\n\n"
        f"{len(created)} exercises, {'mystery (the students get symptoms only)' if mystery else 'named'}.\n"
        "Give each student a copy of one folder. To grade a class, collect the folders under one\n"
        "directory and run\n\n    pglab lab grade CLASS_DIR --summary grades.md   # or grades.csv\n\n"
        + "\n".join(rows) + "\n", encoding="utf-8")
    return created
