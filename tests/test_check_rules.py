"""Each static rule, run alone on its own fixture directory, finds exactly what the fixture's
inline `expect: <id>` markers say: the hits, and nothing on the near-misses beside them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pglab.lab.check.config import Config
from pglab.lab.check.engine import run
from pglab.lab.check.walk import Rule, _attach
from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "check"
MARKER = re.compile(r"(?:#|--)\s*expect:\s*([a-z_]+(?:\s*,\s*[a-z_]+)*)")
STATIC_IDS = [entry.id for entry in load_catalogue() if entry.static_signal]


def expectations(directory: Path, rule: str) -> set[tuple[str, int]]:
    expected = set()
    for path in sorted(directory.rglob("*")):
        if path.suffix not in (".py", ".sql"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = MARKER.search(line)
            if match and rule in [item.strip() for item in match.group(1).split(",")]:
                expected.add((path.name, number))
    return expected


def check_alone(directory: Path, rule: str):
    """The fixtures live under tests/, where the default per-file ignores would silence some rules."""
    return run([str(directory)], Config(select=[rule], per_file_ignores={}), use_cache=False)


@pytest.mark.parametrize("rule", STATIC_IDS)
def test_rule_alone_on_its_fixture(rule: str) -> None:
    directory = FIXTURES / rule
    assert directory.is_dir(), f"no fixture directory for {rule}"
    expected = expectations(directory, rule)
    assert expected, f"the {rule} fixture marks no hit"
    result = check_alone(directory, rule)
    found = {(Path(finding.path).name, finding.line) for finding in result.findings if finding.path}
    assert not [d for d in result.diagnostics if d.kind in ("internal-error", "unparsable")], result.diagnostics
    assert {finding.id for finding in result.findings} <= {rule}
    assert found == expected, f"missing: {sorted(expected - found)}; unexpected: {sorted(found - expected)}"


def test_every_static_entry_has_a_rule() -> None:
    """An entry with a static signal has check_* hooks; one without says why in NOT_STATIC_REASON."""
    for entry in load_catalogue():
        hooks = [name for name in dir(entry.module) if name.startswith("check_")]
        if entry.static_signal:
            assert hooks, f"{entry.id} has a STATIC_SIGNAL but no check_* hook"
        else:
            assert entry.not_static_reason, entry.id


def test_a_misspelt_rule_hook_is_an_error_not_dead_code() -> None:
    rule = Rule(find_entry("missing_index"))
    for name in ("check_sql_SelectStatement", "check_py_Cal", "check_querys"):
        with pytest.raises(UserError, match=name):
            _attach(rule, name, lambda node, ctx: None)
    _attach(rule, "check_sql_SelectStmt", lambda node, ctx: None)
    _attach(rule, "check_py_Call", lambda node, ctx: None)
    assert set(rule.sql) == {"SelectStmt"} and set(rule.py) == {"Call"}
