"""Every runtime detector belongs to a catalogue entry and has a reference fix; every entry either
has a detector or its lesson explains why statistics cannot see it. No list is kept by hand: the
files named by id are the registry."""

from __future__ import annotations

import pkgutil
import types

import pytest

from pglab import detectors
from pglab.lab.core.catalogue import load_catalogue
from pglab.lab.core.errors import UserError
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.registry import _validated, detector_modules, limits

ENTRIES = {entry.id: entry for entry in load_catalogue()}


def test_every_detector_module_is_named_by_a_catalogue_id() -> None:
    names = {info.name for info in pkgutil.iter_modules(detectors.__path__) if not info.name.startswith("_")}
    assert names <= set(ENTRIES), names - set(ENTRIES)
    assert set(detector_modules()) == names


@pytest.mark.parametrize("entry_id", sorted(ENTRIES))
def test_every_entry_has_a_detector_or_says_why_not(entry_id: str) -> None:
    module = detector_modules().get(entry_id)
    if module is None:
        runtime = ENTRIES[entry_id].sections["How pglab detects it"].split("Runtime:", 1)[-1]
        assert "not a statistic" in runtime and "invariant" in runtime, entry_id
        return
    assert hasattr(module, "check_plan") or hasattr(module, "check_stats"), entry_id
    assert module.__doc__ and isinstance(getattr(module, "THRESHOLDS", None), dict), entry_id


@pytest.mark.parametrize("entry_id", sorted(ENTRIES))
def test_every_entry_has_a_reference_fix(entry_id: str) -> None:
    blocks = fix_blocks(entry_id)
    assert {"setup", "naive", "migrate", "fixed"} <= set(blocks), entry_id
    assert blocks["naive"].strip() and blocks["fixed"].strip()


def test_thresholds_are_parameters() -> None:
    assert limits("missing_index", {"missing_index": {"min_table_rows": 5}})["min_table_rows"] == 5
    with pytest.raises(UserError, match="no threshold"):
        limits("missing_index", {"missing_index": {"min_table_rowz": 5}})


def test_a_misspelt_detector_hook_is_an_error_not_dead_code() -> None:
    module = types.ModuleType("pglab.detectors.some_id")
    module.check_plans = lambda view, limits: []  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="check_plans is not a detector hook"):
        _validated("some_id", module)
    module = types.ModuleType("pglab.detectors.some_id")
    module.check_plan = lambda view, limits: []  # type: ignore[attr-defined]
    assert _validated("some_id", module) is module
