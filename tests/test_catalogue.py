"""The catalogue is complete, stable and printable."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from pglast import parse_sql
from pglast.parser import ParseError

from cli import run_pglab
from pglab.lab.core.catalogue import (
    LESSON_SECTIONS,
    Entry,
    find_entry,
    include_fixes,
    lesson_problems,
    load_catalogue,
    parse_lesson,
)
from pglab.lab.core.completeness import missing_parts
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.core.sql import to_dollar_placeholders

FIXTURES = Path(__file__).parent / "fixtures" / "check"


def test_ids_and_codes_are_unique() -> None:
    entries = load_catalogue()
    assert len({entry.id for entry in entries}) == len({entry.code for entry in entries}) == len(entries)


@pytest.mark.parametrize("entry", load_catalogue(), ids=lambda entry: entry.id)
def test_every_entry_has_every_part(entry: Entry) -> None:
    problems = missing_parts(entry)
    if entry.static_signal and not (FIXTURES / entry.id).is_dir():
        problems.append(f"static rule: no hits and near-misses in tests/fixtures/check/{entry.id}/")
    assert problems == [], f"{entry.id}: " + "; ".join(problems)


def _sql_literals(code: str) -> list[str]:
    """String constants in a Python example that parse as SQL statements."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value.strip():
            try:
                if parse_sql(to_dollar_placeholders(node.value)):
                    found.append(node.value)
            except ParseError:
                continue
    return found


@pytest.mark.parametrize("entry", load_catalogue(), ids=lambda entry: entry.id)
def test_the_lesson_takes_its_sql_from_the_fix_file(entry: Entry) -> None:
    """The fix is written once, in fixes/<id>.sql: the lesson includes its blocks (`{fix:BLOCK}`)
    and its Python examples name the statements instead of repeating them, so they cannot drift."""
    example = entry.sections["Example"]
    assert "```sql" not in example, f"{entry.id}: the lesson writes SQL itself; include it with {{fix:BLOCK}}"
    rendered = include_fixes(entry.id, example)  # with the lab service's code paths it includes
    for code in re.findall(r"```python\n(.*?)```", rendered, flags=re.DOTALL):
        assert _sql_literals(code) == [], f"{entry.id}: SQL written in a Python example instead of the fix file"
    for name in re.findall(r"^\{fix:(\w+)\}$", example, flags=re.MULTILINE):
        assert fix_blocks(entry.id)[name] in rendered


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


def test_catalog_json_lists_every_entry() -> None:
    result = run_pglab("catalog", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["id"] for row in rows] == [entry.id for entry in load_catalogue()]
    for row in rows:
        assert {"id", "code", "title", "category"} <= set(row)


def test_catalog_table_lists_every_id() -> None:
    result = run_pglab("catalog", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for entry in load_catalogue():
        assert entry.id in result.stdout


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
