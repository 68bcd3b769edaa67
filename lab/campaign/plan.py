"""A campaign plan: trials in order, each a load turned up on a service that is never reset.

A plan is YAML: `duration` (seconds of load per trial), `background_rate` (req/s of the steady
background), and `trials`, each with a `name`, the catalogue `ids` it exercises (only for scoring:
the operator is never told them), and optionally its own `duration` and `load` (the profile in
`loads/`, by default the first id's). The built-in plan replays the seed article's 18 trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pglab.lab.core.catalogue import find_entry
from pglab.lab.core.errors import UnknownEntry, UserError
from pglab.lab.trial import baseline

DEFAULT_PLAN = "default.yaml"


@dataclass(frozen=True)
class Trial:
    name: str
    ids: tuple[str, ...]
    load: str
    duration: float


@dataclass(frozen=True)
class Plan:
    name: str
    trials: tuple[Trial, ...]
    background_rate: float

    def lab_ids(self) -> list[str]:
        return sorted({entry_id for trial in self.trials for entry_id in trial.ids})


def load_plan(path: str | None) -> Plan:
    """The plan at `path`, or the built-in one; a UserError naming the file and the problem."""
    if path is None:
        text, name = (resources.files("pglab.lab.campaign") / DEFAULT_PLAN).read_text(encoding="utf-8"), "default"
    else:
        try:
            text, name = Path(path).read_text(encoding="utf-8"), path
        except OSError as error:
            raise UserError(f"--plan {path}: cannot read it ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"plan {name}: not valid YAML ({str(error).splitlines()[0]})") from None
    return _parse(data, name)


def _parse(data: Any, name: str) -> Plan:
    if not isinstance(data, dict) or not isinstance(data.get("trials"), list) or not data["trials"]:
        raise UserError(f"plan {name}: expected a mapping with a non-empty list `trials`")
    duration = _number(data.get("duration", 20), name, "duration")
    trials = tuple(_trial(item, index, duration, name) for index, item in enumerate(data["trials"], start=1))
    return Plan(name, trials, _number(data.get("background_rate", 2), name, "background_rate"))


def _trial(item: Any, index: int, duration: float, plan: str) -> Trial:
    where = f"plan {plan}, trial {index}"
    if not isinstance(item, dict) or not isinstance(item.get("ids"), list) or not item["ids"]:
        raise UserError(f"{where}: expected `name` and a non-empty list `ids`")
    try:
        ids = tuple(find_entry(str(entry_id)).id for entry_id in item["ids"])
    except UnknownEntry as error:
        raise UserError(f"{where}: {error}") from None
    load = str(item.get("load", ids[0]))
    if load not in baseline.lab_ids():
        raise UserError(f"{where}: no load profile loads/{load}.py; the lab has {', '.join(baseline.lab_ids())}")
    return Trial(str(item.get("name", load)), ids, load, _number(item.get("duration", duration), where, "duration"))


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UserError(f"{where}: `{key}` must be a positive number, not {value!r}")
    if key == "duration" and value < 5:
        raise UserError(f"{where}: `duration` must be at least 5 seconds (warm-up, ramp and hold share it)")
    return float(value)
