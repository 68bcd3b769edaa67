"""The layout keeps its promises: an anti-pattern is files named by its id, the engine names no id,
and dependencies inside `lab/` point one way (core <- subsystems <- cli)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

from test_catalogue import _sql_literals

from pglab.lab.core.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"
SERVICE_PATHS = LAB / "trial" / "service" / "paths"
SUBSYSTEMS = ("postgres", "check", "runtime", "trial", "plugin", "campaign", "classroom")


def _modules(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_engine_module_names_a_catalogue_id() -> None:
    """Lists and special cases by id belong in the id's own files; the engine finds them by discovery.
    The lab service's paths are named by their id and may say it."""
    ids = {entry.id for entry in load_catalogue()}
    found = []
    for path in _modules(LAB):
        if path.parent == SERVICE_PATHS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in ids:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "engine modules name catalogue ids:\n" + "\n".join(found)


def _imported_subpackages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name.split(".")[2] for name in names if name.startswith("pglab.lab.") and name.count(".") >= 2}


def test_service_paths_read_their_sql_from_the_fix_file() -> None:
    """A service path runs the statements of `fixes/<id>.sql` (`statements(__name__, BLOCK)`): SQL
    written in the module would be a second copy of the fix that the lab measures but nobody teaches."""
    found = {path.name: _sql_literals(path.read_text()) for path in _modules(SERVICE_PATHS)}
    assert not {name: sql for name, sql in found.items() if sql}, found


def test_every_subpackage_is_core_cli_or_a_subsystem() -> None:
    """So that a new subpackage cannot escape the dependency checks below."""
    folders = {path.name for path in LAB.iterdir() if (path / "__init__.py").is_file()}
    assert folders == {"core", "cli", *SUBSYSTEMS}


def test_dependencies_point_one_way() -> None:
    wrong = []
    for path in _modules(LAB / "core"):
        wrong += [f"{path.relative_to(ROOT)} imports lab.{sub}" for sub in _imported_subpackages(path) - {"core"}]
    for subsystem in SUBSYSTEMS:
        for path in _modules(LAB / subsystem):
            if "cli" in _imported_subpackages(path):
                wrong.append(f"{path.relative_to(ROOT)} imports lab.cli")
    assert not wrong, "\n".join(wrong)


def _subsystem_imports() -> dict[str, set[str]]:
    """subsystem -> the other subsystems its modules import (at the top or inside a function)."""
    return {subsystem: set().union(*(_imported_subpackages(path) for path in _modules(LAB / subsystem)))
            & set(SUBSYSTEMS) - {subsystem} for subsystem in SUBSYSTEMS}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as the path that closes it (a, b, ..., a), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            found = visit(target, path + [node])
            if found:
                return found
        done.add(node)
        return None

    return next((cycle for node in sorted(graph) if (cycle := visit(node, []))), None)


def test_subsystems_import_each_other_without_cycles() -> None:
    graph = _subsystem_imports()
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check itself works
    cycle = _cycle(graph)
    assert cycle is None, "import cycle between subsystems: " + " -> ".join(cycle or [])


DEMO_LESSON = '''"""A demo anti-pattern: reading the demo table at all

## What it is

Any query of `zz_demo_table`. It exists to prove that an anti-pattern is new files only.

## Why it hurts

It does not; it is a test double for the catalogue's machinery.

## What you see under load

Nothing in particular.

## How pglab detects it

Static: a SELECT from `zz_demo_table`. Runtime: a sequential scan of `zz_demo_table` in a plan.

## The fix

Read another table.

## Example

### Naive

{fix:naive}

### Fixed

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/sql-select.html
"""

CODE = "PGL999"
CATEGORY = "query-shape"
STATIC_SIGNAL = "SELECT from zz_demo_table"
RUNTIME_SIGNAL = "Seq Scan on zz_demo_table"
FIX_HINT = "read another table"


def check_sql_RangeVar(node, ctx):
    if node.get("relname") == "zz_demo_table":
        ctx.report(node, "reads the demo table")
'''

DEMO_DETECTOR = '''from pglab.lab.runtime.plans import iter_scans
from pglab.lab.runtime.registry import finding


def check_plan(view, limits):
    return [finding("zz_demo", "scans the demo table", "warning", node.path)
            for node in iter_scans(view) if node.relation == "zz_demo_table"]
'''

