"""The classroom: exercises written, hints recorded, and grades by measurement that cheating cannot pass.

The grades are real lab runs on pglab's embedded server (embedded pass only). A handful run in the
default tier on one entry; every entry's "unchanged fails, reference fix passes" runs behind the
`load` marker.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from cli import assert_one_line_error, run_pglab
from conftest import embedded_only
from pglab.lab.classroom import workspace
from pglab.lab.classroom.studentcode import reference_migration, student_source
from pglab.lab.core.catalogue import find_entry
from pglab.lab.trial.loadrun import profile_constants
from pglab.lab.trial.service import paths

GRADE_DURATION = "8"
CHEATED = "missing_index"  # the entry the cheats are tried on: it reproduces reliably on a quiet machine


def _exercise(tmp_path: Path, entry_id: str, *flags: str) -> Path:
    target = tmp_path / f"ws-{entry_id}"
    result = run_pglab("lab", "exercise", entry_id, str(target), *flags)
    assert result.returncode == 0, result.stderr
    return target


@pytest.mark.parametrize("entry_id", workspace.exercise_ids())
def test_every_exercise_is_written_complete_and_parses(tmp_path: Path, entry_id: str) -> None:
    target = workspace.create(entry_id, tmp_path / "ws", mystery=False).root
    code = (target / "solution.py").read_text()
    tree = ast.parse(code)
    assert any(isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == "handler"
               for node in tree.body)
    assert "statements(" not in code and "def fixed" not in code  # the SQL inlined; no solution inside
    metadata = json.loads((target / ".pglab" / "exercise.json").read_text())
    assert metadata["id"] == entry_id and metadata["hints_used"] == 0 and not metadata["mystery"]
    assert workspace.load(target).changed() == []
    (target / "migration.sql").write_text("CREATE INDEX ON messages (user_id);\n")
    assert workspace.load(target).changed() == ["migration.sql"]


@pytest.mark.parametrize("entry_id", workspace.exercise_ids())
def test_every_reference_solution_loads_as_a_students_file(tmp_path: Path, entry_id: str) -> None:
    """The reference fix in the student's shape loads the way the service loads a student's file,
    with every module-level name it uses (a limiter's `MIN_LIMIT, MAX_LIMIT = 4, 10` among them)."""
    solution = tmp_path / "solution.py"
    solution.write_text(student_source(entry_id, "The reference solution.", "fixed"))
    loaded = paths.load_file(entry_id, solution)
    assert loaded.fixed is loaded.handler and loaded.naive is paths.module(entry_id).naive


def test_the_incident_states_the_load_the_exercise_runs() -> None:
    """Users given as a profile constant are counted; a measured overload or share is told as one."""
    users = profile_constants("write_amplification")["USERS"]
    assert f"Under {users} concurrent users" in workspace.incident("write_amplification", mystery=False)
    overload = profile_constants("no_load_shedding")["OVERLOAD"]
    assert f"asking for {overload:g} times what the chat service can answer" in workspace.incident(
        "no_load_shedding", mystery=True)
    assert "Under a load that a well-written chat service carries at 50% of its capacity," in workspace.incident(
        "missing_index", mystery=True)  # measured on the machine: no number of users to tell


@pytest.mark.parametrize("entry_id", workspace.exercise_ids())
def test_a_mystery_exercise_gives_no_name_away(tmp_path: Path, entry_id: str) -> None:
    target = workspace.create(entry_id, tmp_path / "ws", mystery=True).root
    entry = find_entry(entry_id)
    for name in ("README.md", "solution.py"):
        text = (target / name).read_text().lower()
        assert entry_id not in text and entry.code.lower() not in text and entry.title.lower() not in text, name


def test_hints_come_one_at_a_time_and_are_counted(tmp_path: Path) -> None:
    target = _exercise(tmp_path, "missing_index", "--mystery")
    shown = [run_pglab("lab", "hint", str(target)).stdout for _ in range(4)]
    assert shown[0].startswith("hint 1 of 3: The symptom")
    assert "missing_index" not in shown[0] + shown[1]  # a mystery names its cause in the last tier only
    assert shown[2].startswith("hint 3 of 3: The idea of the fix") and "missing_index" in shown[2]
    assert shown[3].startswith("no more hints")
    assert workspace.load(target).hints_used == 3


def test_a_course_pack_has_every_exercise_and_a_teacher_index(tmp_path: Path) -> None:
    result = run_pglab("lab", "exercise", "--all", str(tmp_path / "pack"), "--mystery")
    assert result.returncode == 0, result.stderr
    folders = sorted(path for path in (tmp_path / "pack").iterdir() if path.is_dir())
    assert sorted(workspace.load(path).entry_id for path in folders) == sorted(workspace.exercise_ids())
    teacher = (tmp_path / "pack" / "TEACHER.md").read_text()
    assert all(entry_id in teacher for entry_id in workspace.exercise_ids())


def test_bad_workspaces_are_one_line_errors(tmp_path: Path) -> None:
    assert_one_line_error(run_pglab("lab", "exercise", "no_such_thing", str(tmp_path / "x")), "unknown anti-pattern")
    target = _exercise(tmp_path, "missing_index")
    assert_one_line_error(run_pglab("lab", "exercise", "missing_index", str(target)), "not an empty folder")
    assert_one_line_error(run_pglab("lab", "grade", str(tmp_path / "nowhere")), "not a pglab exercise")
    (target / "solution.py").write_text("async def handler(:\n")
    assert_one_line_error(run_pglab("lab", "grade", str(target)), "solution.py:1")
    shutil.copy(tmp_path / "ws-missing_index" / ".pglab" / "exercise.json", tmp_path / "saved.json")
    (target / "solution.py").write_text(student_source("missing_index", "x"))
    (target / "migration.sql").write_text("CREATE INDEX ON messages (\n")
    assert_one_line_error(run_pglab("lab", "grade", str(target)), "migration.sql: not valid SQL")
    (target / ".pglab" / "exercise.json").write_text("{")
    assert_one_line_error(run_pglab("lab", "hint", str(target)), "damaged exercise metadata")


def _grade(target: Path, tmp_path: Path, *flags: str) -> tuple[int, dict[str, object]]:
    """Graded at the scale the exercise's path says its harm needs: `grade`'s default."""
    report = tmp_path / f"grade-{target.name}.json"
    result = run_pglab("lab", "grade", str(target), "--duration", GRADE_DURATION, "--json", str(report), *flags,
                       timeout=400)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(report.read_text())


def _solve(target: Path, entry_id: str) -> None:
    """The reference fix, put into the workspace as a student would."""
    (target / "solution.py").write_text(student_source(entry_id, "The reference solution.", "fixed"))
    (target / "migration.sql").write_text(reference_migration(entry_id) + "\n")


@embedded_only("grades are lab runs on pglab's own server")
def test_unchanged_fails_and_the_reference_fix_passes_with_a_gradescope_file(tmp_path: Path) -> None:
    target = _exercise(tmp_path, CHEATED)
    code, unchanged = _grade(target, tmp_path)
    assert code == 1 and unchanged["verdict"] == "not_cured" and unchanged["score"] < 10
    assert any("not yet: the predicted harm is gone" in line for line in unchanged["feedback"])
    _solve(target, CHEATED)
    gradescope = tmp_path / "results.json"
    code, solved = _grade(target, tmp_path, "--gradescope", str(gradescope))
    assert code == 0 and solved["verdict"] == "cured", solved["reason"]
    assert solved["scale"] == paths.live_scale(CHEATED)  # grade's default: the scale the harm needs
    assert solved["exercise"]["changed_files"] == ["solution.py", "migration.sql"]
    results = json.loads(gradescope.read_text())
    assert results["score"] == results["max_score"] == 10
    assert all(test["score"] == test["max_score"] for test in results["tests"])


LOAD_TIER_CHEATS = {"answers 503", "returns an empty list"}  # the default tier keeps two: its time budget
CHEATS = {
    "deletes rows in the migration": (None, "DELETE FROM messages m WHERE conversation_id > 100 AND NOT EXISTS"
                                            " (SELECT FROM notifications n WHERE n.message_id = m.id);"),
    "returns an empty list": ("async def handler(conn, conversation_id):\n    return []\n", ""),
    "answers 503": ("from fastapi import HTTPException\n\n\nasync def handler(conn, conversation_id):\n"
                    "    raise HTTPException(503, 'busy')\n", ""),
    "caches the first answer": ("CACHE = {}\n\n\nasync def handler(conn, conversation_id):\n"
                                "    if conversation_id not in CACHE:\n"
                                "        CACHE[conversation_id] = await _original(conn, conversation_id)\n"
                                "    return CACHE[conversation_id]\n", ""),
}


@embedded_only("grades are lab runs on pglab's own server")
@pytest.mark.parametrize("cheat", [pytest.param(name, marks=[pytest.mark.load] if name in LOAD_TIER_CHEATS else [])
                                   for name in sorted(CHEATS)])
def test_cheating_is_never_a_pass(tmp_path: Path, cheat: str) -> None:
    target = _exercise(tmp_path, CHEATED)
    _solve(target, CHEATED)  # the real index is there: only the cheat stands between it and a pass
    code_text, migration = CHEATS[cheat]
    if code_text:
        reference = student_source(CHEATED, "x", "fixed").replace("def handler(", "def _original(")
        (target / "solution.py").write_text(reference + "\n\n" + code_text)
    if migration:
        (target / "migration.sql").write_text(reference_migration(CHEATED) + "\n" + migration + "\n")
    code, report = _grade(target, tmp_path)
    assert code == 1 and report["verdict"] in ("not_equivalent", "not_cured"), report["reason"]
    assert report["score"] == 0 or report["verdict"] == "not_cured"


@pytest.mark.load
@embedded_only("grades are lab runs on pglab's own server")
@pytest.mark.parametrize("entry_id", workspace.exercise_ids())
def test_every_exercise_fails_unchanged_and_passes_with_the_reference_fix(tmp_path: Path, entry_id: str) -> None:
    """At the scale the path says its harm needs; a path's measured KNOWN_FINDING is expected, as in
    the lab's own live test."""
    module = paths.module(entry_id)
    target = _exercise(tmp_path, entry_id)
    code, unchanged = _grade(target, tmp_path)
    assert code == 1 and unchanged["verdict"] != "cured"
    _solve(target, entry_id)
    code, solved = _grade(target, tmp_path)
    finding = getattr(module, "KNOWN_FINDING", None)
    if finding and solved["verdict"] in paths.known_verdicts(entry_id):
        # a finding is about the harm's size: the reference fix must have run (its detector quiet)
        assert entry_id not in solved["fixed"]["detections"], solved["reason"]
        pytest.xfail(f"{entry_id}: {finding} ({solved['reason']})")
    assert solved["verdict"] == "cured", solved["reason"]
