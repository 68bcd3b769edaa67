"""The campaign's operators: who ships a fix when a trial breaks an invariant.

`auto` is never told what a trial injected. It ranks suspects from the live signals of the attempt
that broke (the runtime detectors' findings and the lab's invariant detectors): errors before
warnings, findings that were not already standing before the campaign's load began before those
that were (a catalog check such as an unindexed foreign key fires whatever the load), then the
earliest seen and the most often seen. It ships the top suspect's reference fix (its migration, and
its code path switched to the fixed one in the running service), verifies, and moves down the list.

`manual` is a person: the campaign shows the symptoms and waits until one of the student's
classroom workspaces changes, then ships that workspace's migration and code and verifies.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pglab.lab.campaign.attempt import Sighting
from pglab.lab.classroom import workspace
from pglab.lab.classroom.grading import workspaces_in
from pglab.lab.trial import baseline
from pglab.lab.trial.service import paths

OPERATORS = ("auto", "manual", "none")
MAX_SUSPECTS = 3  # fixes the auto operator tries on one trial before it gives up
WORKSPACE_POLL = 1.0  # seconds between two looks at the student's workspaces


def rank(sightings: dict[str, Sighting], standing: set[str]) -> list[str]:
    """Suspect ids, most likely first. A suspect inferred only from a broken invariant that several
    entries predict (slow answers, lost goodput) stands behind the detectors' own findings: any slow
    cause breaks such an invariant. One only a single entry predicts (lost updates) is as telling as
    a finding."""
    predicted_by = Counter(name for entry_id in paths.available() for name in paths.predicted(entry_id))

    def key(seen: Sighting) -> tuple[bool, bool, bool, float, int]:
        symptom_only = bool(seen.symptom) and predicted_by[seen.symptom] > 1
        return (symptom_only, seen.severity != "error", seen.id in standing, seen.first_s, -seen.count)

    return [seen.id for seen in sorted(sightings.values(), key=key)]


def fixable(entry_id: str) -> bool:
    """Whether the operator has anything to ship for `entry_id`: a migration or a code path."""
    return entry_id in paths.available() or bool(baseline.migration(entry_id))


@dataclass(frozen=True)
class Shipment:
    """A fix to ship: whose it is, its DDL, and the code (None: the path's own fixed code)."""

    entry_id: str
    ddl: list[str]
    code: Path | None = None

    def describe(self) -> str:
        parts = [f"{len(self.ddl)} DDL statement(s)"] if self.ddl else []
        if self.code:
            parts.append(f"code from {self.code}")
        elif self.entry_id in paths.available():
            parts.append("its fixed code path")
        return f"{self.entry_id}: " + (", ".join(parts) or "nothing to ship")


def reference_fix(entry_id: str) -> Shipment:
    return Shipment(entry_id, baseline.migration(entry_id))


@dataclass
class WorkspaceWatch:
    """The student's workspaces (a course pack folder), and what they held when last looked at."""

    folder: Path
    seen: dict[Path, list[str]]

    @classmethod
    def start(cls, folder: Path) -> WorkspaceWatch:
        spaces = workspaces_in([folder])
        return cls(folder, {space: _state(space) for space in spaces})

    def wait_for_change(self, timeout: float, tick: Callable[[], None] | None = None) -> Shipment | None:
        """The first workspace whose files changed since the last look, as a shipment; None when
        nothing changed within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for space, before in self.seen.items():
                now = _state(space)
                if now != before:
                    self.seen[space] = now
                    loaded = workspace.load(space)
                    loaded.check_code()
                    return Shipment(loaded.entry_id, loaded.migration_statements(), loaded.code.resolve())
            if tick:
                tick()
            time.sleep(WORKSPACE_POLL)
        return None


def _state(space: Path) -> list[str]:
    files = (space / workspace.CODE_FILE, space / workspace.MIGRATION_FILE)
    return [path.read_text(encoding="utf-8") if path.is_file() else "" for path in files]