DEMO_FIX = """-- name: setup
CREATE TABLE zz_demo_table (id int);
-- name: naive
SELECT id FROM zz_demo_table;
-- name: migrate
-- nothing
-- name: fixed
SELECT 1;
"""

DEMO_PATH = '''"""The demo endpoint: reads the demo table, or not."""

from pglab.lab.trial.service.paths import statements

PREDICTED = ("p99_under_slo",)
ENDPOINTS = ("GET /zz_demo",)
PROBES = (("GET", "/zz_demo", None),)


async def naive(conn):
    return (await (await conn.execute(statements(__name__, "naive")[0])).fetchall())


async def fixed(conn):
    return (await (await conn.execute(statements(__name__, "fixed")[0])).fetchall())


def routes(router, service, impl):
    @router.get("/zz_demo")
    async def demo():
        async with service.connection() as conn:
            return service.respond(await impl(conn))
'''

DEMO_LOAD = '''"""zz_demo: a reader of the demo endpoint."""
SLO_P99_MS = 250
'''

PROBE = """
import json, sys
root = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path[:] = [root] + [p for p in sys.path if "__editable__" not in p]
sys.path_importer_cache.clear()
from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.completeness import missing_parts
from pglab.lab.runtime.registry import detector_modules
entry = find_entry("zz_demo")
import pglab.lab.cli as cli
code = cli.main(["check", "--format", "json", sys.argv[2]])
print(json.dumps({"where": sys.modules["pglab.lab.core.catalogue"].__file__,
                  "ids": [e.id for e in load_catalogue()], "missing": missing_parts(entry),
                  "detector": "zz_demo" in detector_modules(), "lesson": entry.lesson_markdown, "exit": code}))
"""


def _tree_with_demo(tmp_path: Path) -> Path:
    package = tmp_path / "tree" / "pglab"
    for folder in ("lab", "antipatterns", "detectors", "fixes", "loads"):
        shutil.copytree(ROOT / folder, package / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "antipatterns" / "zz_demo.py").write_text(DEMO_LESSON)
    (package / "detectors" / "zz_demo.py").write_text(DEMO_DETECTOR)
    (package / "fixes" / "zz_demo.sql").write_text(DEMO_FIX)
    (package / "lab" / "trial" / "service" / "paths" / "zz_demo.py").write_text(DEMO_PATH)
    (package / "loads" / "zz_demo.py").write_text(DEMO_LOAD)
    return package.parent


def _probe(tree: Path, tmp_path: Path) -> dict:
    target = tmp_path / "uses_demo.sql"
    target.write_text("SELECT id FROM zz_demo_table WHERE id = 1;\n")
    done = subprocess.run([sys.executable, "-c", PROBE, str(tree), str(target)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    result["check_output"] = "\n".join(lines[:-1])
    return result


def test_a_new_antipattern_is_new_files_only(tmp_path: Path) -> None:
    """In a copy of the tree, five new files named by a new id (lesson + rule, detector, fix, service
    path, load profile) are picked up by the catalogue, `pglab check`, the detector registry and the
    completeness check."""
    tree = _tree_with_demo(tmp_path)
    result = _probe(tree, tmp_path)
    assert str(tree) in result["where"]  # the copy was imported, not the installed tree
    assert "zz_demo" in result["ids"]
    assert result["detector"]
    assert result["missing"] == []
    assert "SELECT id FROM zz_demo_table;" in result["lesson"]  # the Example comes from the fix file
    assert result["exit"] == 1 and "PGL999" in result["check_output"]


def test_the_completeness_check_names_the_id_and_the_missing_part(tmp_path: Path) -> None:
    tree = _tree_with_demo(tmp_path)
    (tree / "pglab" / "detectors" / "zz_demo.py").unlink()
    (tree / "pglab" / "loads" / "zz_demo.py").unlink()
    (tree / "pglab" / "fixes" / "zz_demo.sql").write_text(DEMO_FIX.replace("-- name: migrate\n-- nothing\n", ""))
    result = _probe(tree, tmp_path)
    assert any("detector: no detectors/zz_demo.py" in problem for problem in result["missing"]), result["missing"]
    assert any("fixes/zz_demo.sql has no 'migrate' block" in problem for problem in result["missing"])
    assert any("no load profile loads/zz_demo.py" in problem for problem in result["missing"])
