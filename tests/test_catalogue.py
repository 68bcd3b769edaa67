"""The catalogue is complete, stable and printable."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from cli import run_pglab
from pglab.lab.core.catalogue import (
    LESSON_SECTIONS,
    Entry,
    find_entry,
    lesson_problems,
    load_catalogue,
    parse_lesson,
)

DESIGN_IDS = {
    "missing_index", "correlated_subquery", "ilike_scan", "unbounded_results", "offset_pagination",
    "non_sargable_predicate", "n_plus_one", "count_per_request", "sort_without_index", "not_in_subquery",
    "select_star_payload", "pool_exhaustion", "no_load_shedding", "streaming_txn", "long_poll_connection",
    "missing_timeouts", "counter_race", "write_contention", "fanout_loop", "per_row_update", "bulk_delete",
    "serializable_no_retry", "write_amplification", "missing_fk_index",
}


def test_catalogue_has_every_design_entry_with_unique_ids_and_codes() -> None:
    entries = load_catalogue()
    assert {entry.id for entry in entries} == DESIGN_IDS
    assert len({entry.code for entry in entries}) == len(entries) == 24


@pytest.mark.parametrize("entry", load_catalogue(), ids=lambda entry: entry.id)
def test_every_entry_is_complete(entry: Entry) -> None:
    assert lesson_problems(entry) == []


def test_completeness_check_catches_a_missing_section_and_example() -> None:
    """The check above must be able to fail: feed it an entry with holes."""
    complete = find_entry("missing_index")
    title, sections = parse_lesson(complete.module.__doc__ or "")
    del sections["Why it hurts"]
    sections["Example"] = "### Naive\n\n```sql\nSELECT 1;\n```\n"
    broken = replace(complete, sections=sections, fix_hint="")
    problems = lesson_problems(broken)
    assert "missing section 'Why it hurts'" in problems
    assert "Example lacks a fixed code block" in problems
    assert "no FIX_HINT" in problems


def test_find_entry_by_code_is_case_insensitive() -> None:
    assert find_entry("pgl001").id == "missing_index"
    assert find_entry("PGL007").id == "n_plus_one"


def test_catalog_json_lists_24_entries() -> None:
    result = run_pglab("catalog", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 24
    for row in rows:
        assert {"id", "code", "title", "category"} <= set(row)
    assert len({row["id"] for row in rows}) == len({row["code"] for row in rows}) == 24


def test_catalog_table_lists_every_id() -> None:
    result = run_pglab("catalog", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for entry_id in DESIGN_IDS:
        assert entry_id in result.stdout


def test_explain_prints_every_lesson_section() -> None:
    result = run_pglab("explain", "missing_index", env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    for section in LESSON_SECTIONS:
        assert section in result.stdout
    assert "CREATE INDEX" in result.stdout


def test_explain_by_code_matches_explain_by_id() -> None:
    by_code = run_pglab("explain", "PGL001", "--markdown")
    by_id = run_pglab("explain", "missing_index", "--markdown")
    assert by_code.returncode == 0 and by_code.stdout == by_id.stdout
