"""The knobs of the plugin's checks: the session's from ini / command line, overridden per test
by `@pytest.mark.pglab(...)`. The fields are the single list: each is an ini key `pglab_<name>`,
a flag `--pglab-<name>` and a marker keyword, with its help text in the field's metadata."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import Any

from pglab.lab.core.findings import Finding


def _knob(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class Settings:
    """Every check's knobs. A limit of 0 or None turns its check off."""

    n_plus_one: int = _knob(5, "fail when one statement shape runs this often from one call chain (0: off; default 5)")
    max_queries: int | None = _knob(
        None, "fail a test that sends more statements than this (BEGIN/COMMIT/SAVEPOINT/SET not counted)")
    max_selects: int | None = _knob(None, "fail a test that sends more SELECTs than this")
    max_writes: int | None = _knob(None, "fail a test that sends more INSERT/UPDATE/DELETE/MERGE/COPY FROM than this")
    plans: bool = _knob(True, "EXPLAIN each distinct statement and apply the plan rules (default true)")
    plan_scale: float = _knob(
        1.0, "evaluate plans with planner row counts multiplied by this (default 1: real counts)")
    # generous: a busy CI machine stretches every transaction
    txn_max_seconds: float | None = _knob(5.0, "fail a transaction held open longer than this (0: off; default 5.0)")
    txn_idle_seconds: float | None = _knob(
        0.5, "fail a transaction idle between statements longer than this (0: off; default 0.5)")
    allow: tuple[str, ...] = ()

    def override(self, values: Mapping[str, Any]) -> Settings:
        """These settings with a marker's keyword arguments applied; `allow` adds to the
        session's allow-list. Raises ValueError naming an unknown keyword."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown pglab marker option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        changes = dict(values)
        if "allow" in changes:
            extra = changes["allow"]
            changes["allow"] = self.allow + ((extra,) if isinstance(extra, str) else tuple(extra))
        for name, value in changes.items():
            expected = setting_types()[name]
            if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
                wanted = " or ".join("None" if kind is type(None) else kind.__name__ for kind in expected)
                raise ValueError(f"pglab option {name} must be {wanted}, not {value!r}")
        return replace(self, **changes)


@cache
def setting_types() -> dict[str, tuple[type, ...]]:
    """What each setting accepts, read from the annotations of `Settings` (an int where a float
    is wanted, too)."""
    accepted = {}
    for name, hint in typing.get_type_hints(Settings).items():
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds = tuple(typing.get_origin(member) or member for member in members)
        accepted[name] = kinds + ((int,) if float in kinds else ())
    return accepted


def knobs() -> list[tuple[str, type, str, Any]]:
    """(name, type, help, default) of every setting an ini key and a flag can set."""
    return [(f.name, setting_types()[f.name][0], f.metadata["help"], f.default)
            for f in fields(Settings) if "help" in f.metadata]


def allowed(finding: Finding, allow: Iterable[str]) -> bool:
    """An allow-list item names a catalogue id or code, a check (the budget's own name among
    them), or one statement's fingerprint."""
    names = {finding.id, finding.code, finding.evidence.get("check"), finding.evidence.get("fingerprint")}
    names.discard("")
    names.discard(None)
    return any(item in names for item in allow)
