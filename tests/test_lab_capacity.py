"""The load measured on the machine at hand: a profile with a CAPACITY_PROBE and no OVERLOAD is
offered half of what the entry's reference fix completes flat out, and measuring it leaves no trace
of the fix for the naive side to run on, once the side's `reset` has run (as before every side);
a probe that nothing answers is an error, not a load of one user."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_lab_service import TINY

from pglab.lab.core.errors import UserError
from pglab.lab.trial import baseline, capacity
from pglab.lab.trial.baseline import lab_ids
from pglab.lab.trial.loadrun import profile_constants
from pglab.lab.trial.runner import LabRun, apply_statements, index_definitions
from pglab.lab.trial.seed import lab_dsn

ENTRY = "missing_index"  # its reference fix is an index: what must be gone after the measurement


def test_the_load_is_a_share_of_the_reference_fix_capacity(pg_dsn: str) -> None:
    constants = profile_constants(ENTRY)
    assert "CAPACITY_PROBE" in constants and "OVERLOAD" not in constants
    dsn = lab_dsn(pg_dsn)
    run = LabRun(ENTRY, TINY, duration=8)
    run.prepare(dsn)
    load = run.load
    assert load["measured"] == "fixed" and load["share"] == capacity.FIXED_SHARE
    assert load["capacity_rps"] > 0
    assert load["offered_rps"] == pytest.approx(capacity.FIXED_SHARE * load["capacity_rps"], abs=0.1)
    assert run.sample(dsn)["offered_rps"] == load["offered_rps"]  # what the profile reads
    run.reset(dsn)  # what every side starts with
    prepared = set(index_definitions(dsn))
    apply_statements(dsn, baseline.migration(ENTRY), run.footprint)
    assert set(index_definitions(dsn)) - prepared, "the reference fix's index was left behind by the measurement"


def test_a_probe_that_nothing_answers_is_an_error(pg_dsn: str, tmp_path: Path) -> None:
    """An OVERLOAD profile measures the naive side: here a naive path that fails every request."""
    failing = tmp_path / "failing.py"
    failing.write_text("async def naive(*args, **kwargs):\n    raise RuntimeError('broken')\n\n\n"
                       "async def fixed(*args, **kwargs):\n    raise RuntimeError('broken')\n")
    entry = next(entry_id for entry_id in lab_ids() if "OVERLOAD" in profile_constants(entry_id))
    run = LabRun(entry, TINY, duration=8, overrides={entry: failing})
    with pytest.raises(UserError, match="answered none of its capacity probe's requests"):
        run.prepare(lab_dsn(pg_dsn))
